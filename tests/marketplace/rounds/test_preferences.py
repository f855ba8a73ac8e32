"""A group's reward preferences: versions, the close, who may submit, and bad uploads that store nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from marketplace.core.errors import AppError, NotFound
from marketplace.models import PreferenceSubmission, Round
from marketplace.rounds.preference_files import UploadInvalid
from marketplace.rounds.selectors import preferences_current
from tests.factories import make_group, make_round, make_user
from training.services.submissions import preferences_submit

pytestmark = pytest.mark.django_db


PAIRS = b'{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"prompt": "Q2", "chosen": "C", "rejected": "D"}\n'
RUBRIC = {"phrases": [{"phrase": "step by step", "weight": 2}], "target_length_words": None}


@pytest.fixture
def setup():
    member = make_user()
    group = make_group(members=[member])
    return group, member, make_round()


def url(round, group):
    return reverse("preferences_edit", kwargs={"slug": round.slug, "group_slug": group.slug})


def test_every_submission_is_a_new_version_and_the_newest_counts(setup):
    group, member, round = setup
    first = preferences_submit(user=member, group=group, round=round, kind="pairs", payload=PAIRS, source_name="a.jsonl")
    second = preferences_submit(user=member, group=group, round=round, kind="rubric", payload=RUBRIC)
    assert (first.version, second.version) == (1, 2)
    assert first.row_count == 2 and first.payload["pairs"][0] == {"prompt": "Q", "chosen": "A", "rejected": "B"}
    assert preferences_current(group=group, round=round).pk == second.pk


def test_versions_count_per_group_and_round(setup):
    group, member, round = setup
    other_round = make_round()
    preferences_submit(user=member, group=group, round=round, kind="rubric", payload=RUBRIC)
    assert preferences_submit(user=member, group=group, round=other_round, kind="rubric", payload=RUBRIC).version == 1


def test_it_refuses_preferences_after_the_close(setup):
    group, member, _ = setup
    closed = make_round(status=Round.Status.CLOSED)
    with pytest.raises(AppError, match="has closed"):
        preferences_submit(user=member, group=group, round=closed, kind="rubric", payload=RUBRIC)
    past_window = make_round(closes_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AppError, match="has closed"):
        preferences_submit(user=member, group=group, round=past_window, kind="rubric", payload=RUBRIC)
    assert PreferenceSubmission.objects.count() == 0


def test_it_refuses_outsiders(setup):
    group, _, round = setup
    with pytest.raises(NotFound):
        preferences_submit(user=make_user(staff=True), group=group, round=round, kind="rubric", payload=RUBRIC)


def test_it_refuses_kinds_it_does_not_take_here(setup):
    group, member, round = setup
    with pytest.raises(AppError, match="cannot be submitted here"):
        preferences_submit(user=member, group=group, round=round, kind="labels", payload={})


def _candidates(round, slots=((0, 0), (0, 1), (1, 0))):
    from training.models import Candidate

    for p, k in slots:
        Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}.{k}", base_logprob=-3.0)


def test_direct_scores_are_stored_as_a_version(setup):
    group, member, round = setup
    _candidates(round)
    sub = preferences_submit(user=member, group=group, round=round, kind="scores", payload={"scores": {"0:0": 1, "0:1": -2.5}})
    assert sub.kind == "scores" and sub.row_count == 2
    assert sub.payload == {"scores": {"0:0": 1.0, "0:1": -2.5}}


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({}, "non-empty object"),
        ({"first": 1.0}, "candidate 'first'"),
        ({"0:1": "high"}, "finite number"),
        ({"0:1": float("nan")}, "finite number"),
    ],
)
def test_bad_direct_scores_are_refused_and_nothing_is_stored(setup, scores, message):
    group, member, round = setup
    with pytest.raises(AppError, match=message):
        preferences_submit(user=member, group=group, round=round, kind="scores", payload={"scores": scores})
    assert not PreferenceSubmission.objects.filter(group=group, round=round).exists()


def test_scores_for_candidates_the_round_does_not_have_are_refused(setup):
    group, member, round = setup
    _candidates(round)
    with pytest.raises(AppError, match="No such candidate in this round: 7:0"):
        preferences_submit(user=member, group=group, round=round, kind="scores", payload={"scores": {"0:0": 1, "7:0": 2}})
    assert not PreferenceSubmission.objects.filter(group=group, round=round).exists()


def test_a_single_preference_pair_is_refused_at_upload(setup):
    group, member, round = setup
    one = b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    with pytest.raises(AppError, match="at least 2 are needed"):
        preferences_submit(user=member, group=group, round=round, kind="pairs", payload=one, source_name="one.jsonl")
    assert not PreferenceSubmission.objects.filter(group=group, round=round).exists()


def test_a_scores_csv_is_read_with_line_numbered_errors(setup):
    group, member, round = setup
    _candidates(round)
    good = b"prompt_index,candidate_index,score,prompt,response\n0,0,3,p,a\n0,1,,p,b\n1,0,-1,q,c\n"
    sub = preferences_submit(user=member, group=group, round=round, kind="scores", payload=good, source_name="s.csv")
    assert sub.payload == {"scores": {"0:0": 3.0, "1:0": -1.0}}
    bad = b"prompt_index,candidate_index,score\n0,0,3\nx,1,2\n"
    with pytest.raises(AppError, match="line 3"):
        preferences_submit(user=member, group=group, round=round, kind="scores", payload=bad, source_name="s.csv")


def test_a_member_uploads_pairs_on_the_page_and_sees_the_version(client, setup):
    group, member, round = setup
    client.force_login(member)
    response = client.post(
        url(round, group), {"kind": "pairs", "file": SimpleUploadedFile("prefs.jsonl", PAIRS)}, follow=True
    )
    assert response.status_code == 200
    assert "Saved as version 1" in response.content.decode()
    assert "prefs.jsonl" in response.content.decode()
    assert preferences_current(group=group, round=round).source_name == "prefs.jsonl"


def test_a_member_writes_a_rubric_on_the_page(client, setup):
    group, member, round = setup
    client.force_login(member)
    response = client.post(url(round, group), {"kind": "rubric", "phrases": "polite, 1\nrude, -2", "target_length_words": "80"})
    assert response.status_code == 302
    current = preferences_current(group=group, round=round)
    assert current.payload == {
        "phrases": [{"phrase": "polite", "weight": 1.0}, {"phrase": "rude", "weight": -2.0}],
        "target_length_words": 80,
    }


def test_a_bad_rubric_shows_line_numbered_errors_and_stores_nothing(client, setup):
    group, member, round = setup
    client.force_login(member)
    response = client.post(url(round, group), {"kind": "rubric", "phrases": "polite, 1\npolite, 2"})
    assert response.status_code == 400
    assert "line 2: &#x27;polite&#x27; is listed twice" in response.content.decode()
    assert PreferenceSubmission.objects.count() == 0


BAD_UPLOADS = [
    ("missing field", "p.jsonl", b'{"prompt": "Q", "chosen": "A"}\n', "line 1: missing field &#x27;rejected&#x27;"),
    (
        "identical",
        "p.jsonl",
        PAIRS + b'{"prompt": "Q", "chosen": "X", "rejected": "X"}\n',
        "line 3: &#x27;chosen&#x27; and &#x27;rejected&#x27; are identical",
    ),
    ("not utf-8", "p.csv", b"prompt,chosen,rejected\nQ,\xff,B\n", "byte 25 (0xff) cannot be decoded"),
    ("empty", "p.jsonl", b"", "The file is empty."),
    ("missing column", "p.csv", b"prompt,chosen\nQ,A\n", "line 1: missing column &#x27;rejected&#x27;"),
    ("extra column", "p.csv", b"prompt,chosen,rejected,x\nQ,A,B,C\n", "line 1: unexpected column &#x27;x&#x27;"),
    ("non-string", "p.jsonl", b'{"prompt": "Q", "chosen": ["A"], "rejected": "B"}\n', "must be a string, not list"),
    ("not json", "p.jsonl", b'{"prompt": "Q",\n', "line 1: not valid JSON"),
]


@pytest.mark.parametrize("name,filename,data,message", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_a_bad_upload_gets_its_own_message_and_changes_nothing(client, setup, name, filename, data, message):
    group, member, round = setup
    preferences_submit(user=member, group=group, round=round, kind="rubric", payload=RUBRIC)
    before = PreferenceSubmission.objects.count()
    client.force_login(member)
    response = client.post(url(round, group), {"kind": "pairs", "file": SimpleUploadedFile(filename, data)})
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert "Nothing was saved" in body
    assert PreferenceSubmission.objects.count() == before
    assert preferences_current(group=group, round=round).kind == "rubric"


def test_an_upload_over_the_limit_is_refused_and_changes_nothing(client, setup, settings):
    group, member, round = setup
    settings.PREFERENCE_UPLOAD_MAX_BYTES = len(PAIRS) - 1
    client.force_login(member)
    response = client.post(url(round, group), {"kind": "pairs", "file": SimpleUploadedFile("p.jsonl", PAIRS)})
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert PreferenceSubmission.objects.count() == 0


def test_the_page_lists_versions_and_refuses_changes_after_close(client, setup):
    group, member, round = setup
    preferences_submit(user=member, group=group, round=round, kind="rubric", payload=RUBRIC)
    preferences_submit(user=member, group=group, round=round, kind="pairs", payload=PAIRS, source_name="v2.jsonl")
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)
    client.force_login(member)
    body = client.get(url(round, group)).content.decode()
    assert "v2.jsonl" in body and "Version 2 is the one that counts" in body
    assert "Upload pairs" not in body
    response = client.post(url(round, group), {"kind": "rubric", "phrases": "x, 1"}, follow=True)
    assert "has closed" in response.content.decode()
    assert PreferenceSubmission.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_get_distinct_versions():
    member = make_user()
    group = make_group(members=[member])
    round = make_round()
    results: list[object] = []
    barrier = threading.Barrier(4)

    def submit():
        try:
            barrier.wait()
            results.append(preferences_submit(user=member, group=group, round=round, kind="rubric", payload=RUBRIC).version)
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4]


def test_uploaded_payload_is_the_parsed_pairs_not_the_raw_file(setup):
    group, member, round = setup
    csv_data = b"prompt,chosen,rejected\nQ,A,B\nQ2,C,D\n"
    submission = preferences_submit(user=member, group=group, round=round, kind="pairs", payload=csv_data, source_name="x.csv")
    assert json.loads(json.dumps(submission.payload)) == {
        "format": "csv",
        "pairs": [{"prompt": "Q", "chosen": "A", "rejected": "B"}, {"prompt": "Q2", "chosen": "C", "rejected": "D"}],
    }


def test_the_service_raises_upload_invalid_with_all_problems(setup):
    group, member, round = setup
    with pytest.raises(UploadInvalid) as caught:
        preferences_submit(
            user=member, group=group, round=round, kind="pairs", payload=b'{"prompt": "Q"}\n', source_name="p.jsonl"
        )
    assert caught.value.errors == ["line 1: missing field 'chosen'", "line 1: missing field 'rejected'"]
