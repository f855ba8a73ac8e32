"""LoRA fine-tuning toward the auction's target q* (the only module that imports peft and trl).

Methods
-------
``weighted_sft`` (default)
    Minimises the q*-weighted cross-entropy  - sum_x mu(x) sum_k q*(y_k|x) log pi_theta(y_k|x)  over the round's
    candidates (whose minimiser over all distributions is pi* itself), with a plain torch loop over a peft model:

    1. Tokenise every (prompt, candidate) pair once: ``prompt ids + response ids + eos``.
    2. Step t draws ``batch_size`` pairs with replacement, with probability mu(x) q*(y|x), from a numpy generator
       seeded with ``(seed, t)``; the mean of the per-sequence summed response-token NLL, divided by the
       q*-weighted mean response length (a constant), is an unbiased estimate of the objective (up to that constant).
    3. Batches are left-padded with explicit position ids, and the LM head runs only on the last
       ``max response length + 1`` positions (``logits_to_keep``): no work on prompt-only logits.
    4. AdamW with linear warm-up and linear decay to 10 %, gradient clipping. Because the data and dropout streams
       are keyed by the step number, a job resumed from a checkpoint draws exactly the batches it would have drawn.

``grpo``
    TRL's GRPOTrainer on the same objective written as KL-regularised RL: reward
    R(x, y) = sum_i w_i r_i(x, y) (normalised group rewards, bids in currency per unit) and KL weight lambda (currency
    per nat). Rewards are divided by the scale S = sum_i w_i (so the aggregate lies in [0, 1]): the objective
    E[R] - lambda KL becomes S (E[R/S] - (lambda / S) KL), i.e. ``reward_weights = w_i / S`` and
    ``beta = lambda / S``. ``scale_rewards="none"`` (no division by the group std, which would change the trade-off)
    and ``loss_type="dr_grpo"`` (a constant normaliser) keep that mapping; TRL's KL is its per-token k3 estimator
    against the adapter-disabled base.

Checkpoints, progress, cancellation, resume
-------------------------------------------
Every ``checkpoint_every`` steps and at the last step, ``out_dir/checkpoints/step-NNNNNN/`` is written to a
temporary folder and renamed into place: the adapter, the optimiser and schedule state, and ``info.json`` with the
metrics (mean training loss since the previous checkpoint, q*-weighted NLL of the candidates and the fidelity
TV(q_theta, q*)). The best checkpoint is the one with the smallest TV (smallest weighted NLL when there is no TV).
``should_cancel`` is polled before every step, so a cancel takes effect within one step. Calling ``train`` again
on an ``out_dir`` with checkpoints resumes from the last one; on one with a finished ``result.json`` it returns that
result. On success the best checkpoint's adapter is copied to ``out_dir/adapter`` (the model to deliver).

torch, transformers, peft and trl are imported inside functions only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation import implied_weights, total_variation

METHODS = ("weighted_sft", "grpo")
SFT_LOSSES = ("candidate_normalised", "plain")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "weighted_sft"
    steps: int = 80
    learning_rate: float = 5e-3
    batch_size: int = 32
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None: peft's default for the architecture (GPT-2: c_attn)
    seed: int = 0
    checkpoint_every: int = 20
    max_length: int = 256
    kl_weight: float = 1.0  # lambda, currency per nat (grpo: beta = lambda / sum of bids)
    device: str = "cpu"
    weight_decay: float = 0.0
    warmup_steps: int = 5
    max_grad_norm: float = 1.0
    threads: int | None = None  # torch CPU threads; None: 1 (tiny matrices, shared worker machines: see docs)
    loss: str = "candidate_normalised"  # weighted_sft only: or "plain" (see the module docstring)
    sft_weight: float = 0.0  # candidate_normalised only: weight of an added plain q*-weighted cross-entropy term
    num_generations: int = 4  # grpo only
    max_new_tokens: int = 64  # grpo only

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; expected one of {METHODS}")
        for name in (
            "steps",
            "batch_size",
            "lora_r",
            "checkpoint_every",
            "max_length",
            "num_generations",
            "max_new_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.learning_rate > 0 or not self.kl_weight > 0:
            raise ValueError("learning_rate and kl_weight must be positive")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("lora_dropout must be in [0, 1)")
        if self.loss not in SFT_LOSSES:
            raise ValueError(f"unknown weighted_sft loss {self.loss!r}; expected one of {SFT_LOSSES}")
        if self.method == "grpo" and self.batch_size % self.num_generations:
            raise ValueError("grpo: batch_size must be a multiple of num_generations")
        if self.target_modules is not None and not isinstance(self.target_modules, tuple):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("target_modules") is not None:
            kw["target_modules"] = tuple(kw["target_modules"])
        return cls(**kw)

    def resolved(self, model_type: str | None = None) -> dict[str, Any]:
        """Every hyperparameter explicit (what the job row records). ``model_type`` resolves default LoRA targets."""
        d = asdict(self)
        d["target_modules"] = list(resolve_target_modules(self.target_modules, model_type))
        d["fan_in_fan_out"] = model_type == "gpt2"
        d["threads"] = self.threads or 1
        d["lora_bias"] = "none"
        d["task_type"] = "CAUSAL_LM"
        d["optimizer"] = "adamw"
        d["adam_betas"] = [0.9, 0.999]
        d["adam_eps"] = 1e-8
        d["lr_schedule"] = "linear warm-up, then linear decay to 10% at the last step"
        d["model_type"] = model_type
        if self.method == "weighted_sft":
            d["objective"] = "sum_x mu(x) sum_k q*(y_k|x) NLL(y_k|x), batches drawn by mu*q*, seeded by (seed, step)"
        else:
            d["objective"] = "GRPO (trl): reward sum_i (w_i/S) r_i, beta = lambda/S, S = sum_i w_i"
            d["scale_rewards"] = "none"
            d["loss_type"] = "dr_grpo"
        return d


def resolve_target_modules(target_modules: Sequence[str] | None, model_type: str | None) -> tuple[str, ...]:
    if target_modules:
        return tuple(target_modules)
    if model_type is None:
        return ()
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        raise ValueError(f"no default LoRA target modules for model type {model_type!r}; set target_modules")
    return tuple(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    tokens: int
    loss: float
    eta_seconds: float
    elapsed_seconds: float


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    path: str
    loss: float  # mean training loss since the previous checkpoint
    tokens: int
    weighted_nll: float | None = None  # -sum mu q* log pi_theta / mean response length, on all candidates
    tv_to_target: float | None = None  # TV(q_theta, q*) on the candidates


@dataclass(frozen=True)
class TrainResult:
    status: str  # "succeeded" | "cancelled"
    adapter_dir: str | None
    best_checkpoint: CheckpointInfo | None
    checkpoints: list[CheckpointInfo]
    steps_done: int
    tokens_seen: int
    resolved_config: dict[str, Any]
    train_seconds: float  # wall time of the training loop in this call
    tv_initial: float | None = None  # TV(q0, q*): fidelity before training
    resumed_from_step: int = 0
    step_seconds: float | None = None  # of train_seconds, the time in optimisation steps (no checkpoints, metrics)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        d = dict(d)
        d["checkpoints"] = [CheckpointInfo(**c) for c in d["checkpoints"]]
        d["best_checkpoint"] = CheckpointInfo(**d["best_checkpoint"]) if d.get("best_checkpoint") else None
        return cls(**d)


@dataclass(frozen=True)
class RLReward:
    """One group's reward for the RL method: ``score(prompts, responses)`` already normalised to [0, 1]."""

    name: str
    bid: float
    score: Callable[[list[str], list[str]], Any]


