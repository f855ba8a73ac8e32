"""The demo's script: seed, open, collect preferences and bids, close, watch the worker train, then report.

Each step calls the same services the site and the API call; only the waiting and the printing are demo-specific.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError


class DemoRunner:
    def __init__(self, *, out_dir: Path, write: Callable[[str], Any], opts: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.write = write
        self.opts = opts
        self.worker = None
        self.stripe = None
        self.engine = None
        self.deadline = time.monotonic() + float(opts.get("timeout", 540))

    # --- processes -------------------------------------------------------------------------------------------
    def start_services(self) -> None:
        # The filesystem broker has no host, and kombu says so on every new connection; not news in the demo.
        logging.getLogger("kombu.connection").addFilter(
            lambda record: not record.getMessage().startswith("No hostname was supplied")
        )
        from marketplace.devtools.worker import CeleryWorker, WorkerFailed
        from marketplace.localstripe_server import LocalStripe

        self.stripe = LocalStripe(state_path=Path(settings.VAR_DIR) / "localstripe" / "state")
        self.stripe.start()
        settings.STRIPE_API_BASE = self.stripe.url
        settings.STRIPE_JS_URL = f"{self.stripe.url}/js.stripe.com/v3/"
        self.write(f"localstripe answers on {self.stripe.url}")
        env = {"STRIPE_API_BASE": self.stripe.url, "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
               "PYTHONUNBUFFERED": "1"}
        if self.opts.get("steps"):
            env["TRAINING_DEFAULT_STEPS"] = str(self.opts["steps"])
        env = {k: v for k, v in env.items() if v}
        self.worker = CeleryWorker(log_path=self.out_dir / "worker.log", env={**os.environ, **env},
                                   start_timeout=max(1.0, self.deadline - time.monotonic()))
        self.write(f"Starting the Celery worker (log {self.out_dir / 'worker.log'}) ...")
        try:
            self.worker.start()
        except WorkerFailed as exc:
            raise CommandError(str(exc)) from exc
        self.write(f"Celery worker ready (pid {self.worker.pid})")

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        if self.worker is not None:
            self.worker.stop(timeout=30)
        if self.stripe is not None:
            self.stripe.stop()

    def wait(self, what: str, predicate: Callable[[], Any], progress: Callable[[], str] | None = None) -> Any:
        last = ""
        while time.monotonic() < self.deadline:
            value = predicate()
            if value:
                return value
            if self.worker is not None and not self.worker.running:
                raise CommandError(f"The worker died while waiting for {what}; see {self.out_dir / 'worker.log'}")
            if progress:
                line = progress()
                if line and line != last:
                    self.write(f"  {line}")
                    last = line
            time.sleep(0.5)
        raise CommandError(f"Timed out waiting for {what}; see {self.out_dir / 'worker.log'}")

    # --- the round -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from marketplace.devtools.demo_seed import DEMO_GROUPS, DEMO_PASSWORD, STAFF_EMAIL, demo_seed
        from marketplace.models import Round
        from marketplace.orchestration.lifecycle import round_close_request, round_open_request
        from training.lib.corpus import demo_prompts
        from training.models import Candidate
        from training.services.common import base_path_for

        self.write("Building the tiny base model (cached under var/models after the first run) ...")
        t0 = time.monotonic()
        base_path_for("tiny")
        self.write(f"  base model ready in {time.monotonic() - t0:.0f} s")
        self.start_services()

        prompts = demo_prompts(self.opts.get("prompts", 8))
        round, groups = demo_seed(prompts=prompts, kl_weight=self.opts.get("kl_weight", 4.0),
                                  candidates_per_prompt=self.opts.get("candidates", 8))
        self.write(f"Round “{round.title}”: {len(prompts)} prompts, {round.candidates_per_prompt} candidates each, "
                   f"lambda = {round.kl_weight} $/nat")
        self._cards(groups)
        round_open_request(round=round)
        expected = len(prompts) * round.candidates_per_prompt
        self.wait("candidates", lambda: Candidate.objects.filter(round=round).count() >= expected,
                  lambda: f"sampling candidates: {Candidate.objects.filter(round=round).count()}/{expected}")
        self.write(f"  {expected} candidates sampled")
        self._preferences_and_bids(round, groups)
        round_close_request(round=round)
        self.write("Bidding closed; the worker fits reward models, runs the auction and trains ...")
        final = self.wait("the round to finish", lambda: self._finished(round), lambda: self._progress(round))
        if final != Round.Status.DELIVERED:
            round.refresh_from_db()
            raise CommandError(f"The round ended {final}: {round.status_detail}")
        self.wait("billing", lambda: not Round.objects.get(pk=round.pk).billing_pending,
                  lambda: "capturing payments ...")
        summary = self.report(round)
        summary = self.call_model(round, summary)
        self.write("")
        self.write("Log in with `make serve`, then http://127.0.0.1:8000/ :")
        self.write(f"  operator (staff): {STAFF_EMAIL} / {DEMO_PASSWORD}")
        for spec in DEMO_GROUPS:
            self.write(f"  {spec.name} admin: {spec.admin_email} / {DEMO_PASSWORD}   member: {spec.member_email}")
        return summary

    def call_model(self, round, summary: dict[str, Any]) -> dict[str, Any]:
        """End on the product: the delivered model answers through /v1/chat/completions (the site's view, called
        in-process with a fresh token of the first demo group's admin) from a real engine process. The model id and
        the token go into summary.json, so that after the demo `make serve` answers the OpenAI SDK with them."""
        from django.contrib.auth.models import User
        from django.test import Client

        from marketplace.accounts.models import ApiToken
        from marketplace.accounts.tokens import api_token_create
        from marketplace.delivery.models import FineTunedModel
        from marketplace.devtools.demo_seed import DEMO_GROUPS
        from marketplace.devtools.engine import EngineFailed, InferenceEngine

        model = FineTunedModel.objects.filter(round=round).first()
        if model is None:
            raise CommandError(f"The delivered round published no model; see {self.out_dir / 'worker.log'}")
        admin = User.objects.get(email=DEMO_GROUPS[0].admin_email)
        ApiToken.objects.filter(user=admin, name="demo").delete()  # demo data only: the last run's token goes
        _, token = api_token_create(user=admin, name="demo")
        summary = {**summary, "model": model.model_id, "demo_api_token": token}
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.engine = InferenceEngine(log_path=self.out_dir / "engine.log", model_cache=Path(settings.MODEL_CACHE_DIR),
                                      start_timeout=max(30.0, self.deadline - time.monotonic()))
        self.write(f"Starting the inference engine (log {self.out_dir / 'engine.log'}) ...")
        try:
            settings.INFERENCE_URL = self.engine.start()
        except EngineFailed as exc:
            raise CommandError(str(exc)) from exc
        prompt = round.prompts[0]
        question = prompt.removeprefix("Question: ").split("\nAnswer:")[0].strip()
        body = {"model": model.model_id, "messages": [{"role": "user", "content": question}], "max_tokens": 48, "seed": 0}
        response = Client().post("/v1/chat/completions", json.dumps(body), content_type="application/json",
                                 headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise CommandError(f"/v1/chat/completions answered {response.status_code}: {response.content[:300]!r}")
        answer = response.json()["choices"][0]["message"]["content"]
        self.write(f"POST /v1/chat/completions  model={model.model_id}")
        self.write(f"  Q: {question}")
        self.write(f"  A: {answer.strip()}")
        summary["chat_answer"] = answer
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.write(f"Model {model.model_id}; API token of {admin.email} in {self.out_dir / 'summary.json'}")
        return summary

    def _cards(self, groups) -> None:
        from marketplace.billing.services import billing_card_attach
        from marketplace.devtools.demo_seed import DEMO_GROUPS
        from marketplace.models import Membership

        # One card per group: a card can back only one group's bid in a round (Stripe test cards, distinct numbers).
        cards = ("pm_card_visa", "pm_card_mastercard", "pm_card_discover")
        for spec, card in zip(DEMO_GROUPS, cards, strict=False):
            group = groups[spec.slug]
            admin = Membership.objects.get(group=group, role=Membership.Role.ADMIN, user__email=spec.admin_email).user
            billing_card_attach(group=group, by=admin, payment_method_id=card)
        self.write("Cards on file for all three groups (Stripe test cards: Visa, Mastercard, Discover)")

    def _preferences_and_bids(self, round, groups) -> None:
        from marketplace.billing.bids import bid_place
        from marketplace.devtools.demo_seed import DEMO_GROUPS, pairs_jsonl
        from marketplace.models import Membership
        from training.lib.corpus import direct_scores_for_style, preference_pairs_for_style, rubric_for_style
        from training.models import Candidate
        from training.services.submissions import preferences_submit

        for spec in DEMO_GROUPS:
            group = groups[spec.slug]
            admin = Membership.objects.get(group=group, user__email=spec.admin_email).user
            if spec.kind == "pairs":
                pairs = preference_pairs_for_style(spec.style, 60, seed=1)
                payload: Any = pairs_jsonl(pairs)
                what = f"{len(pairs)} preference pairs"
            elif spec.kind == "rubric":
                phrases, target = rubric_for_style(spec.style)
                payload = {"phrases": [{"phrase": k, "weight": v} for k, v in phrases.items()], "target_length_words": target}
                what = f"a rubric of {len(phrases)} phrases"
            else:
                cands = list(Candidate.objects.filter(round=round).order_by("prompt_index", "index"))
                scores = direct_scores_for_style(spec.style, [c.text for c in cands])
                payload = {"scores": {f"{c.prompt_index}:{c.index}": s for c, s in zip(cands, scores, strict=True)}}
                what = f"direct scores on {len(cands)} candidates"
            preferences_submit(user=admin, group=group, round=round, kind=spec.kind, payload=payload,
                               source_name="demo.jsonl" if spec.kind == "pairs" else "demo")
            bid_place(user=admin, group=group, round=round, amount_cents=spec.bid_cents)
            self.write(f"  {spec.name}: {what}; bid ${spec.bid_cents / 100:.2f} held on the card")

    def _finished(self, round) -> str | None:
        from marketplace.models import Round

        status = Round.objects.values_list("status", flat=True).get(pk=round.pk)
        return status if status in (Round.Status.DELIVERED, Round.Status.FAILED, Round.Status.CANCELLED) else None

    def _progress(self, round) -> str:
        from marketplace.models import Round
        from training.models import TrainingJob

        status = Round.objects.values_list("status", flat=True).get(pk=round.pk)
        job = TrainingJob.objects.newest_for(round)
        if job is None:
            return f"round {status}: fitting reward models and running the auction"
        if job.status == TrainingJob.Status.RUNNING and job.total_steps:
            eta = f", about {job.eta_seconds:.0f} s left" if job.eta_seconds is not None else ""
            loss = f", loss {job.loss:.3f}" if job.loss is not None else ""
            return f"training: step {job.steps_done}/{job.total_steps}{loss}{eta}"
        if job.status == TrainingJob.Status.SUCCEEDED:
            return "training done; evaluating the adapter on fresh samples"
        return f"round {status}, job {job.status}"

    # --- the report ------------------------------------------------------------------------------------------
    def report(self, round) -> dict[str, Any]:
        from marketplace.models import AuctionOutcome, GroupOutcome, Payment
        from training.lib.evaluation import exact_row
        from training.models import Evaluation

        outcome = AuctionOutcome.objects.get(round=round)
        evaluation = Evaluation.objects.filter(job__round=round).order_by("-created_at").first()
        details = (evaluation.details or {}) if evaluation else {}
        # Exact delivery (the adapter's answers resampled toward pi*) on fresh samples of the round's prompts, per K.
        exact = {k: exact_row(details.get("exact_round") or [], k) or {} for k in EXACT_TABLE_KS}
        rows = []
        for go in GroupOutcome.objects.filter(outcome=outcome).select_related("group").order_by("-bid_cents"):
            captured = sum(Payment.objects.filter(round=round, group=go.group, status=Payment.Status.CAPTURED)
                           .values_list("amount_captured_cents", flat=True))
            delivered = go.delivered_reward_candidates if go.delivered_reward_candidates is not None else go.delivered_reward
            delivered_value = (delivered or 0.0) * go.bid_cents / 100.0
            rows.append({
                "id": go.group.slug,
                "name": go.group.name,
                "bid_cents": go.bid_cents,
                "promised_value": round_float(go.promised_value),
                "delivered_value": round_float(delivered_value),
                # Rewards on the group's normalised 0-1 scale. delivered_reward is the candidate measure billing uses;
                # delivered_reward_fresh is the adapter's fresh answers on the round's prompts.
                "base_reward": round_float(go.candidate_base_reward),
                "base_reward_fresh": round_float(go.base_reward),
                "without_you_reward": round_float(go.without_reward),
                "promised_reward": round_float(go.expected_reward),
                "delivered_reward": round_float(go.delivered_reward_candidates),
                "delivered_reward_fresh": round_float(go.delivered_reward),
                # exact delivery at K = 64, fresh samples of the round's prompts, same 0-1 scale
                "delivered_reward_exact": round_float(exact[64].get(go.group.slug)),
                "delivered_reward_exact_k": {str(k): round_float(exact[k].get(go.group.slug)) for k in EXACT_TABLE_KS},
                "auction_payment_cents": go.payment_cents,
                "payment_cents": go.model_price_cents,
                "charge_basis": go.charge_basis,
                "fee_cents": go.fee_cents,
                "captured_cents": int(captured),
                "utility": round_float(delivered_value - captured / 100.0),
            })
        summary = {
            "groups": rows,
            "welfare": outcome.welfare,
            "kl_to_base": outcome.kl_to_base,
            "tv_before": evaluation.tv_before if evaluation else None,
            "tv_after": evaluation.tv_after if evaluation else None,
            "kl_adapter_to_base_estimate": evaluation.kl_estimate if evaluation else None,
            "exact_delivery": {
                "draws_per_prompt": details.get("exact_draws"),
                "ess": {str(r["k"]): round_float(r["ess"]) for r in details.get("exact_round") or []},
            },
            "inputs_hash": outcome.inputs_hash,
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        (self.out_dir / "auction-instance.json").write_text(json.dumps(outcome.instance, indent=2))
        (self.out_dir / "auction-result.json").write_text(json.dumps(outcome.result, indent=2))
        self.print_table(summary)
        chart_path = self.out_dir / "summary.png"
        write_chart(summary, chart_path)
        self.write(f"Chart: {chart_path}")
        return summary

    def print_table(self, summary: dict[str, Any]) -> None:
        head = (f"{'group':<18}{'bid $':>9}{'base $':>9}{'promised $':>12}{'delivered $':>13}{'price $':>9}"
                f"{'captured $':>12}{'utility $':>11}")
        self.write("")
        self.write(head)
        self.write("-" * len(head))
        for g in summary["groups"]:
            base = (g["base_reward"] or 0.0) * g["bid_cents"] / 100.0
            self.write(f"{g['id']:<18}{g['bid_cents'] / 100:>9.2f}{base:>9.2f}{g['promised_value']:>12.2f}"
                       f"{g['delivered_value']:>13.2f}{g['payment_cents'] / 100:>9.2f}{g['captured_cents'] / 100:>12.2f}"
                       f"{g['utility']:>11.2f}")
        self.write("-" * len(head))
        for line in (
            "All amounts in US dollars. A group's value of a model is its bid times the model's average reward on",
            "the group's 0-1 scale: base = the untrained model, promised = the auction's target, delivered = the",
            "trained model. price = what the auction charges, captured = what the card was charged, utility =",
            "delivered - captured.",
        ):
            self.write(line)
        tv = ""
        if summary["tv_before"] is not None:
            tv = f"; distance to the target (TV): {summary['tv_before']:.3f} before, {summary['tv_after']:.3f} after training"
        self.write(f"Welfare {summary['welfare']:.3f} $; the target's KL to the base model {summary['kl_to_base']:.3f} nats{tv}.")
        self.print_delivery(summary)

    def print_delivery(self, summary: dict[str, Any]) -> None:
        """Delivered against promised on the groups' own 0-1 scales, fresh answers to the round's prompts."""
        ks = [str(k) for k in EXACT_TABLE_KS]
        head = f"{'group':<18}{'base':>7}{'promised':>10}{'adapter':>9}" + "".join(f"{'exact K=' + k:>12}" for k in ks)
        self.write("")
        self.write(head)
        self.write("-" * len(head))

        def cell(x: float | None, width: int) -> str:
            return f"{x:>{width}.3f}" if x is not None else f"{'-':>{width}}"

        for g in summary["groups"]:
            exact = g.get("delivered_reward_exact_k") or {}
            self.write(f"{g['id']:<18}{cell(g['base_reward_fresh'], 7)}{cell(g['promised_reward'], 10)}"
                       f"{cell(g['delivered_reward_fresh'], 9)}" + "".join(cell(exact.get(k), 12) for k in ks))
        self.write("-" * len(head))
        ess = (summary.get("exact_delivery") or {}).get("ess") or {}
        ess_text = ", ".join(f"K={k}: {ess[k]:.1f}" for k in ks if ess.get(k) is not None)
        for line in (
            "Average reward on each group's 0-1 scale (its reward model, normalised as in the auction), fresh answers",
            "to the round's prompts: base = the untrained model, promised = the auction's target on the candidates,",
            "adapter = the trained adapter alone, exact K = one of K adapter answers drawn with probability",
            "proportional to exp(R/lambda) pi0/pi_theta (exact delivery, resampling toward the target).",
            f"Effective sample size of the K draws: {ess_text or 'not measured'}.",
        ):
            self.write(line)


EXACT_TABLE_KS = (4, 16, 64)


def round_float(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def write_chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summary["groups"]
    names = [g["id"] for g in groups]
    series = {
        "bid": [g["bid_cents"] / 100 for g in groups],
        "base model value": [(g["base_reward"] or 0.0) * g["bid_cents"] / 100 for g in groups],
        "promised value": [g["promised_value"] for g in groups],
        "delivered value": [g["delivered_value"] for g in groups],
        "price paid": [g["captured_cents"] / 100 for g in groups],
    }
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.16
    middle = (len(series) - 1) / 2
    for i, (label, values) in enumerate(series.items()):
        ax.bar([x + (i - middle) * width for x in range(len(names))], values, width, label=label)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("US dollars")
    ax.set_title(f"One round: welfare {summary['welfare']:.2f} $, KL {summary['kl_to_base']:.3f} nats")
    ax.legend(frameon=False, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
