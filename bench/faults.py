"""Fault injection: one whole round per fault, then a reconciliation against localstripe's own PaymentIntents.

    .venv/bin/python bench/faults.py                        # every fault, tiny configs (about 10 minutes on 2 cores)
    .venv/bin/python bench/faults.py --faults worker_kill stripe_withdraw

Everything runs for real, in processes of its own: a private ``redis-server`` on a free port (the broker; stopping it
disturbs nobody else), localstripe on a free port (``marketplace.localstripe_server``), a Celery worker
(``marketplace.devtools.worker.CeleryWorker``), PostgreSQL in a database of its own (``--database-url``, created and
dropped), and for the engine fault the site under uvicorn and the inference engine. This process plays the part of
``celery beat``: every ``--tick`` seconds it runs the scheduler's services (rounds tick and stale-job reaping, the
outbox relay, the release sweep) the way the beat's tasks would.

The faults, each in its own round (3 groups; 4 for the withdrawal):

=================== ==============================================================================================
``worker_kill``     the worker is SIGKILLed once the job has a checkpoint; a new worker is started at once (what a
                    supervisor does); the job, reaped once its heartbeat is stale, resumes from that checkpoint
``broker_training`` the broker is stopped for 20 s while the job trains, then started again on the same port
``stripe_capture``  localstripe is stopped when the job has succeeded (before capture) for 20 s
``broker_close``    the broker is down when staff close the round (20 s); the close must commit with its message
``stripe_withdraw`` localstripe is down when a fourth group withdraws its bid (10 s); the sweep must release it
``engine_restart``  after delivery, the engine is killed while it streams a completion to the OpenAI SDK through the
                    site, and started again; the next completion must work
=================== ==============================================================================================

After each round the reconciliation lists localstripe's PaymentIntents for the round and checks: each group with a
price has exactly one succeeded PaymentIntent for exactly its price (charged once), no PaymentIntent is left
``requires_capture`` (no orphaned hold), every Payment row is final and agrees with Stripe, the round is delivered
with its job succeeded, its evaluation stored and no outbox message unsent (nothing lost). ``recover_s`` is the time
from the moment the failed component was back (or, for the kill, the new worker was started) to the moment the step it
blocked had happened (the row's ``recovered when``). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PY = sys.executable
FAULTS = ("worker_kill", "broker_training", "stripe_capture", "broker_close", "stripe_withdraw", "engine_restart")
RECOVERED_WHEN = {
    "worker_kill": "the job trains again past the kill, on attempt 2",
    "broker_training": "the round has left training (its next task ran)",
    "stripe_capture": "every price is captured and billing is done",
    "broker_close": "the auction ran (the close's task was delivered)",
    "stripe_withdraw": "the withdrawn bid's hold is released at Stripe",
    "engine_restart": "a completion through the site succeeds again",
}
STRIPE_KEY = "sk_test_localstripe"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the processes this bench owns ----------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on its own port and folder. Append-only with fsync on every write, so a stop and a
    start keep every queued message, as a broker with persistence would."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
        )
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


class Engine:
    """``python -m inference serve`` on a fixed port, so a restart comes back where the site expects it."""

    def __init__(self, folder: Path, port: int, model_cache: str) -> None:
        self.folder, self.port, self.model_cache = folder, port, model_cache
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240) -> None:
        from marketplace.devtools.engine import READY

        log_path = self.folder / "engine.log"
        start_at = log_path.stat().st_size if log_path.exists() else 0
        self.proc = subprocess.Popen(
            [PY, "-m", "inference", "serve", "--base", "tiny", "--host", "127.0.0.1", "--port", str(self.port),
             "--model-cache", self.model_cache],
            cwd=ROOT, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                f.seek(start_at)
                if READY.search(f.read().decode(errors="replace")):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the engine exited; see {log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"the engine was not ready; see {log_path}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Scheduler(threading.Thread):
    """What ``celery beat`` sends, run in this process every ``every`` seconds: the rounds tick (opens, closes,
    re-sends stuck steps, requeues jobs whose heartbeat went stale), the outbox relay and the release sweep."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        from django.db import connection

        from marketplace.billing.services import payments_release_sweep
        from marketplace.core.enqueue import outbox_relay
        from marketplace.orchestration.lifecycle import rounds_tick

        while not self.halt.wait(self.every):
            for job in (outbox_relay, rounds_tick, payments_release_sweep):
                try:
                    job()
                except Exception as exc:  # the broker or Stripe may be down: that is the point; next tick retries
                    self.errors += 1
                    log(f"  scheduler: {job.__name__}: {type(exc).__name__}: {str(exc)[:120]}")
        connection.close()