class TrainingError(ValueError):
    """Bad inputs or an ``out_dir`` that belongs to another job."""


# --- shared helpers ----------------------------------------------------------------------------------------------


def _set_threads(config: TrainConfig) -> int:
    import torch

    old = torch.get_num_threads()
    if config.device == "cpu":
        torch.set_num_threads(config.threads or 1)
    return old


def _normalised_rows(rows: Sequence[Sequence[float]]) -> list[np.ndarray]:
    out = []
    for r in rows:
        a = np.asarray(r, dtype=np.float64)
        if a.size == 0 or np.any(a < 0) or not a.sum() > 0:
            raise TrainingError("target weights must be non-negative with a positive sum for every prompt")
        out.append(a / a.sum())
    return out


def _check_inputs(prompts, candidates, target_weights, prompt_weights, base_logweights) -> np.ndarray:
    if not prompts:
        raise TrainingError("no prompts to train on")
    if len(candidates) != len(prompts) or len(target_weights) != len(prompts):
        raise TrainingError("prompts, candidates and target_weights must have one entry per prompt")
    for c, w in zip(candidates, target_weights, strict=True):
        if len(c) != len(w) or not c:
            raise TrainingError("every prompt needs candidates and one target weight per candidate")
    if base_logweights is not None and [len(r) for r in base_logweights] != [len(c) for c in candidates]:
        raise TrainingError("base_logweights must match the candidates")
    mu = (
        np.full(len(prompts), 1.0 / len(prompts))
        if prompt_weights is None
        else np.asarray(prompt_weights, dtype=np.float64)
    )
    if mu.shape != (len(prompts),) or np.any(mu < 0) or not mu.sum() > 0:
        raise TrainingError("prompt_weights must be non-negative, one per prompt, with a positive sum")
    return mu / mu.sum()


