"""Top-level URLs. Each part of the site keeps its own list; the JSON API lives under /api/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("marketplace.urls_site")),
    path("", include("marketplace.urls_rounds")),
    path("", include("marketplace.urls_billing")),
    path("", include("training.urls")),
    path("", include("marketplace.urls_delivery")),
    path("", include("marketplace.sponsored.urls")),
    path("api/", include("marketplace.api.urls")),
]
