import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('delivery', '0001_initial'),
        ('marketplace', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ResaleListing',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('listed', models.BooleanField(default=False)),
                ('price_per_mtok_cents', models.PositiveBigIntegerField(default=0, help_text='Minor units per 1,000,000 tokens.')),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='resale_listings', to='marketplace.preferencegroup')),
                ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='listings', to='delivery.finetunedmodel')),
                ('updated_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.CreateModel(
            name='ResaleUsageDaily',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('price_per_mtok_cents', models.PositiveBigIntegerField()),
                ('prompt_tokens', models.PositiveBigIntegerField(default=0)),
                ('completion_tokens', models.PositiveBigIntegerField(default=0)),
                ('requests', models.PositiveBigIntegerField(default=0)),
                ('buyer', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('listing', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='usage', to='delivery.resalelisting')),
            ],
            options={
                'ordering': ['-day', 'listing_id'],
            },
        ),
        migrations.AddConstraint(
            model_name='resalelisting',
            constraint=models.UniqueConstraint(fields=('model', 'group'), name='one_resale_listing_per_model_group'),
        ),
        migrations.AddConstraint(
            model_name='resaleusagedaily',
            constraint=models.UniqueConstraint(fields=('listing', 'buyer', 'day', 'price_per_mtok_cents'), name='one_resale_usage_row_per_buyer_day_price'),
        ),
    ]
