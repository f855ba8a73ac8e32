"""Rounds: staff create and edit them within the rules; the public pages show a round but never a bid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from marketplace.core.errors import AppError, NotAllowed
from marketplace.forms.rounds import prompts_from_text, prompts_to_text
from marketplace.models import Round
from marketplace.rounds.editing import round_create, round_update
from tests.factories import make_bid, make_group, make_round, make_user

pytestmark = pytest.mark.django_db


S = Round.Status


@pytest.fixture
def staff():
    return make_user(staff=True)


def window(hours=24):
    opens = timezone.now() + timedelta(hours=1)
    return {"opens_at": opens, "closes_at": opens + timedelta(hours=hours)}


def create(staff, **over):
    fields = dict(title="Support tone", prompts=["Hello?", "Refund?"], kl_weight=2.0, **window())
    fields.update(over)
    return round_create(by=staff, **fields)


# ---------- the service ----------


def test_staff_create_a_draft_with_a_unique_slug(staff):
    first, second = create(staff), create(staff)
    assert first.status == S.DRAFT and first.base_model == "tiny" and first.currency == "usd"
    assert (first.slug, second.slug) == ("support-tone", "support-tone-2")


def test_only_staff_create_or_edit_rounds(staff):
    with pytest.raises(NotAllowed):
        create(make_user())
    round = create(staff)
    with pytest.raises(NotAllowed):
        round_update(round=round, by=make_user(), title="Mine now")


@pytest.mark.parametrize(
    "over,field",
    [
        ({"title": "  "}, "title"),
        ({"kl_weight": 0}, "kl_weight"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"kl_weight": float("nan")}, "kl_weight"),
        ({"candidates_per_prompt": 0}, "candidates_per_prompt"),
        ({"candidates_per_prompt": 65}, "candidates_per_prompt"),
        ({"currency": "us"}, "currency"),
        ({"currency": "US1"}, "currency"),
        ({"prompts": []}, "prompts"),
        ({"prompts": ["a", " "]}, "prompts"),
        ({"prompts": ["a", "a"]}, "prompts"),
        ({"prompts": ["a", "b"], "prompt_weights": [1.0]}, "prompts"),
        ({"prompts": ["a"], "prompt_weights": [0]}, "prompts"),
    ],
)
def test_it_refuses_invalid_round_fields(staff, over, field):
    with pytest.raises(AppError) as caught:
        create(staff, **over)
    assert caught.value.field == field
    assert not Round.objects.exists()


def test_bidding_must_close_after_it_opens(staff):
    now = timezone.now()
    with pytest.raises(AppError, match="close after it opens") as caught:
        create(staff, opens_at=now, closes_at=now)
    assert caught.value.field == "closes_at"


def test_currency_is_stored_lower_case(staff):
    assert create(staff, currency="EUR").currency == "eur"


def test_the_prompt_set_base_model_and_candidates_change_only_in_draft(staff):
    round = create(staff)
    round_update(round=round, by=staff, prompts=["New"], base_model="other", candidates_per_prompt=16)
    round.refresh_from_db()
    assert (round.prompts, round.base_model, round.candidates_per_prompt) == (["New"], "other", 16)

    Round.objects.filter(pk=round.pk).update(status=S.OPEN)
    for change in ({"prompts": ["Other"]}, {"base_model": "gpt2"}, {"candidates_per_prompt": 4}, {"kl_weight": 9.0}):
        with pytest.raises(AppError, match="only be changed while the round is a draft"):
            round_update(round=round, by=staff, **change)
    round.refresh_from_db()
    assert (round.prompts, round.base_model, round.candidates_per_prompt) == (["New"], "other", 16)


def test_unchanged_frozen_fields_do_not_block_an_edit_of_the_title(staff):
    round = create(staff)
    Round.objects.filter(pk=round.pk).update(status=S.OPEN)
    updated = round_update(round=round, by=staff, title="Better title", prompts=list(round.prompts), base_model="tiny")
    assert updated.title == "Better title"


def test_the_window_is_fixed_after_the_close(staff):
    round = create(staff)
    Round.objects.filter(pk=round.pk).update(status=S.CLOSED)
    with pytest.raises(AppError, match="window can no longer be changed"):
        round_update(round=round, by=staff, closes_at=round.closes_at + timedelta(days=1))


def test_an_edit_cannot_make_bidding_close_before_it_opens(staff):
    round = create(staff)
    with pytest.raises(AppError, match="close after it opens"):
        round_update(round=round, by=staff, closes_at=round.opens_at - timedelta(minutes=1))


def test_prompts_with_line_breaks_survive_the_textarea():
    prompts = ["Question: hi?\nAnswer:", "back\\slash", "plain"]
    assert prompts_from_text(prompts_to_text(prompts)) == prompts


# ---------- staff pages ----------


def form_data(**over):
    data = {
        "title": "Tone",
        "description": "",
        "base_model": "tiny",
        "prompts_text": "Hello?\nQuestion: refund?\\nAnswer:",
        "kl_weight": "1.5",
        "candidates_per_prompt": "8",
        "currency": "usd",
        "opens_at": "2030-01-01T10:00",
        "closes_at": "2030-01-02T10:00",
    }
    data.update(over)
    return data


def test_staff_create_a_round_on_the_page(client, staff):
    client.force_login(staff)
    response = client.post(reverse("staff_round_new"), form_data())
    round = Round.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("staff_round_detail", kwargs={"slug": round.slug})
    assert round.prompts == ["Hello?", "Question: refund?\nAnswer:"] and round.kl_weight == 1.5


def test_staff_upload_a_prompt_set_as_jsonl(client, staff):
    client.force_login(staff)
    data = form_data(prompts_text="")
    data["prompts_file"] = SimpleUploadedFile("p.jsonl", b'{"prompt": "A", "weight": 2}\n{"prompt": "B", "weight": 1}\n')
    client.post(reverse("staff_round_new"), data)
    round = Round.objects.get()
    assert (round.prompts, round.prompt_weights) == (["A", "B"], [2.0, 1.0])


def test_a_bad_prompt_file_is_refused_with_line_numbers(client, staff):
    client.force_login(staff)
    data = form_data(prompts_text="")
    data["prompts_file"] = SimpleUploadedFile("p.jsonl", b'{"prompt": "A"}\n{"prompt": 3}\n')
    response = client.post(reverse("staff_round_new"), data)
    assert response.status_code == 400
    assert "line 2: &#x27;prompt&#x27; must be a string, not number" in response.content.decode()
    assert not Round.objects.exists()


@pytest.mark.parametrize(
    "over,message",
    [
        ({"kl_weight": "0"}, "greater than 0"),
        ({"closes_at": "2030-01-01T09:00"}, "close after it opens"),
        ({"candidates_per_prompt": "65"}, "less than or equal to 64"),
        ({"currency": "dollars"}, "at most 3 characters"),
        ({"prompts_text": "  \n "}, "at least one prompt"),
    ],
)
def test_the_form_shows_errors_beside_fields(client, staff, over, message):
    client.force_login(staff)
    response = client.post(reverse("staff_round_new"), form_data(**over))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Round.objects.exists()


def test_editing_an_open_round_keeps_its_prompts(client, staff):
    round = make_round(created_by=staff)
    client.force_login(staff)
    body = client.get(reverse("staff_round_edit", kwargs={"slug": round.slug})).content.decode()
    assert "Fixed once the round leaves draft" in body
    data = form_data(title="Renamed", prompts_text="Sneaky new prompt", base_model="gpt2",
                     opens_at=round.opens_at.strftime("%Y-%m-%dT%H:%M"), closes_at=round.closes_at.strftime("%Y-%m-%dT%H:%M"))
    response = client.post(reverse("staff_round_edit", kwargs={"slug": round.slug}), data)
    assert response.status_code == 302
    round.refresh_from_db()
    assert round.title == "Renamed" and round.base_model == "tiny" and "Sneaky new prompt" not in round.prompts


def test_editing_the_title_of_a_closed_round_keeps_its_window(client, staff):
    round = make_round(status=S.CLOSED, created_by=staff)
    original = (round.opens_at, round.closes_at)
    client.force_login(staff)
    url = reverse("staff_round_edit", kwargs={"slug": round.slug})
    body = client.get(url).content.decode()
    assert "Fixed once bidding has closed" in body
    response = client.post(url, form_data(title="Closed but renamed", opens_at="2001-01-01T00:00"))
    assert response.status_code == 302
    round.refresh_from_db()
    assert round.title == "Closed but renamed" and (round.opens_at, round.closes_at) == original


def test_an_untouched_window_keeps_its_seconds(client, staff):
    round = make_round(created_by=staff)
    original = (round.opens_at, round.closes_at)
    client.force_login(staff)
    data = form_data(title="Open and renamed", opens_at=round.opens_at.strftime("%Y-%m-%dT%H:%M"),
                     closes_at=round.closes_at.strftime("%Y-%m-%dT%H:%M"))
    assert client.post(reverse("staff_round_edit", kwargs={"slug": round.slug}), data).status_code == 302
    round.refresh_from_db()
    assert (round.opens_at, round.closes_at) == original


def test_staff_buttons_open_and_close_a_round(client, staff):
    round = make_round(status=S.DRAFT, created_by=staff)
    client.force_login(staff)
    client.post(reverse("staff_round_open", kwargs={"slug": round.slug}))
    round.refresh_from_db()
    assert round.status == S.OPEN
    client.post(reverse("staff_round_close", kwargs={"slug": round.slug}))
    round.refresh_from_db()
    assert round.status == S.CLOSED
    response = client.post(reverse("staff_round_open", kwargs={"slug": round.slug}), follow=True)
    assert "Nothing changed" in response.content.decode() or "cannot" in response.content.decode()
    round.refresh_from_db()
    assert round.status == S.CLOSED


def test_staff_cancel_a_draft(client, staff):
    round = make_round(status=S.DRAFT, created_by=staff)
    client.force_login(staff)
    client.post(reverse("staff_round_cancel", kwargs={"slug": round.slug}))
    round.refresh_from_db()
    assert round.status == S.CANCELLED


def test_lifecycle_buttons_need_post(client, staff):
    round = make_round(status=S.DRAFT, created_by=staff)
    client.force_login(staff)
    assert client.get(reverse("staff_round_open", kwargs={"slug": round.slug})).status_code == 405
    round.refresh_from_db()
    assert round.status == S.DRAFT


def test_staff_see_bid_amounts_only_after_the_close(client, staff):
    round = make_round()
    group = make_group(name="Sealed Group")
    make_bid(round=round, group=group, amount_cents=98_765)
    client.force_login(staff)
    url = reverse("staff_round_detail", kwargs={"slug": round.slug})
    body = client.get(url).content.decode()
    assert "987.65" not in body and "Sealed Group" not in body and "sealed until bidding closes" in body
    Round.objects.filter(pk=round.pk).update(status=S.CLOSED)
    body = client.get(url).content.decode()
    assert "$987.65" in body and "Sealed Group" in body


# ---------- public pages ----------


def test_the_public_list_shows_rounds_past_draft(client):
    open_round = make_round(title="Open one")
    make_round(status=S.DRAFT, title="Secret draft")
    body = client.get(reverse("round_list")).content.decode()
    assert "Open one" in body and "Secret draft" not in body
    assert open_round.get_status_display() in body


def test_drafts_are_not_found_except_for_staff(client, staff):
    draft = make_round(status=S.DRAFT)
    url = reverse("round_detail", kwargs={"slug": draft.slug})
    assert client.get(url).status_code == 404
    client.force_login(make_user())
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_the_round_page_never_shows_bids_and_counts_groups_only_after_close(client):
    round = make_round(kl_weight=2.5, prompts=["Why is the sky blue?"])
    group = make_group(name="Bidders Inc")
    make_bid(round=round, group=group, amount_cents=55_555)
    url = reverse("round_detail", kwargs={"slug": round.slug})
    body = client.get(url).content.decode()
    assert "Why is the sky blue?" in body and "2.5" in body
    assert "555.55" not in body and "Bidders Inc" not in body and "Groups that bid" not in body
    Round.objects.filter(pk=round.pk).update(status=S.CLOSED)
    body = client.get(url).content.decode()
    assert "Groups that bid</dt><dd>1<" in body
    assert "555.55" not in body and "Bidders Inc" not in body


def test_members_see_their_groups_participation_and_links(client):
    member = make_user()
    group = make_group(members=[member], name="My Team")
    other = make_group(name="Their Team")
    round = make_round()
    make_bid(round=round, group=group, amount_cents=1234)
    make_bid(round=round, group=other, amount_cents=4321)
    client.force_login(member)
    body = client.get(reverse("round_detail", kwargs={"slug": round.slug})).content.decode()
    assert "My Team" in body and "Bid placed" in body
    assert reverse("preferences_edit", kwargs={"slug": round.slug, "group_slug": group.slug}) in body
    assert reverse("bid_edit", kwargs={"slug": round.slug, "group_slug": group.slug}) in body
    assert "Their Team" not in body and "12.34" not in body and "43.21" not in body
