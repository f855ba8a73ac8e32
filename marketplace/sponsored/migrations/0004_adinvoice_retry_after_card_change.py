from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sponsored", "0003_impression_landing_url"),
    ]

    operations = [
        migrations.AddField(
            model_name="adinvoice",
            name="attempt",
            field=models.PositiveIntegerField(default=1, help_text="Charges tried; attempts after the first key by it."),
        ),
        migrations.AddField(
            model_name="adinvoice",
            name="failed_payment_method_id",
            field=models.CharField(blank=True, help_text="The card on file when the charge failed; a different card retries it.", max_length=255),
        ),
    ]
