"""The candidate set is one draw: stored whole or not at all, never topped up, never mixed with a racing draw."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from marketplace.models import Round
from tests.factories import make_round
from training.lib.sampling import Candidate as Sampled
from training.models import Candidate
from training.services import candidates as candidate_services
from training.services.candidates import candidate_draw_seed, candidate_set_hash, candidates_sample


def _fake_draws(monkeypatch, *, both_drawn: threading.Barrier | None = None):
    """Replace the model with draws named by their caller ("draw 1", "draw 2", ...), so a stored set says where each
    candidate came from. With ``both_drawn``, every caller waits there after its draw: all of them have passed the
    "no candidates yet" check before any stores."""
    calls: list[int] = []
    lock = threading.Lock()

    def sample_candidates(model, tokenizer, prompts, n, *, seed, **kwargs):
        with lock:
            calls.append(seed)
            draw = len(calls)
        if both_drawn is not None:
            both_drawn.wait(timeout=30)
        return [
            [Sampled(text=f"draw {draw}: prompt {p} candidate {k}", base_logprob=-1.0 - k, proposal_logprob=None, num_tokens=3)
             for k in range(n)]
            for p in range(len(prompts))
        ]

    monkeypatch.setattr(candidate_services, "load_base", lambda path: (None, None))
    monkeypatch.setattr(candidate_services, "base_path_for", lambda name: name)
    monkeypatch.setattr(candidate_services, "sample_candidates", sample_candidates)
    return calls


def _draws_stored(round) -> set[str]:
    return {text.split(":")[0] for text in Candidate.objects.filter(round=round).values_list("text", flat=True)}


@pytest.mark.django_db(transaction=True)
def test_two_racing_samplings_store_one_whole_draw_and_never_mix(monkeypatch):
    round = make_round(prompts=[f"Question: {i}?\nAnswer:" for i in range(3)], candidates_per_prompt=4)
    calls = _fake_draws(monkeypatch, both_drawn=threading.Barrier(2))
    stored: list[bool] = []
    real_store = candidate_services.candidates_store

    def store(**kwargs):
        stored.append(real_store(**kwargs))
        return stored[-1]

    monkeypatch.setattr(candidate_services, "candidates_store", store)
    errors: list[BaseException] = []

    def run():
        try:
            candidates_sample(round=Round.objects.get(pk=round.pk))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(calls) == 2, "both runs drew before either stored"
    assert sorted(stored) == [False, True]
    assert len(_draws_stored(round)) == 1
    assert Candidate.objects.filter(round=round).count() == 3 * 4
    round.refresh_from_db()
    assert round.candidate_set_sha256 == candidate_set_hash(round=round)


@pytest.mark.django_db
def test_a_stored_set_is_never_topped_up_by_a_later_draw(monkeypatch):
    round = make_round(prompts=["Question: a?\nAnswer:", "Question: b?\nAnswer:"], candidates_per_prompt=2)
    Candidate.objects.create(round=round, prompt_index=0, index=0, text="old: a", base_logprob=-1.0)
    calls = _fake_draws(monkeypatch)

    assert candidates_sample(round=round) == 1
    assert calls == [] and _draws_stored(round) == {"old"}
    round.refresh_from_db()
    assert round.candidate_set_sha256 == ""  # incomplete: nothing to commit to, and the auction refuses it


@pytest.mark.django_db
def test_the_draw_depends_on_the_rounds_published_parameters_not_its_id(monkeypatch):
    first = make_round(prompts=["Question: a?\nAnswer:"], seed=7)
    again = make_round(prompts=["Question: a?\nAnswer:"], seed=7)
    other = make_round(prompts=["Question: a?\nAnswer:"], seed=8)
    assert candidate_draw_seed(round=first) == candidate_draw_seed(round=again) != candidate_draw_seed(round=other)
    calls = _fake_draws(monkeypatch)
    candidates_sample(round=first)
    candidates_sample(round=again)
    assert calls[0] == calls[1] == candidate_draw_seed(round=first)
    first.refresh_from_db()
    assert first.candidate_set_sha256 == candidate_set_hash(round=first)
