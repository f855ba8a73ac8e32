"""The job page shows the resolved hyperparameters, except the ones derived from the sealed bids."""

from __future__ import annotations

import pytest

from tests.factories import make_round, make_user
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


def test_bid_derived_settings_of_the_rl_method_are_shown_to_staff_only(client):
    round = make_round(status="training")
    TrainingJob.objects.create(
        round=round, method="grpo", status=TrainingJob.Status.RUNNING,
        hyperparameters={"learning_rate": 0.005, "reward_weights": [0.61803, 0.38197], "reward_scale": 4242.5,
                         "beta": 0.000235},
    )
    client.force_login(make_user())
    body = client.get(f"/rounds/{round.slug}/job/").content.decode()
    assert "learning_rate" in body
    assert "0.61803" not in body and "4242.5" not in body and "0.000235" not in body
    client.force_login(make_user(staff=True))
    assert "4242.5" in client.get(f"/rounds/{round.slug}/job/").content.decode()


def test_training_rows_cannot_be_deleted_in_the_admin(client):
    client.force_login(make_user(staff=True))
    job = TrainingJob.objects.create(round=make_round(status="training"))
    response = client.post(f"/admin/training/trainingjob/{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert TrainingJob.objects.filter(pk=job.pk).exists()
