"""Pairwise labels made in the browser: each one stores a new immutable version holding all of the group's labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.core.errors import AppError, NotFound
from marketplace.models import PreferenceSubmission, Round
from tests.factories import make_group, make_round, make_user
from training.models import Candidate
from training.services.labels import labels_add, labels_pairs

pytestmark = pytest.mark.django_db


def add_candidates(round: Round, per_prompt: int = 3) -> None:
    for p in range(len(round.prompts)):
        for k in range(per_prompt):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}.{k}", base_logprob=-1.0)


@pytest.fixture
def setup():
    member = make_user()
    group = make_group(members=[member])
    round = make_round()
    add_candidates(round)
    return member, group, round


def test_it_stores_a_new_labels_version_holding_every_pair_so_far(setup):
    member, group, round = setup
    first = labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=1, rejected_index=0)
    second = labels_add(user=member, group=group, round=round, prompt_index=1, chosen_index=0, rejected_index=2)

    assert (first.version, second.version) == (1, 2)
    assert second.kind == PreferenceSubmission.Kind.LABELS
    assert second.row_count == 2
    pairs = second.payload["pairs"]
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [
        (round.prompts[0], "answer 0.1", "answer 0.0"),
        (round.prompts[1], "answer 1.0", "answer 1.2"),
    ]
    # Versions are immutable: the first still holds only its own pair.
    first.refresh_from_db()
    assert len(first.payload["pairs"]) == 1


def test_it_numbers_labels_after_an_uploaded_file_and_becomes_the_current_version(setup):
    member, group, round = setup
    PreferenceSubmission.objects.create(
        round=round, group=group, version=1, kind=PreferenceSubmission.Kind.PAIRS,
        payload={"pairs": [{"prompt": "x", "chosen": "a", "rejected": "b"}]}, row_count=1, submitted_by=member,
    )
    created = labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)

    assert created.version == 2
    # Uploaded pairs are not labels: the labels version starts from the group's own labels only.
    assert len(created.payload["pairs"]) == 1
    assert PreferenceSubmission.objects.filter(round=round, group=group).order_by("-version").first() == created


def test_two_members_labelling_keep_each_others_pairs(setup):
    member, group, round = setup
    other = make_user()
    group.memberships.create(user=other)
    labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)
    labels_add(user=other, group=group, round=round, prompt_index=0, chosen_index=2, rejected_index=1)

    assert len(labels_pairs(group=group, round=round)) == 2


@pytest.mark.parametrize("status", [Round.Status.CLOSED, Round.Status.DRAFT, Round.Status.TRAINING, Round.Status.CANCELLED])
def test_it_refuses_labels_when_the_round_is_not_open(setup, status):
    member, group, round = setup
    Round.objects.filter(pk=round.pk).update(status=status)

    with pytest.raises(AppError) as exc:
        labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)
    assert exc.value.code == "round_not_open"
    assert not PreferenceSubmission.objects.filter(round=round).exists()


def test_it_refuses_labels_after_the_closing_time_even_before_the_close_runs(setup):
    member, group, round = setup
    Round.objects.filter(pk=round.pk).update(closes_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(AppError):
        labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)
    assert not PreferenceSubmission.objects.filter(round=round).exists()


@pytest.mark.parametrize(
    "prompt_index, chosen, rejected",
    [(2, 0, 1), (0, 0, 3), (0, 7, 1), (0, 1, 1), (-1, 0, 1), (0, -1, 1)],
)
def test_it_refuses_bad_indices(setup, prompt_index, chosen, rejected):
    member, group, round = setup

    with pytest.raises(AppError) as exc:
        labels_add(user=member, group=group, round=round, prompt_index=prompt_index, chosen_index=chosen, rejected_index=rejected)
    assert exc.value.code == "bad_index"
    assert not PreferenceSubmission.objects.filter(round=round).exists()


def test_it_refuses_a_pair_the_group_already_labelled_either_way_round(setup):
    member, group, round = setup
    labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)

    with pytest.raises(AppError) as exc:
        labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=1, rejected_index=0)
    assert exc.value.code == "already_labelled"
    assert PreferenceSubmission.objects.filter(round=round, group=group).count() == 1


def test_it_refuses_people_outside_the_group(setup):
    _, group, round = setup
    outsider = make_user()

    with pytest.raises(NotFound):
        labels_add(user=outsider, group=group, round=round, prompt_index=0, chosen_index=0, rejected_index=1)
    assert not PreferenceSubmission.objects.filter(round=round).exists()
