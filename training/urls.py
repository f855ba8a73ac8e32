"""Training pages: a round's live progress and job, a group's reward model, and pairwise labelling in the browser."""

from __future__ import annotations

from django.urls import path

from training import views

urlpatterns = [
    path("rounds/<slug:slug>/progress.json", views.round_progress_json, name="round_progress"),
    path("rounds/<slug:slug>/job/", views.round_job, name="round_job"),
    path("rounds/<slug:slug>/job/live/", views.round_job_live, name="round_job_live"),
    path("rounds/<slug:slug>/job/cancel/", views.round_job_cancel, name="round_job_cancel"),
    path(
        "rounds/<slug:slug>/groups/<slug:group_slug>/reward-model/",
        views.group_reward_model,
        name="group_reward_model",
    ),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/label/", views.group_label, name="group_label"),
]
