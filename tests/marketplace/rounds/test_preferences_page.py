"""The preferences page after a save: a preview of what was parsed, and a warning naming how many pairs have a prompt
that is not one of the round's (they are kept)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketplace.models import PreferenceSubmission
from tests.factories import make_round

pytestmark = pytest.mark.django_db


def _url(round, group):
    return reverse("preferences_edit", kwargs={"slug": round.slug, "group_slug": group.slug})


def test_pairs_outside_the_round_are_kept_with_a_warning_and_a_preview(cast, client):
    round = make_round(prompts=["How do I reset my password?", "Where is my order?"])
    lines = [
        '{"prompt": "How do I reset my password?", "chosen": "Use the link.", "rejected": "No idea."}',
        '{"prompt": "Where is my order?", "chosen": "On its way.", "rejected": "Lost."}',
        '{"prompt": "What is the weather?", "chosen": "Sunny.", "rejected": "Ask later."}',
        '{"prompt": "Tell me a joke", "chosen": "A short one.", "rejected": "No."}',
        '{"prompt": "Tell me a joke", "chosen": "Another.", "rejected": "Still no."}',
        '{"prompt": "Where is my order?", "chosen": "Tracking: 123.", "rejected": "Who knows."}',
    ]
    client.force_login(cast.bob)
    upload = SimpleUploadedFile("pairs.jsonl", ("\n".join(lines) + "\n").encode())
    response = client.post(_url(round, cast.group), {"kind": "pairs", "file": upload}, follow=True)
    assert response.status_code == 200
    assert PreferenceSubmission.objects.filter(group=cast.group, round=round).count() == 1
    page = response.content.decode()
    assert "3 of 6 pairs have a prompt that is not one of this round&#x27;s prompts" in page
    assert 'data-testid="preferences-preview"' in page
    assert "Use the link." in page and "the first 5 of 6" in page


def test_a_saved_rubric_is_shown_in_the_preview_and_the_box(cast, client):
    round = make_round()
    client.force_login(cast.bob)
    client.post(_url(round, cast.group), {"kind": "rubric", "phrases": "kind words, 2\nshort, 1"})
    page = client.get(_url(round, cast.group)).content.decode()
    assert "kind words" in page.split('data-testid="preferences-preview"')[1].split("</section>")[0]
    assert "kind words, 2" in page  # the rubric box comes back filled
