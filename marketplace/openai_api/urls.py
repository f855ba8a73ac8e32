"""/v1/: the OpenAI-compatible API (mounted by marketplace.urls)."""

from __future__ import annotations

from django.urls import path

from marketplace.openai_api import views

urlpatterns = [
    path("models", views.models_list, name="openai_models"),
    path("completions", views.completions, name="openai_completions"),
    path("chat/completions", views.chat_completions, name="openai_chat_completions"),
]
