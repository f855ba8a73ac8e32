"""Pairwise labelling in the browser: a member compares candidate responses and each answer is stored as preferences."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from marketplace.models import PreferenceSubmission
from tests.browser import pages
from tests.factories import make_group, make_round, make_user
from training.models import Candidate

pytestmark = pytest.mark.browser


def _candidates(round, per_prompt: int = 3) -> None:
    # Stored rows stand in for the sampler here: the page only reads them.
    for p in range(len(round.prompts)):
        for i in range(per_prompt):
            Candidate.objects.create(
                round=round, prompt_index=p, index=i, text=f"Answer {i} to question {p}: " + "very " * i + "clear.",
                num_tokens=5 + i, base_logprob=-3.0 - i,
            )


def test_a_member_labels_pairs_and_each_choice_is_saved_as_the_groups_preferences(site, new_page, screenshot):
    member = make_user("lin@example.com")
    group = make_group(members=[member], name="Plain Speakers")
    round = make_round(title="Support answers, autumn")
    _candidates(round)
    page = new_page()
    pages.log_in(page, member.email)
    page.goto(f"/rounds/{round.slug}/groups/{group.slug}/label/")
    expect(page.get_by_test_id("labelled-count")).to_have_text("0")
    screenshot(page, "30-label-pair")

    chosen = []
    for expected_count in (1, 2):
        a_text = page.get_by_test_id("candidate-a").locator("p").inner_text()
        page.get_by_role("button", name="A is better").click()
        expect(page.locator(".messages")).to_contain_text(f"Your group has labelled {expected_count} pair")
        expect(page.get_by_test_id("labelled-count")).to_have_text(str(expected_count))
        chosen.append(a_text)
    page.get_by_role("button", name="Skip").click()
    expect(page.get_by_test_id("labelled-count")).to_have_text("2")
    screenshot(page, "31-label-saved")

    latest = PreferenceSubmission.objects.filter(group=group, round=round).order_by("-version").first()
    assert latest is not None and latest.kind == PreferenceSubmission.Kind.LABELS
    assert latest.row_count == 2 and latest.submitted_by == member
    # What was shown as A is what was stored as chosen, in order.
    assert [pair["chosen"] for pair in latest.payload["pairs"]] == chosen
