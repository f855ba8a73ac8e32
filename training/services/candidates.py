from __future__ import annotations

import hashlib
import json

from django.db import transaction

from marketplace.rounds.models import Round
from marketplace.rounds.services import round_lock_exclusive
from training.lib.basemodels import load_base
from training.lib.sampling import base_logweights, sample_candidates
from training.models import Candidate
from training.services.common import base_path_for


def candidate_draw_seed(*, round: Round) -> int:
    """The sampling seed of the round's candidate draw: a function of what the round publishes about its candidate
    set (base model, prompts, candidates per prompt, seed), never of its database id, so the same round set up again
    (another `make demo` run, a restored database) draws the same candidates. Staff change ``seed`` for a fresh draw.
    """
    blob = json.dumps(
        [round.base_model, list(round.prompts), int(round.candidates_per_prompt), int(round.seed)],
        separators=(",", ":"), ensure_ascii=False,
    )
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:4], "big")


def candidates_sample(*, round: Round, batch_size: int = 32, max_new_tokens: int = 48) -> int:
    """Sample the round's candidate set once, before any report is seen; returns how many candidates the round has.

    The set is one draw, stored whole or not at all, and never topped up:

    1. If the round already has candidates, nothing is sampled (a redelivered task, a settle after the open).
    2. Otherwise every prompt is sampled in one call, seeded by ``candidate_draw_seed``.
    3. Under the round's row lock, the draw is stored only if the round still has no candidate (compare-and-set on
       "no candidates yet"), and its SHA-256 is published in the same transaction (``candidate_set_sha256`` from "").
       A racing run that lost finds the winner's set under the lock and drops its own draw entirely, so two draws
       can never be mixed, across prompts or within one.

    A set missing prompts (only possible for data stored before this rule) is not completed: the auction refuses to
    run on it (``no_candidates``) and the round is cancelled with that reason, rather than mixing in a later draw.
    """

    if Candidate.objects.filter(round=round).exists():
        _publish_hash_if_complete(round=round)  # sets stored before the hash was published with the draw
        return Candidate.objects.filter(round=round).count()
    model, tokenizer = load_base(base_path_for(round.base_model))
    sampled = sample_candidates(
        model,
        tokenizer,
        list(round.prompts),
        round.candidates_per_prompt,
        seed=candidate_draw_seed(round=round),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    logweights = base_logweights(sampled, proposal_is_base=True)
    rows = [
        Candidate(
            round=round,
            prompt_index=p_index,
            index=k,
            text=cand.text,
            num_tokens=cand.num_tokens,
            base_logprob=cand.base_logprob,
            proposal_logprob=cand.proposal_logprob,
            base_logweight=logweights[p_index][k],
        )
        for p_index in range(len(round.prompts))
        for k, cand in enumerate(sampled[p_index])
    ]
    candidates_store(round=round, rows=rows)
    return Candidate.objects.filter(round=round).count()


def candidates_store(*, round: Round, rows: list[Candidate]) -> bool:
    """Store one whole draw as the round's candidate set, unless another draw got there first; True if this one did.

    The round's row lock orders racing runs; in PostgreSQL's READ COMMITTED each statement after the lock sees what
    the winner committed, so the loser's existence check finds the winner's rows.
    """
    with transaction.atomic():
        round_lock_exclusive(round_id=round.pk)
        if Candidate.objects.filter(round=round).exists():
            return False
        Candidate.objects.bulk_create(rows)
        Round.objects.filter(pk=round.pk, candidate_set_sha256="").update(candidate_set_sha256=candidate_set_hash(round=round))
    return True


def _publish_hash_if_complete(*, round: Round) -> None:
    if Round.objects.filter(pk=round.pk).exclude(candidate_set_sha256="").exists():
        return
    complete = set(Candidate.objects.filter(round=round).values_list("prompt_index", flat=True).distinct())
    if complete == set(range(len(round.prompts))):
        Round.objects.filter(pk=round.pk, candidate_set_sha256="").update(candidate_set_sha256=candidate_set_hash(round=round))


def candidate_set_hash(*, round: Round) -> str:
    """SHA-256 of the candidate set in canonical JSON (prompt index, candidate index, text, base log-weight), published
    on the round page once sampled: anyone can check later that the auction ran on the set fixed before bidding."""
    rows = list(
        Candidate.objects.filter(round=round)
        .order_by("prompt_index", "index")
        .values_list("prompt_index", "index", "text", "base_logweight")
    )
    blob = json.dumps([[p, k, t, float(w)] for p, k, t, w in rows], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def candidates_by_prompt(*, round: Round) -> list[list[Candidate]]:
    out: list[list[Candidate]] = [[] for _ in round.prompts]
    for cand in Candidate.objects.filter(round=round).order_by("prompt_index", "index"):
        out[cand.prompt_index].append(cand)
    return out
