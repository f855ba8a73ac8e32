"""Reading training state for people: a round's public progress, its job, a group's reward model and the next pair to label.

Nothing here returns a bid, a payment or another group's numbers unless the function says it is for staff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from marketplace.core.errors import NotFound
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import GroupOutcome
from marketplace.rounds.selectors import preferences_current, round_get_public
from training.models import Candidate, Checkpoint, Evaluation, JobEvent, RewardModel, TrainingJob
from training.services.labels import labelled_keys, labels_pairs

S = Round.Status
J = TrainingJob.Status
STEPS = [S.DRAFT, S.OPEN, S.CLOSED, S.TRAINING, S.DELIVERED]
FINAL_ROUND_STATUSES = (S.DELIVERED, S.FAILED, S.CANCELLED)
PLATFORM_ERROR = "The training run stopped because of a problem on our side. Nobody is charged for this round."
EVENTS_SHOWN = 10


def round_current_job(*, round: Round) -> TrainingJob | None:
    """The round's newest job (a retried round keeps its earlier, failed jobs)."""
    return TrainingJob.objects.newest_for(round)


def job_public_error(*, job: TrainingJob) -> str:
    """The error as people outside staff see it: a user fault's own message, a generic line for a platform fault."""
    if job.status != J.FAILED and not job.error_message:
        return ""
    if job.fault == TrainingJob.Fault.PLATFORM:
        return PLATFORM_ERROR
    return job.error_message


def _public_event_message(*, job: TrainingJob, event: JobEvent) -> str:
    if event.type == JobEvent.Type.ERROR and job.fault != TrainingJob.Fault.USER:
        return PLATFORM_ERROR
    # Worker names are host:pid; nobody outside staff needs them.
    if job.worker and job.worker in event.message:
        return event.message.replace(job.worker, "a training worker")
    return event.message


def job_events_recent(*, job: TrainingJob, limit: int = EVENTS_SHOWN) -> list[JobEvent]:
    """The last `limit` events, oldest first."""
    events = list(JobEvent.objects.filter(job=job).order_by("-created_at", "-pk")[:limit])
    events.reverse()
    return events


def round_steps(*, round: Round) -> list[dict[str, str]]:
    """The stepper draft -> open -> closed -> training -> delivered, each step done, current or todo."""
    labels = dict(S.choices)
    if round.status in STEPS:
        current = STEPS.index(S(round.status))
    else:  # failed or cancelled: nothing is current, the status badge says what happened
        current = -1
    steps = []
    for i, status in enumerate(STEPS):
        if current == -1:
            state = "todo"
        elif i < current or (i == current and status == S.DELIVERED):
            state = "done"
        elif i == current:
            state = "current"
        else:
            state = "todo"
        steps.append({"status": str(status), "label": "Open" if status == S.OPEN else labels[status], "state": state})
    return steps


def round_progress(*, round: Round) -> dict[str, Any]:
    """Where the round is, safe for anyone who may see the round: no bids, no payments, no per-group numbers."""
    job = round_current_job(round=round)
    job_data = None
    events: list[dict[str, Any]] = []
    evaluation_data = None
    if job is not None:
        job_data = {
            "status": job.status,
            "status_display": job.get_status_display(),
            "steps_done": job.steps_done,
            "total_steps": job.total_steps,
            "progress": min(max(job.progress, 0.0), 1.0),
            "tokens_seen": job.tokens_seen,
            "loss": job.loss,
            # The estimate is stale once the job stops; a finished job has no time left.
            "eta_seconds": job.eta_seconds if job.status == J.RUNNING else None,
            "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
            "error_message": job_public_error(job=job),
            "attempt": job.attempt,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            # The job page's checkpoint table follows the same poll as the numbers above it.
            "checkpoints": [
                {"step": c.step, "metrics": c.metrics or {}, "is_best": c.is_best}
                for c in Checkpoint.objects.filter(job=job).order_by("step").only("step", "metrics", "is_best")
            ],
        }
        events = [
            {"type": e.type, "message": _public_event_message(job=job, event=e), "created_at": e.created_at.isoformat()}
            for e in job_events_recent(job=job)
        ]
        evaluation = Evaluation.objects.filter(job=job).only("tv_before", "tv_after", "kl_estimate").first()
        if evaluation is not None:
            evaluation_data = {
                "tv_before": evaluation.tv_before,
                "tv_after": evaluation.tv_after,
                "kl_estimate": evaluation.kl_estimate,
            }
    return {
        "status": round.status,
        "status_display": round.get_status_display(),
        "status_detail": round.status_detail,
        "final": round.status in FINAL_ROUND_STATUSES,
        "billing_pending": round.billing_pending,
        "steps": round_steps(round=round),
        "candidates": Candidate.objects.filter(round=round).count(),
        "job": job_data,
        "events": events,
        "evaluation": evaluation_data,
    }