def _job_fingerprint(config: TrainConfig, prompts, candidates, target_weights) -> dict[str, Any]:
    import hashlib

    h = hashlib.sha256(
        json.dumps(
            [list(prompts), [list(c) for c in candidates], [list(map(float, w)) for w in target_weights]]
        ).encode()
    )
    cfg = asdict(config)
    cfg.pop("device")
    cfg.pop("threads")
    return {"config": cfg, "data_sha256": h.hexdigest()}


def _claim_out_dir(out_dir: Path, fingerprint: dict[str, Any]) -> None:
    path = out_dir / "job.json"
    if path.exists():
        if json.loads(path.read_text()) != json.loads(json.dumps(fingerprint)):
            raise TrainingError(f"{out_dir} holds checkpoints of a different job (config or data differ)")
        return
    _atomic_write_text(path, json.dumps(fingerprint, indent=2))


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def list_checkpoints(out_dir: Path | str) -> list[CheckpointInfo]:
    """The complete checkpoints in a job folder, by step (folders appear atomically, so none is half-written)."""
    root = Path(out_dir) / "checkpoints"
    if not root.exists():
        return []
    infos = []
    for d in sorted(root.glob("step-*")):
        info = d / "info.json"
        if info.exists():
            infos.append(CheckpointInfo(**json.loads(info.read_text())))
    return sorted(infos, key=lambda c: c.step)


_list_checkpoints = list_checkpoints  # older name, kept for callers


def _best(checkpoints: Sequence[CheckpointInfo]) -> CheckpointInfo | None:
    if not checkpoints:
        return None
    if all(c.tv_to_target is not None for c in checkpoints):
        return min(checkpoints, key=lambda c: (c.tv_to_target, -c.step))
    if all(c.weighted_nll is not None for c in checkpoints):
        return min(checkpoints, key=lambda c: (c.weighted_nll, -c.step))
    return checkpoints[-1]


def _publish_dir(src_fill: Callable[[Path], None], target: Path) -> None:
    """Fill a temporary sibling folder and rename it to ``target`` (replacing an older one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        src_fill(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def batch_schedule(
    config: TrainConfig,
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[Sequence[float]],
    prompt_weights: Sequence[float] | None = None,
) -> list[list[tuple[int, int]]]:
    """The (prompt index, candidate index) rows each weighted_sft step trains on: the same (seed, step) streams as
    ``train``. The benchmark feeds exactly these rows to TRL's SFTTrainer."""
    n = len(candidates)
    mu = np.full(n, 1.0 / n) if prompt_weights is None else np.asarray(prompt_weights, dtype=np.float64)
    mu = mu / mu.sum()
    q_star = _normalised_rows(target_weights)
    flat = [(i, k) for i, row in enumerate(candidates) for k in range(len(row))]
    weights = np.concatenate([m * q for m, q in zip(mu, q_star, strict=True)])
    weights = weights / weights.sum()
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in candidates])])
    per_step = max(1, config.batch_size // max(len(c) for c in candidates))
    out = []
    for step in range(config.steps):
        rng = np.random.default_rng([config.seed, step])
        if config.loss == "candidate_normalised":
            chosen = rng.choice(n, size=per_step, replace=True, p=mu)
            idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])
        else:
            idx = rng.choice(len(flat), size=config.batch_size, replace=True, p=weights)
        out.append([flat[j] for j in idx])
    return out


