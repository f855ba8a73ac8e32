from __future__ import annotations

import hashlib
import json

from django.db import transaction

from marketplace.rounds.models import Round
from training.lib.basemodels import load_base
from training.lib.sampling import base_logweights, sample_candidates
from training.models import Candidate
from training.services.common import base_path_for


def candidates_sample(*, round: Round, batch_size: int = 32, max_new_tokens: int = 48) -> int:
    """Sample the round's candidate set once, before any report is seen; returns how many candidates the round has.

    Idempotent: prompts that already have their candidates are skipped, and the unique (round, prompt, index)
    constraint makes a racing second run insert nothing.
    """

    done = set(Candidate.objects.filter(round=round).values_list("prompt_index", flat=True).distinct())
    todo = [i for i in range(len(round.prompts)) if i not in done]
    if todo:
        model, tokenizer = load_base(base_path_for(round.base_model))
        prompts = [round.prompts[i] for i in todo]
        sampled = sample_candidates(
            model,
            tokenizer,
            prompts,
            round.candidates_per_prompt,
            seed=round.seed * 1_000_003 + round.pk,
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
                base_logweight=logweights[j][k],
            )
            for j, p_index in enumerate(todo)
            for k, cand in enumerate(sampled[j])
        ]
        with transaction.atomic():
            # Under the round's row lock, a prompt's candidates come whole from one draw: a racing run that stored a
            # prompt first keeps it, and this run's rows for that prompt are dropped, never mixed in.
            Round.objects.select_for_update().filter(pk=round.pk).first()
            stored = set(Candidate.objects.filter(round=round).values_list("prompt_index", flat=True).distinct())
            Candidate.objects.bulk_create([row for row in rows if row.prompt_index not in stored])
    count = Candidate.objects.filter(round=round).count()
    if count and not Round.objects.filter(pk=round.pk).exclude(candidate_set_sha256="").exists():
        complete = set(Candidate.objects.filter(round=round).values_list("prompt_index", flat=True).distinct())
        if complete == set(range(len(round.prompts))):
            Round.objects.filter(pk=round.pk, candidate_set_sha256="").update(
                candidate_set_sha256=candidate_set_hash(round=round)
            )
    return count


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
