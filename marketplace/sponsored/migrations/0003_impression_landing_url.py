import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def copy_landing_urls(apps, schema_editor):
    """Impressions shown before this migration get their campaign's URL of now: the best record there is of what
    their links showed (a later edit of the campaign no longer changes where they go)."""
    Impression = apps.get_model("sponsored", "Impression")
    Campaign = apps.get_model("sponsored", "Campaign")
    Impression.objects.filter(landing_url="").update(
        landing_url=models.Subquery(Campaign.objects.filter(pk=models.OuterRef("campaign_id")).values("landing_url")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("sponsored", "0002_reserve_price"),
    ]

    operations = [
        migrations.AddField(
            model_name="impression",
            name="landing_url",
            field=models.CharField(default="", max_length=500),
            preserve_default=False,
        ),
        migrations.RunPython(copy_landing_urls, migrations.RunPython.noop),
        migrations.AddField(
            model_name="impression",
            name="requested_by",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name="impression",
            index=models.Index(fields=["campaign", "requested_by", "click_day"], name="impression_user_clicks"),
        ),
    ]