def load_adapter(base_path: Path | str, adapter_dir: Path | str, device: str = "cpu") -> tuple[Any, Any]:
    """``(peft model, tokenizer)``: the base model with the adapter on top, in eval mode.
    ``with model.disable_adapter():`` gives the base model back without reloading."""
    from peft import PeftModel

    from training.basemodels import load_base

    base, tokenizer = load_base(base_path, device=device)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(device)
    model.eval()
    return model, tokenizer


def _lora_config(resolved: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=resolved["lora_r"],
        lora_alpha=resolved["lora_alpha"],
        lora_dropout=resolved["lora_dropout"],
        target_modules=resolved["target_modules"],
        fan_in_fan_out=resolved["fan_in_fan_out"],
        bias="none",
        task_type="CAUSAL_LM",
    )


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, config.steps - config.warmup_steps)
        return max(0.1, 1.0 - 0.9 * (step - config.warmup_steps) / span)

    return f


# --- public entry point ------------------------------------------------------------------------------------------


def train(
    *,
    base_path: Path | str,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[Sequence[float]],
    prompt_weights: Sequence[float] | None = None,
    config: TrainConfig = TrainConfig(),
    out_dir: Path | str,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    rewards_for_rl: Sequence[RLReward] | None = None,
    base_logweights: Sequence[Sequence[float]] | None = None,
) -> TrainResult:
    """Train a LoRA adapter toward q* (see the module docstring). ``target_weights`` is q* per prompt (rows are
    renormalised), ``base_logweights`` log q0 per prompt (default: zeros, i.e. candidates sampled from the base),
    used for the fidelity metric. ``rewards_for_rl`` is required for ``grpo``."""
    out = Path(out_dir)
    mu = _check_inputs(prompts, candidates, target_weights, prompt_weights, base_logweights)
    out.mkdir(parents=True, exist_ok=True)
    _claim_out_dir(out, _job_fingerprint(config, prompts, candidates, target_weights))
    done = out / "result.json"
    if done.exists():
        return TrainResult.from_dict(json.loads(done.read_text()))
    q_star = _normalised_rows(target_weights)
    lw0 = (
        [np.zeros(len(c)) for c in candidates]
        if base_logweights is None
        else [np.asarray(r, dtype=np.float64) for r in base_logweights]
    )
    if config.method == "weighted_sft":
        return _train_weighted_sft(
            base_path,
            list(prompts),
            [list(c) for c in candidates],
            q_star,
            mu,
            lw0,
            config,
            out,
            on_progress,
            should_cancel,
        )
    if not rewards_for_rl:
        raise TrainingError("the grpo method needs rewards_for_rl (each group's normalised reward and bid)")
    return _train_grpo(
        base_path,
        list(prompts),
        [list(c) for c in candidates],
        q_star,
        mu,
        lw0,
        config,
        out,
        on_progress,
        should_cancel,
        list(rewards_for_rl),
    )


