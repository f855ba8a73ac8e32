"""The delivered models' pages and the OpenAI-compatible API's mount point."""

from django.urls import include, path

from marketplace.views import models

urlpatterns = [
    path("models/", models.model_list, name="model_list"),
    path("models/<str:model_id>/", models.model_detail, name="model_detail"),
    path("models/<str:model_id>/download/<str:format>/", models.model_download, name="model_download"),
    path("models/<str:model_id>/playground/", models.model_playground, name="model_playground"),
    path("groups/<slug:slug>/usage/", models.group_usage, name="group_usage"),
    path("v1/", include("marketplace.openai_api.urls")),
]