# --- a round --------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    fault: str
    round_id: int = 0
    round_s: float = 0.0
    recover_s: float | None = None
    groups: int = 0
    priced: int = 0
    charged_once: int = 0
    orphaned_holds: int = 0
    note: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.worker: Any = None
        self.generation = 0

    # processes
    def worker_env(self) -> dict[str, str]:
        from django.conf import settings

        return {
            **os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MODEL_CACHE_DIR": str(settings.MODEL_CACHE_DIR), "ARTIFACT_DIR": str(settings.ARTIFACT_DIR),
        }

    def worker_start(self) -> None:
        from marketplace.devtools.worker import CeleryWorker

        self.generation += 1
        self.worker = CeleryWorker(log_path=self.work / "worker.log", env=self.worker_env(),
                                   name=f"faults-{os.getpid()}-{self.generation}@%h")
        self.worker.start()

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float | None = None, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + (timeout or self.args.step_timeout)
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.worker is not None and not self.worker.running:
                raise RuntimeError(f"the worker died while waiting for {what}:\n{self.worker.log_tail(30)}")
            time.sleep(interval)
        raise RuntimeError(f"timed out waiting for {what}:\n{self.worker.log_tail(30) if self.worker else ''}")

    # the round, step by step, with a hook for the fault at each point
    def round(self, fault: str) -> Outcome:
        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from marketplace.billing.bids import bid_place, bid_withdraw
        from marketplace.billing.services import billing_card_attach
        from marketplace.groups.services import group_create
        from marketplace.orchestration.lifecycle import round_close_request, round_open_request
        from marketplace.rounds.models import Round
        from tests.support.cards import TEST_CARDS
        from training.lib.corpus import demo_prompts
        from training.models import Candidate, TrainingJob

        out = Outcome(fault=fault)
        t_round = time.monotonic()
        User = get_user_model()
        n = int(time.monotonic_ns() % 10**9)
        staff = User.objects.filter(is_staff=True).first() or User.objects.create_user(
            "staff@faults.example", "staff@faults.example", "faults-Password-1", is_staff=True)
        now = timezone.now()
        round = Round.objects.create(
            title=f"Faults {fault}", slug=f"faults-{fault.replace('_', '-')}-{n}", base_model="tiny",
            prompts=demo_prompts(self.args.prompts), kl_weight=2.0, candidates_per_prompt=self.args.candidates,
            currency="usd", opens_at=now, closes_at=now + timezone.timedelta(days=1), status=Round.Status.DRAFT,
            created_by=staff,
        )
        out.round_id = round.pk
        log(f"{fault}: round {round.pk} opens")
        round_open_request(round=round)
        expected = self.args.prompts * self.args.candidates
        self.wait("candidates", lambda: Candidate.objects.filter(round=round).count() >= expected)

        kinds = ["pairs", "rubric", "scores"] + (["pairs"] if fault == "stripe_withdraw" else [])
        admins = []
        for i, kind in enumerate(kinds):
            email = f"g{i}-{n}@faults.example"
            admin = User.objects.create_user(email, email, "faults-Password-1")
            group = group_create(user=admin, name=f"{fault} {i} {n}")
            billing_card_attach(group=group, by=admin, payment_method_id=(("pm_card_visa",) + TEST_CARDS)[i])
            self._preferences(round, group, admin, kind, i)
            bid_place(user=admin, group=group, round=round, amount_cents=(3_000, 2_000, 1_000, 2_500)[i])
            admins.append((admin, group))
        out.groups = len(kinds)

        if fault == "stripe_withdraw":
            admin, group = admins[-1]
            self.stripe.stop()
            log("  localstripe stopped; the fourth group withdraws its bid")
            bid_withdraw(user=admin, group=group, round=round)  # must not raise: the hold is left for the sweep
            time.sleep(self.args.short_outage)
            self.stripe.start()
            back = time.monotonic()
            self.wait("the withdrawn hold's release", lambda: self._released(round, group))
            out.recover_s = time.monotonic() - back

        if fault == "broker_close":
            self.broker.stop()
            log("  broker stopped; staff close the round")
            assert round_close_request(round=round), "the close did not commit"
            time.sleep(self.args.outage)
            self.broker.start()
            back = time.monotonic()
            self.wait("the auction", lambda: Round.objects.get(pk=round.pk).status != Round.Status.CLOSED)
            out.recover_s = time.monotonic() - back
        else:
            round_close_request(round=round)
        log("  closed; the worker runs the auction and trains")

        def job() -> TrainingJob | None:
            return TrainingJob.objects.filter(round=round).order_by("-pk").first()

        if fault == "worker_kill":
            from training.models import Checkpoint

            self.wait("a checkpoint", lambda: Checkpoint.objects.filter(job__round=round).exists())
            self.worker.kill()
            killed_at = job().steps_done
            log(f"  worker SIGKILLed at step {killed_at}; a new worker starts")
            self.worker_start()
            back = time.monotonic()
            self.wait("the resumed job", lambda: (j := job()) and j.attempt >= 2 and j.steps_done > killed_at)
            out.recover_s = time.monotonic() - back
        elif fault == "broker_training":
            self.wait("training", lambda: (j := job()) and j.status == TrainingJob.Status.RUNNING and j.steps_done >= 2)
            self.broker.stop()
            log(f"  broker stopped at step {job().steps_done} for {self.args.outage:.0f} s")
            time.sleep(self.args.outage)
            self.broker.start()
            back = time.monotonic()
            self.wait("the round to leave training",
                      lambda: Round.objects.get(pk=round.pk).status not in (Round.Status.CLOSED, Round.Status.TRAINING))
            out.recover_s = time.monotonic() - back
        elif fault == "stripe_capture":
            self.wait("the job to succeed", lambda: (j := job()) and j.status == TrainingJob.Status.SUCCEEDED,
                      interval=0.05)
            self.stripe.stop()
            log(f"  localstripe stopped before capture for {self.args.outage:.0f} s")
            time.sleep(self.args.outage)
            self.stripe.start()
            back = time.monotonic()
            self.wait("billing", lambda: self._finished(round) and not Round.objects.get(pk=round.pk).billing_pending)
            out.recover_s = time.monotonic() - back

        status = self.wait("the round to finish", lambda: self._finished(round))
        if status != Round.Status.DELIVERED:
            out.problems.append(f"round ended {status}: {Round.objects.get(pk=round.pk).status_detail}")
        self.wait("billing", lambda: not Round.objects.get(pk=round.pk).billing_pending)
        if fault == "engine_restart":
            out.recover_s = self.engine_fault(round, admins[0][0], out)
        out.round_s = time.monotonic() - t_round
        self.reconcile(round, out)
        return out

    def _preferences(self, round, group, admin, kind: str, i: int) -> None:
        from marketplace.devtools.demo_seed import pairs_jsonl
        from training.lib.corpus import preference_pairs_for_style, rubric_for_style
        from training.models import Candidate
        from training.services.submissions import preferences_submit

        if kind == "pairs":
            payload: Any = pairs_jsonl(preference_pairs_for_style("concise", 30, seed=i))
        elif kind == "rubric":
            phrases, target = rubric_for_style("enthusiastic")
            payload = {"phrases": [{"phrase": k, "weight": v} for k, v in phrases.items()], "target_length_words": target}
        else:  # a null report: equal scores, so a zero price and a released hold
            payload = {"scores": {f"{c.prompt_index}:{c.index}": 0.5 for c in Candidate.objects.filter(round=round)}}
        preferences_submit(user=admin, group=group, round=round, kind=kind, payload=payload, source_name="faults")

    def _finished(self, round) -> str | None:
        from marketplace.rounds.models import Round

        status = Round.objects.values_list("status", flat=True).get(pk=round.pk)
        return status if status in (Round.Status.DELIVERED, Round.Status.FAILED, Round.Status.CANCELLED) else None

    def _released(self, round, group) -> bool:
        from marketplace.billing.models import Payment

        payments = Payment.objects.filter(round=round, group=group)
        return payments.exists() and all(p.status == Payment.Status.RELEASED for p in payments)

    # the engine fault: a stream cut by a SIGKILL, then the engine back on its port
    def engine_fault(self, round, admin, out: Outcome) -> float | None:
        import openai

        from marketplace.accounts.tokens import api_token_create
        from marketplace.delivery.models import FineTunedModel

        model = FineTunedModel.objects.get(round=round)
        _, token = api_token_create(user=admin, name="faults")
        client = openai.OpenAI(base_url=f"{self.site_url}/v1", api_key=token, max_retries=0, timeout=60)
        messages = [{"role": "user", "content": "Is the kettle any good?"}]
        try:
            first = client.chat.completions.create(model=model.model_id, messages=messages, max_tokens=8, seed=0)
        except openai.APIStatusError as exc:
            out.problems.append(f"before the fault the site answered {exc.status_code}: {exc.response.text[:200]}")
            return None
        if not first.choices[0].message.content:
            out.problems.append("the completion before the fault was empty")
        chunks, cut = 0, ""
        try:
            # 64 tokens: more and prompt + answer pass the tiny model's context, which the engine refuses.
            stream = client.chat.completions.create(model=model.model_id, messages=messages, seed=1, stream=True,
                                                    max_tokens=64)
            for _ in stream:
                chunks += 1
                if chunks == 1:
                    self.engine.kill()
                    log("  engine SIGKILLed mid-stream")
        except openai.APIError as exc:
            cut = f"{type(exc).__name__}"
        if self.engine.proc is not None and self.engine.proc.poll() is None:
            out.problems.append(f"the stream ended ({cut or 'complete'}, {chunks} chunks) before the engine was killed")
            self.engine.kill()
        out.note = f"stream: {chunks} chunk(s), then {cut or 'its normal end'}"
        log(f"  the stream stopped after {chunks} chunks ({cut or 'its normal end'}); the engine restarts")
        self.engine.start()
        back = time.monotonic()
        while True:
            try:
                again = client.chat.completions.create(model=model.model_id, messages=messages, max_tokens=8, seed=0)
                if again.choices[0].message.content != first.choices[0].message.content:
                    out.problems.append("the same seeded request answered differently after the restart")
                return time.monotonic() - back
            except openai.APIStatusError as exc:
                if exc.status_code != 503:
                    out.problems.append(f"after the restart the site answered {exc.status_code}")
                    return time.monotonic() - back
            if time.monotonic() - back > 120:
                out.problems.append("no completion within 120 s of the engine's restart")
                return time.monotonic() - back
            time.sleep(0.25)

    # --- reconciliation ------------------------------------------------------------------------------------------
    def stripe_intents(self) -> list[dict[str, Any]]:
        intents: list[dict[str, Any]] = []
        after = ""
        while True:
            query = "limit=100" + (f"&starting_after={after}" if after else "")
            request = urllib.request.Request(f"{self.stripe.url}/v1/payment_intents?{query}",
                                             headers={"Authorization": f"Bearer {STRIPE_KEY}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                page = json.load(response)
            intents += page["data"]
            if not page.get("has_more") or not page["data"]:
                return intents
            after = page["data"][-1]["id"]

    def reconcile(self, round, out: Outcome) -> None:
        from marketplace.billing.models import Payment
        from marketplace.outbox.models import OutboxMessage
        from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome
        from training.models import Evaluation, TrainingJob

        mine = [pi for pi in self.stripe_intents() if (pi.get("metadata") or {}).get("round_id") == str(round.pk)]
        outcome = AuctionOutcome.objects.filter(round=round).first()
        prices = {go.group_id: go.payment_cents for go in GroupOutcome.objects.filter(outcome=outcome)} if outcome else {}
        for pi in mine:
            if pi["status"] == "requires_capture":
                out.orphaned_holds += 1
                out.problems.append(f"{pi['id']} still holds {pi['amount']} (group {pi['metadata'].get('group_id')})")
        for group_id, price in prices.items():
            succeeded = [pi for pi in mine if pi["metadata"].get("group_id") == str(group_id) and pi["status"] == "succeeded"]
            if price > 0:
                out.priced += 1
                received = [pi.get("amount_received", 0) for pi in succeeded]
                if received == [price]:
                    out.charged_once += 1
                else:
                    out.problems.append(f"group {group_id}: price {price}, charged {received}")
            elif succeeded:
                out.problems.append(f"group {group_id}: price 0 but charged {[pi['amount'] for pi in succeeded]}")
        by_id = {pi["id"]: pi for pi in mine}
        for payment in Payment.objects.filter(round=round):
            if payment.status not in (Payment.Status.CAPTURED, Payment.Status.RELEASED, Payment.Status.FAILED):
                out.problems.append(f"payment {payment.pk} left {payment.status}")
            pi = by_id.get(payment.stripe_payment_intent_id or "")
            if payment.status == Payment.Status.CAPTURED and (pi is None or pi["status"] != "succeeded"):
                out.problems.append(f"payment {payment.pk} captured here, {pi and pi['status']} at Stripe")
            if payment.status == Payment.Status.RELEASED and pi is not None and pi["status"] not in ("canceled",):
                out.problems.append(f"payment {payment.pk} released here, {pi['status']} at Stripe")
        job = TrainingJob.objects.filter(round=round).order_by("-pk").first()
        if job is None or job.status != TrainingJob.Status.SUCCEEDED or job.steps_done != job.total_steps:
            out.problems.append(f"job {job and job.pk} {job and job.status} at {job and job.steps_done}/{job and job.total_steps}")
        if not Evaluation.objects.filter(job__round=round).exists():
            out.problems.append("no evaluation stored")
        pending = OutboxMessage.objects.filter(sent_at__isnull=True).count()
        if pending:
            out.problems.append(f"{pending} outbox message(s) unsent")


def table(outcomes: list[Outcome]) -> str:
    head = (f"{'fault':<16} {'round s':>7} {'recover s':>9} {'groups':>6} {'priced':>6} {'charged once':>12} "
            f"{'orphaned holds':>14} {'result':>6}  recovered when")
    lines = [head]
    for o in outcomes:
        rec = f"{o.recover_s:.1f}" if o.recover_s is not None else "-"
        lines.append(f"{o.fault:<16} {o.round_s:>7.0f} {rec:>9} {o.groups:>6} {o.priced:>6} "
                     f"{o.charged_once:>6}/{o.priced:<5} {o.orphaned_holds:>14} {'ok' if o.ok else 'FAIL':>6}  "
                     f"{RECOVERED_WHEN[o.fault]}" + (f" ({o.note})" if o.note else ""))
        lines += [f"    ! {p}" for p in o.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", nargs="+", default=list(FAULTS), choices=FAULTS)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/marketplace_faults")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the broker or localstripe stays down")
    parser.add_argument("--short-outage", type=float, default=10.0, help="seconds localstripe is down at withdraw")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between the scheduler's runs (beat)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per round (a checkpoint every 20)")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--step-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the database and the work folder")
    args = parser.parse_args(argv)

    from load import database_drop, database_recreate

    from marketplace.localstripe_server import LocalStripe, free_port

    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    database_recreate(args.database_url)
    broker = RedisServer(work / "redis", free_port())
    broker.start()
    stripe = LocalStripe(port=free_port(), state_path=work / "localstripe" / "state", from_scratch=True).start()
    # Restarts of localstripe keep its state file (not from scratch), as Stripe keeps its records.
    stripe.from_scratch = False
    os.environ.update(
        DATABASE_URL=args.database_url, CELERY_BROKER_URL=broker.url, STRIPE_API_BASE=stripe.url,
        STRIPE_SECRET_KEY=STRIPE_KEY, DJANGO_SETTINGS_MODULE="marketplace.settings", DEBUG="false",
        ARTIFACT_DIR=str(work / "artifacts"), TRAINING_DEFAULT_STEPS=str(args.steps), TRAINING_HEARTBEAT_STALE_S="8",
        OUTBOX_RELAY_INTERVAL_S="2", BILLING_RELEASE_SWEEP_S="5", DATABASE_POOL_MAX_SIZE="0",
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # The services log each refused Stripe or broker call, which is every tick of an outage here: the table says it.
    logging.getLogger("marketplace").setLevel(logging.ERROR)
    from training.services.common import base_path_for

    base_path_for("tiny")
    bench = Bench(args, work)
    bench.broker, bench.stripe = broker, stripe
    engine = site = None
    outcomes: list[Outcome] = []
    scheduler = Scheduler(args.tick)
    try:
        bench.worker_start()
        scheduler.start()
        if "engine_restart" in args.faults:
            from load import start_server

            engine = Engine(work, free_port(), str(settings.MODEL_CACHE_DIR))
            engine.start()
            os.environ["INFERENCE_URL"] = settings.INFERENCE_URL = engine.url
            port = free_port()
            site = start_server("uvicorn", {**os.environ, "LOGIN_THROTTLING": "false"}, port, work / "site.log")
            bench.engine, bench.site_url = engine, f"http://127.0.0.1:{port}"
        for fault in args.faults:
            try:
                outcomes.append(bench.round(fault))
            except Exception as exc:
                traceback.print_exc()
                outcomes.append(Outcome(fault=fault, problems=[f"{type(exc).__name__}: {str(exc)[:300]}"]))
            log(f"{fault}: {'ok' if outcomes[-1].ok else 'FAIL'}")
    finally:
        scheduler.halt.set()
        if bench.worker is not None:
            bench.worker.stop()
        if site is not None:
            from load import stop_server

            stop_server(site)
        if engine is not None:
            engine.stop()
        stripe.stop()
        broker.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_drop(args.database_url)
            shutil.rmtree(work, ignore_errors=True)
    print(table(outcomes))
    print(json.dumps({
        "faults": [
            {"fault": o.fault, "ok": o.ok, "round_s": round(o.round_s, 1),
             "recover_s": None if o.recover_s is None else round(o.recover_s, 2), "groups": o.groups,
             "priced": o.priced, "charged_once": o.charged_once, "orphaned_holds": o.orphaned_holds,
             "note": o.note, "problems": o.problems}
            for o in outcomes
        ],
        "all_ok": all(o.ok for o in outcomes) and len(outcomes) == len(args.faults),
    }))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