class _CandidateMetrics:
    """Weighted NLL and TV(q_theta, q*) on the candidates, the base log-probabilities computed once."""

    def __init__(self, model: Any, tokenizer: Any, prompts, candidates, q_star, mu, lw0, mean_len: float) -> None:
        from training.sampling import sequence_logprobs

        self.model, self.tokenizer = model, tokenizer
        self.flat_p = [p for p, row in zip(prompts, candidates, strict=True) for _ in row]
        self.flat_c = [c for row in candidates for c in row]
        self.sizes = [len(r) for r in candidates]
        self.q_star, self.mu, self.lw0, self.mean_len = q_star, mu, lw0, mean_len
        with _adapter_disabled(model):
            self.logp_base = self._rows(sequence_logprobs(model, tokenizer, self.flat_p, self.flat_c, 64))

    def _rows(self, flat: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for s in self.sizes:
            out.append(flat[i : i + s])
            i += s
        return out

    def tv_initial(self) -> float:
        return total_variation([np.exp(lw - np.logaddexp.reduce(lw)) for lw in self.lw0], self.q_star, self.mu)

    def __call__(self) -> tuple[float, float]:
        from training.sampling import sequence_logprobs

        lt = self._rows(sequence_logprobs(self.model, self.tokenizer, self.flat_p, self.flat_c, 64))
        nll = -sum(m * float(q @ t) for m, q, t in zip(self.mu, self.q_star, lt, strict=True)) / self.mean_len
        tv = total_variation(implied_weights(self.lw0, lt, self.logp_base), self.q_star, self.mu)
        return float(nll), float(tv)


class _adapter_disabled:
    def __init__(self, model: Any) -> None:
        self.cm = model.disable_adapter() if hasattr(model, "disable_adapter") else None

    def __enter__(self) -> None:
        if self.cm is not None:
            self.cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.cm is not None:
            self.cm.__exit__(*exc)


def _train_weighted_sft(
    base_path, prompts, candidates, q_star, mu, lw0, config: TrainConfig, out: Path, on_progress, should_cancel
) -> TrainResult:
    import torch
    from peft import get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from training.basemodels import load_base
    from training.sampling import _encode_pairs

    old_threads = _set_threads(config)
    try:
        base, tokenizer = load_base(base_path, device=config.device)
        resolved = config.resolved(base.config.model_type)
        torch.manual_seed(config.seed)
        model = get_peft_model(base, _lora_config(resolved))
        device = torch.device(config.device)

        # 1. tokenise once
        flat_p = [p for p, row in zip(prompts, candidates, strict=True) for _ in row]
        flat_c = [c for row in candidates for c in row]
        weights = np.concatenate([m * q for m, q in zip(mu, q_star, strict=True)])
        weights = weights / weights.sum()
        seqs, plens = [], []
        for ids, plen in _encode_pairs(tokenizer, flat_p, flat_c, True):
            if len(ids) > config.max_length:  # keep the response, cut the prompt from the left (>= 1 token)
                cut = min(len(ids) - config.max_length, plen - 1)
                ids, plen = ids[cut:], plen - cut
                ids = ids[: config.max_length]
            seqs.append(torch.tensor(ids, dtype=torch.long))
            plens.append(plen)
        lens = np.array([len(s) for s in seqs])
        rlens = lens - np.array(plens)
        mean_len = float(max(1.0, weights @ rlens))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config))
        metrics = _CandidateMetrics(model, tokenizer, prompts, candidates, q_star, mu, lw0, mean_len)
        listwise = config.loss == "candidate_normalised"
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in candidates])])
        prompts_per_step = max(1, config.batch_size // max(len(c) for c in candidates))
        base_lp = [torch.tensor(r, dtype=torch.float32, device=device) for r in metrics.logp_base]
        log_q0 = [torch.log_softmax(torch.tensor(r, dtype=torch.float32, device=device), dim=0) for r in lw0]
        q_star_t = [torch.tensor(q, dtype=torch.float32, device=device) for q in q_star]
        log_q_star = [torch.log(torch.clamp(q, min=1e-30)) for q in q_star_t]

        # resume
        checkpoints = list_checkpoints(out)
        start_step, tokens = 0, 0
        if checkpoints:
            last = checkpoints[-1]
            set_peft_model_state_dict(model, load_file(str(Path(last.path) / "adapter" / "adapter_model.safetensors")))
            state = torch.load(Path(last.path) / "state.pt", weights_only=False)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_step, tokens = last.step, last.tokens
        resumed_from = start_step

        model.train()
        status = "succeeded"
        window: list[float] = []
        t0 = time.perf_counter()
        step_seconds = 0.0
        step = start_step
        while step < config.steps:
            if should_cancel is not None and should_cancel():
                status = "cancelled"
                break
            # 2. the batch for this step depends only on (seed, step)
            t_step = time.perf_counter()
            rng = np.random.default_rng([config.seed, step])
            if listwise:
                chosen = rng.choice(len(prompts), size=prompts_per_step, replace=True, p=mu)
                idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])
            else:
                idx = rng.choice(len(seqs), size=config.batch_size, replace=True, p=weights)
            torch.manual_seed(config.seed * 1_000_003 + step)
            # 3. left-padded batch; logits only where response tokens are predicted
            width = int(lens[idx].max())
            r_max = int(rlens[idx].max())
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            attn = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - lens[i] :] = seqs[i]
                attn[row, width - lens[i] :] = 1
            pos = (attn.cumsum(-1) - 1).clamp(min=0)
            keep = min(r_max + 1, width)
            targets = ids[:, width - keep + 1 :]
            resp = (torch.arange(keep - 1)[None, :] >= (keep - 1 - torch.from_numpy(rlens[idx]))[:, None]).float()
            ids, attn, pos, targets, resp = (t.to(device) for t in (ids, attn, pos, targets, resp))
            logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=keep).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
            )
            seq_logp = -(nll.view_as(resp) * resp).sum(-1)
            if listwise:
                # KL(q* || q_theta) on each drawn prompt's candidates, q_theta = softmax(log q0 + logp_theta - logp_base)
                loss = seq_logp.new_zeros(())
                start_row = 0
                for i in chosen:
                    n_i = offsets[i + 1] - offsets[i]
                    delta = seq_logp[start_row : start_row + n_i] - base_lp[i]
                    log_q_theta = torch.log_softmax(log_q0[i] + delta, dim=0)
                    loss = loss + (q_star_t[i] * (log_q_star[i] - log_q_theta)).sum()
                    if config.sft_weight:
                        loss = (
                            loss
                            - config.sft_weight * (q_star_t[i] * seq_logp[start_row : start_row + n_i]).sum() / mean_len
                        )
                    start_row += n_i
                loss = loss / len(chosen)
            else:
                loss = -seq_logp.sum() / (len(idx) * mean_len)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_seconds += time.perf_counter() - t_step
            tokens += int(lens[idx].sum())
            window.append(loss.item())
            elapsed = time.perf_counter() - t0
            if on_progress is not None:
                per_step = elapsed / (step - start_step)
                on_progress(Progress(step, config.steps, tokens, window[-1], per_step * (config.steps - step), elapsed))
            if step % config.checkpoint_every == 0 or step == config.steps:
                nll_c, tv = metrics()
                model.train()
                info = CheckpointInfo(
                    step=step,
                    path=str(out / "checkpoints" / f"step-{step:06d}"),
                    loss=float(np.mean(window)),
                    tokens=tokens,
                    weighted_nll=nll_c,
                    tv_to_target=tv,
                )
                window = []

                def fill(tmp: Path, info: CheckpointInfo = info) -> None:
                    model.save_pretrained(tmp / "adapter")
                    torch.save(
                        {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": info.step},
                        tmp / "state.pt",
                    )
                    (tmp / "info.json").write_text(json.dumps(asdict(info), indent=2))

                _publish_dir(fill, Path(info.path))
                checkpoints = [c for c in checkpoints if c.step != step] + [info]
        train_seconds = time.perf_counter() - t0
        return _finish(
            out,
            status,
            checkpoints,
            step,
            tokens,
            resolved,
            train_seconds,
            metrics.tv_initial(),
            resumed_from,
            step_seconds,
        )
    finally:
        torch.set_num_threads(old_threads)


def _finish(
    out: Path,
    status: str,
    checkpoints,
    steps_done: int,
    tokens: int,
    resolved,
    train_seconds: float,
    tv_initial,
    resumed_from: int,
    step_seconds: float | None = None,
) -> TrainResult:
    best = _best(checkpoints)
    adapter_dir: str | None = None
    if status == "succeeded" and best is not None:
        target = out / "adapter"
        _publish_dir(lambda tmp: shutil.copytree(Path(best.path) / "adapter", tmp, dirs_exist_ok=True), target)
        adapter_dir = str(target)
    elif best is not None:
        adapter_dir = str(Path(best.path) / "adapter")
    result = TrainResult(
        status=status,
        adapter_dir=adapter_dir,
        best_checkpoint=best,
        checkpoints=list(checkpoints),
        steps_done=steps_done,
        tokens_seen=tokens,
        resolved_config=resolved,
        train_seconds=round(train_seconds, 3),
        tv_initial=tv_initial,
        resumed_from_step=resumed_from,
        step_seconds=None if step_seconds is None else round(step_seconds, 3),
    )
    if status == "succeeded":
        _atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2))
    return result