def round_get_visible(*, slug: str, user) -> Round:
    """The round if the viewer may see it (drafts only for staff); NotFound otherwise."""
    return round_get_public(slug=slug, user=user)


@dataclass(frozen=True)
class EventRow:
    type: str
    type_display: str
    message: str
    created_at: Any


@dataclass(frozen=True)
class JobPage:
    job: TrainingJob
    events: list[EventRow]
    checkpoints: list[Checkpoint]
    evaluation: Evaluation | None
    public_error: str
    group_results: list[dict[str, Any]] | None = None  # staff only
    hyperparameters: dict[str, Any] | None = None


# Resolved settings of the RL method that are derived from the bids (each bid over the total, the total, lambda over it):
# shown to staff only, since together they reveal every sealed bid.
BID_DERIVED_KEYS = {"reward_weights", "reward_scale", "beta", "bids"}


def job_page(*, round: Round, for_staff: bool) -> JobPage | None:
    job = round_current_job(round=round)
    if job is None:
        return None
    evaluation = Evaluation.objects.filter(job=job).first()
    return JobPage(
        job=job,
        events=[
            EventRow(
                type=e.type,
                type_display=e.get_type_display(),
                message=e.message if for_staff else _public_event_message(job=job, event=e),
                created_at=e.created_at,
            )
            for e in JobEvent.objects.filter(job=job).order_by("created_at", "pk")
        ],
        checkpoints=list(Checkpoint.objects.filter(job=job).order_by("step")),
        evaluation=evaluation,
        public_error=job_public_error(job=job),
        group_results=round_group_results_for_staff(round=round) if for_staff else None,
        hyperparameters={k: v for k, v in (job.hyperparameters or {}).items() if for_staff or k not in BID_DERIVED_KEYS},
    )


def round_group_results_for_staff(*, round: Round) -> list[dict[str, Any]]:
    """Every group's promised, delivered and base reward (normalised scale). Staff only: it names every group."""
    rows = GroupOutcome.objects.filter(outcome__round=round).select_related("group").order_by("group__name")
    return [
        {
            "group": go.group,
            "promised": go.expected_reward,
            "delivered": go.delivered_reward,
            "base": go.base_reward,
            "gap": (go.delivered_reward - go.expected_reward) if go.delivered_reward is not None else None,
        }
        for go in rows
    ]


@dataclass(frozen=True)
class GroupRoundView:
    round: Round
    group: PreferenceGroup
    membership: Membership | None  # None for staff looking in from outside


def group_round_for_viewer(*, user, round_slug: str, group_slug: str, allow_staff: bool) -> GroupRoundView:
    """A group's page in a round for its members (and staff when `allow_staff`). Everyone else gets the same NotFound
    as a missing page, decided before the round is looked up so the answer never reveals whether the group exists."""
    if not getattr(user, "is_authenticated", False):
        raise NotFound("Group not found.")
    group = PreferenceGroup.objects.filter(slug=group_slug).first()
    membership = Membership.objects.filter(group=group, user=user).first() if group is not None else None
    if group is None or (membership is None and not (allow_staff and user.is_staff)):
        raise NotFound("Group not found.")
    round = round_get_public(slug=round_slug, user=user)
    return GroupRoundView(round=round, group=group, membership=membership)


@dataclass(frozen=True)
class ScoredCandidate:
    prompt_index: int
    index: int
    prompt: str
    text: str
    score: float


@dataclass(frozen=True)
class RewardModelPage:
    reward_model: RewardModel | None
    top: list[ScoredCandidate] = field(default_factory=list)
    bottom: list[ScoredCandidate] = field(default_factory=list)
    promised: float | None = None
    delivered: float | None = None
    base: float | None = None
    fitted_yet: bool = False
    show_delivery: bool = False


