from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0002_prices_reference_points_fee'),
    ]

    operations = [
        migrations.AlterField(
            model_name='groupoutcome',
            name='charge_basis',
            field=models.CharField(blank=True, help_text='auction_price, delivery_guarantee or contract.', max_length=20),
        ),
        migrations.AddField(
            model_name='groupoutcome',
            name='contract_outcome',
            field=models.PositiveSmallIntegerField(blank=True, help_text='Index of the outcome reached.', null=True),
        ),
        migrations.AddField(
            model_name='groupoutcome',
            name='contract_payment_cents',
            field=models.PositiveBigIntegerField(
                blank=True, help_text="The contract's payment for the outcome reached, chargeable minor units.", null=True
            ),
        ),
    ]