# --- TRL: GRPO ---------------------------------------------------------------------------------------------------


def grpo_mapping(bids: Sequence[float], kl_weight: float) -> tuple[list[float], float, float]:
    """``(reward_weights, beta, scale)`` for TRL: reward sum_i (w_i/S) r_i and beta = lambda/S, S = sum_i w_i."""
    scale = float(sum(bids))
    if not scale > 0:
        raise TrainingError("the grpo method needs at least one positive bid")
    return [float(w) / scale for w in bids], kl_weight / scale, scale


def _train_grpo(
    base_path,
    prompts,
    candidates,
    q_star,
    mu,
    lw0,
    config: TrainConfig,
    out: Path,
    on_progress,
    should_cancel,
    rewards: list[RLReward],
) -> TrainResult:
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    from training.basemodels import load_base

    old_threads = _set_threads(config)
    try:
        base, tokenizer = load_base(base_path, device=config.device)
        resolved = config.resolved(base.config.model_type)
        reward_weights, beta, scale = grpo_mapping([r.bid for r in rewards], config.kl_weight)
        resolved.update({"reward_weights": reward_weights, "beta": beta, "reward_scale": scale})

        # prompts drawn by mu, enough for every step (each prompt yields num_generations completions)
        per_step = config.batch_size // config.num_generations
        rng = np.random.default_rng([config.seed, 0])
        rows = [prompts[i] for i in rng.choice(len(prompts), size=max(len(prompts), per_step * config.steps), p=mu)]
        dataset = Dataset.from_dict({"prompt": rows})

        def make_func(r: RLReward) -> Callable[..., list[float]]:
            def f(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
                return [float(v) for v in r.score(list(prompts), [c.strip() for c in completions])]

            f.__name__ = f"reward_{r.name}"
            return f

        trl_dir = out / "trl"
        args = GRPOConfig(
            output_dir=str(trl_dir),
            max_steps=config.steps,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size,
            num_generations=config.num_generations,
            max_completion_length=config.max_new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            beta=beta,
            reward_weights=reward_weights,
            scale_rewards="none",
            loss_type="dr_grpo",
            warmup_steps=config.warmup_steps,
            lr_scheduler_type="linear",
            max_grad_norm=config.max_grad_norm,
            weight_decay=config.weight_decay,
            seed=config.seed,
            save_strategy="steps",
            save_steps=config.checkpoint_every,
            logging_steps=1,
            report_to=[],
            disable_tqdm=True,
            use_cpu=config.device == "cpu",
            bf16=False,
        )
        state = {"status": "succeeded", "tokens": 0}
        t0 = time.perf_counter()

        class _Callback(TrainerCallback):
            def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> Any:
                elapsed = time.perf_counter() - t0
                loss = next((h["loss"] for h in reversed(st.log_history) if "loss" in h), float("nan"))
                if on_progress is not None:
                    eta = elapsed / max(1, st.global_step) * (config.steps - st.global_step)
                    on_progress(
                        Progress(
                            st.global_step, config.steps, int(st.num_input_tokens_seen or 0), float(loss), eta, elapsed
                        )
                    )
                if should_cancel is not None and should_cancel():
                    state["status"] = "cancelled"
                    control.should_training_stop = True
                    control.should_save = False
                return control

        trainer = GRPOTrainer(
            model=base,
            reward_funcs=[make_func(r) for r in rewards],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=_lora_config(resolved),
            callbacks=[_Callback()],
        )
        last = get_last_checkpoint(str(trl_dir)) if trl_dir.exists() else None
        resumed_from = int(Path(last).name.split("-")[-1]) if last else 0
        trainer.train(resume_from_checkpoint=last)
        train_seconds = time.perf_counter() - t0
        model = trainer.model
        steps_done = int(trainer.state.global_step)
        mean_len = 1.0
        metrics = _CandidateMetrics(model, tokenizer, prompts, candidates, q_star, mu, lw0, mean_len)
        nll_c, tv = metrics()
        loss = next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), float("nan"))
        info = CheckpointInfo(
            step=steps_done,
            path=str(out / "checkpoints" / f"step-{steps_done:06d}"),
            loss=float(loss),
            tokens=int(trainer.state.num_input_tokens_seen or 0),
            weighted_nll=nll_c,
            tv_to_target=tv,
        )

        def fill(tmp: Path) -> None:
            model.save_pretrained(tmp / "adapter")
            (tmp / "info.json").write_text(json.dumps(asdict(info), indent=2))

        _publish_dir(fill, Path(info.path))
        return _finish(
            out,
            state["status"],
            [info],
            steps_done,
            info.tokens,
            resolved,
            train_seconds,
            metrics.tv_initial(),
            resumed_from,
        )
    finally:
        import torch as _torch

        _torch.set_num_threads(old_threads)