def reward_model_page(*, round: Round, group: PreferenceGroup, n: int = 5) -> RewardModelPage:
    """The group's reward model with its `n` highest- and lowest-scored candidates, and after delivery what it got.

    Only this group's rewards are read; its bid and payment stay on the receipt and bid pages.
    """
    fitted_yet = round.status not in (S.DRAFT, S.OPEN, S.CANCELLED)
    rm = RewardModel.objects.filter(round=round, group=group).first()
    if rm is None:
        return RewardModelPage(reward_model=None, fitted_yet=fitted_yet)
    scored = [
        (float(score), p, k)
        for p, row in enumerate(rm.normalised_scores or [])
        for k, score in enumerate(row or [])
        if score is not None
    ]
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    top_keys = scored[:n]
    bottom_keys = sorted(scored[n:], key=lambda item: (item[0], item[1], item[2]))[:n] if len(scored) > n else []
    wanted = {(p, k) for _, p, k in top_keys + bottom_keys}
    texts = {
        (c.prompt_index, c.index): c.text
        for c in Candidate.objects.filter(round=round, prompt_index__in={p for p, _ in wanted}).only(
            "prompt_index", "index", "text"
        )
        if (c.prompt_index, c.index) in wanted
    }
    prompts = round.prompts or []

    def build(items: list[tuple[float, int, int]]) -> list[ScoredCandidate]:
        return [
            ScoredCandidate(
                prompt_index=p,
                index=k,
                prompt=prompts[p] if p < len(prompts) else "",
                text=texts.get((p, k), ""),
                score=score,
            )
            for score, p, k in items
        ]

    show_delivery = round.status == S.DELIVERED
    outcome = (
        GroupOutcome.objects.filter(outcome__round=round, group=group)
        .only("expected_reward", "delivered_reward", "base_reward")
        .first()
        if show_delivery
        else None
    )
    return RewardModelPage(
        reward_model=rm,
        top=build(top_keys),
        bottom=build(bottom_keys),
        promised=outcome.expected_reward if outcome else None,
        delivered=outcome.delivered_reward if outcome else None,
        base=outcome.base_reward if outcome else None,
        fitted_yet=True,
        show_delivery=show_delivery and outcome is not None,
    )


@dataclass(frozen=True)
class LabelPair:
    prompt_index: int
    prompt: str
    a: Candidate
    b: Candidate


def label_pair_next(*, user, group: PreferenceGroup, round: Round, counter: int, attempts: int = 64) -> LabelPair | None:
    """The next pair for this person to label, or None when the group has labelled every pair.

    Deterministic for (round, group, user, counter), so reloading shows the same pair and two members see different
    ones. Random draws first (cheap on big rounds); when they keep hitting labelled pairs, the remaining pairs are
    listed and one is drawn from them.
    """
    by_prompt: dict[int, list[int]] = {}
    for p, k in Candidate.objects.filter(round=round).order_by("prompt_index", "index").values_list("prompt_index", "index"):
        by_prompt.setdefault(p, []).append(k)
    prompts = [p for p, ks in sorted(by_prompt.items()) if len(ks) >= 2 and p < len(round.prompts or [])]
    if not prompts:
        return None
    done = labelled_keys(labels_pairs(group=group, round=round))
    rng = random.Random(f"{round.pk}:{group.pk}:{user.pk}:{counter}")
    choice: tuple[int, int, int] | None = None
    for _ in range(attempts):
        p = rng.choice(prompts)
        a, b = rng.sample(by_prompt[p], 2)
        if (p, min(a, b), max(a, b)) not in done:
            choice = (p, a, b)
            break
    if choice is None:
        remaining = [
            (p, a, b)
            for p in prompts
            for i, a in enumerate(by_prompt[p])
            for b in by_prompt[p][i + 1 :]
            if (p, a, b) not in done
        ]
        if not remaining:
            return None
        p, a, b = rng.choice(remaining)
        choice = (p, a, b) if rng.random() < 0.5 else (p, b, a)
    p, a, b = choice
    cands = {c.index: c for c in Candidate.objects.filter(round=round, prompt_index=p, index__in=[a, b])}
    return LabelPair(prompt_index=p, prompt=round.prompts[p], a=cands[a], b=cands[b])




def round_has_candidates(*, round: Round) -> bool:
    return Candidate.objects.filter(round=round).exists()


def group_preferences_current(*, group: PreferenceGroup, round: Round):
    """The submission that counts for the group now, whatever its kind."""
    return preferences_current(group=group, round=round)


def labels_count(*, group: PreferenceGroup, round: Round) -> int:
    return len(labels_pairs(group=group, round=round))


def round_job_seconds(*, round: Round, now=None) -> float:
    """Wall time of every training job the round ran (a job still running counts up to now): what training cost."""
    now = now or timezone.now()
    total = 0.0
    for job in TrainingJob.objects.filter(round=round, started_at__isnull=False):
        if job.started_at is not None:  # filtered above; says so to the type checker
            total += max(0.0, ((job.finished_at or now) - job.started_at).total_seconds())
    return total
