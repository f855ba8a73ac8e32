from __future__ import annotations

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
            Candidate.objects.bulk_create(rows, ignore_conflicts=True)
    return Candidate.objects.filter(round=round).count()


def candidates_by_prompt(*, round: Round) -> list[list[Candidate]]:
    out: list[list[Candidate]] = [[] for _ in round.prompts]
    for cand in Candidate.objects.filter(round=round).order_by("prompt_index", "index"):
        out[cand.prompt_index].append(cand)
    return out
