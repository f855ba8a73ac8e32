"""The ``weighted_sft`` method: a plain torch loop over a peft model toward the auction's q*.

The objective is the q*-weighted cross-entropy  - sum_x mu(x) sum_k q*(y_k|x) log pi_theta(y_k|x)  over the round's
candidates, whose minimiser over all distributions is pi* itself.

1. Tokenise every (prompt, candidate) pair once: ``prompt ids + response ids + eos``; a pair longer than
   ``max_length`` keeps its response and loses prompt tokens from the left (at least one prompt token stays).
2. Step t draws its batch from a numpy generator seeded with ``(seed, t)`` (``schedule.draw_batch``):
   - ``loss="candidate_normalised"`` (default): ``batch_size // max candidates`` prompts by mu, each with all its
     candidates; the loss is KL(q* || q_theta) on each drawn prompt's candidates, where
     q_theta = softmax(log q0 + log pi_theta - log pi0) is the reweighting the adapter implies. It fixes the
     *ratios* between candidates; ``sft_weight`` adds the plain term below to keep mass on the candidates too.
   - ``loss="plain"``: ``batch_size`` pairs with replacement, with probability mu(x) q*(y|x); the mean of the
     per-sequence summed response-token NLL, divided by the q*-weighted mean response length (a constant), is an
     unbiased estimate of the objective (up to that constant).
3. Batches are left-padded with explicit position ids, and the LM head runs only on the last
   ``max response length + 1`` positions (``logits_to_keep``): no work on prompt-only logits.
4. AdamW with linear warm-up and linear decay to 10 %, gradient clipping. Dropout is seeded with
   ``seed * 1_000_003 + t`` before each step. Because the data and dropout streams are keyed by the step number, a job
   resumed from a checkpoint (adapter, optimiser and schedule state) draws exactly the batches it would have drawn.
5. Every ``checkpoint_every`` steps and at the last step: the candidate metrics, then a checkpoint folder
   (``jobdir``). ``should_cancel`` is polled before every step, so a cancel takes effect within one step.
6. On-policy refinement (``refine_steps`` > 0): the candidates are only ``N`` answers per prompt, and the adapter's
   fresh answers lie elsewhere. For the last ``refine_steps`` steps the loop trains on a *pool* of
   ``refine_samples`` answers per prompt drawn from the adapter itself (``refine_pools`` pools, each drawn at its
   first step), with the exact-delivery weights as the target: w_j ∝ exp(R_j/λ) pi0(y_j)/pi_theta(y_j),
   R = Σ_i bid_i r̂_i (``training.lib.delivery``, ``auctions.resampling.importance_weights``), and log q0 =
   log pi0 - log pi_theta (the pool's proposal is the adapter). The loss is the same as on the candidates, so it
   pulls the adapter toward self-normalised importance resampling of itself toward pi*: a step of reward-weighted
   regression. Each pool is written to ``out/refine/pool-<step>.json`` before it is used, so a resumed job trains on
   the pool the interrupted one drew. The delivered adapter is then the last checkpoint, not the one closest to q*
   on the candidates (refinement trades that fidelity for the adapter's own answers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auctions.resampling import importance_weights
from training.lib.adapters import adapter_disabled, with_new_adapter
from training.lib.config import TrainConfig
from training.lib.delivery import aggregate
from training.lib.distributed import current as data_parallel
from training.lib.grpo import RLReward
from training.lib.inputs import TrainInputs, train_inputs
from training.lib.jobdir import (
    CheckpointInfo,
    TrainResult,
    atomic_write_text,
    checkpoint_path,
    finish_job,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from training.lib.loop import CandidateMetrics, Progress, training_session
from training.lib.sampling import encode_pairs, generate_texts, sequence_logprobs
from training.lib.schedule import draw_batch, prompts_per_step


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """The learning-rate multiplier at a step: linear warm-up, then linear decay to 10 % at the last step."""

    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, config.steps - config.warmup_steps)
        return max(0.1, 1.0 - 0.9 * (step - config.warmup_steps) / span)

    return f


@dataclass(frozen=True)
class EncodedPairs:
    """Every (prompt, candidate) pair tokenised once (step 1), in the flat pair order of ``TrainInputs``."""

    seqs: list[Any]  # one long tensor per pair: prompt ids + response ids + eos
    lens: NDArray[np.int64]  # tokens per pair
    rlens: NDArray[np.int64]  # response tokens per pair (eos included)


def encode_for_training(tokenizer: Any, inputs: TrainInputs, max_length: int) -> EncodedPairs:
    # torch: kept out of Django start-up
    import torch

    seqs, plens = [], []
    for ids, plen in encode_pairs(tokenizer, inputs.flat_prompts, inputs.flat_candidates, True):
        if len(ids) > max_length:  # keep the response, cut the prompt from the left (>= 1 token)
            cut = min(len(ids) - max_length, plen - 1)
            ids, plen = ids[cut:], plen - cut
            ids = ids[:max_length]
        seqs.append(torch.tensor(ids, dtype=torch.long))
        plens.append(plen)
    lens = np.array([len(s) for s in seqs])
    return EncodedPairs(seqs=seqs, lens=lens, rlens=lens - np.array(plens))


@dataclass(frozen=True)
class CandidateTargets:
    """Per prompt, as float32 tensors on the device: log pi0, log q0, q* and log q* of its candidates."""

    base_lp: list[Any]
    log_q0: list[Any]
    q_star: list[Any]
    log_q_star: list[Any]


def candidate_targets(logp_base: Sequence[NDArray[np.float64]], inputs: TrainInputs, device: Any) -> CandidateTargets:
    # torch: kept out of Django start-up
    import torch

    q_star = [torch.tensor(q, dtype=torch.float32, device=device) for q in inputs.q_star]
    return CandidateTargets(
        base_lp=[torch.tensor(r, dtype=torch.float32, device=device) for r in logp_base],
        log_q0=[torch.log_softmax(torch.tensor(r, dtype=torch.float32, device=device), dim=0) for r in inputs.lw0],
        q_star=q_star,
        log_q_star=[torch.log(torch.clamp(q, min=1e-30)) for q in q_star],
    )


def batch_logprobs(model: Any, pairs: EncodedPairs, idx: NDArray[np.int64], pad_id: int, device: Any) -> Any:
    """The summed response-token log-probabilities (with eos) of the pairs ``idx``, one per row, with gradients
    (step 3)."""
    # torch: kept out of Django start-up
    import torch

    lens, rlens = pairs.lens, pairs.rlens
    width = int(lens[idx].max())
    r_max = int(rlens[idx].max())
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        ids[row, width - lens[i] :] = pairs.seqs[i]
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
    return -(nll.view_as(resp) * resp).sum(-1)


def listwise_loss(
    seq_logp: Any,
    chosen: NDArray[np.int64],
    offsets: NDArray[np.int64],
    targets: CandidateTargets,
    sft_weight: float,
    mean_len: float,
) -> Any:
    """Mean over the drawn prompts of KL(q* || q_theta) on their candidates, q_theta = softmax(log q0 + logp_theta -
    logp_base), minus ``sft_weight`` times the q*-weighted log-likelihood per token (step 2)."""
    # torch: kept out of Django start-up
    import torch

    loss = seq_logp.new_zeros(())
    start_row = 0
    for i in chosen:
        n_i = offsets[i + 1] - offsets[i]
        delta = seq_logp[start_row : start_row + n_i] - targets.base_lp[i]
        log_q_theta = torch.log_softmax(targets.log_q0[i] + delta, dim=0)
        loss = loss + (targets.q_star[i] * (targets.log_q_star[i] - log_q_theta)).sum()
        if sft_weight:
            loss = loss - sft_weight * (targets.q_star[i] * seq_logp[start_row : start_row + n_i]).sum() / mean_len
        start_row += n_i
    return loss / len(chosen)


@dataclass(frozen=True)
class StepData:
    """What the steps train on: the round's candidates, or a refinement pool (step 6), tokenised once."""

    inputs: TrainInputs
    pairs: EncodedPairs
    targets: CandidateTargets
    weights: NDArray[np.float64]
    mean_len: float
    per_step: int


def step_data(
    tokenizer: Any, inputs: TrainInputs, logp_base: Sequence[NDArray[np.float64]], config: TrainConfig, device: Any
) -> StepData:
    weights = inputs.pair_weights
    pairs = encode_for_training(tokenizer, inputs, config.max_length)
    return StepData(
        inputs=inputs,
        pairs=pairs,
        targets=candidate_targets(logp_base, inputs, device),
        weights=weights,
        mean_len=max(1.0, float(weights @ pairs.rlens)),
        per_step=prompts_per_step(config, inputs.candidates),
    )


def refine_pool_starts(config: TrainConfig) -> list[int]:
    """The steps at which a refinement pool is drawn (step 6): evenly over the last ``refine_steps`` steps."""
    if not config.refine_steps:
        return []
    first = config.steps - config.refine_steps
    return sorted({first + p * config.refine_steps // config.refine_pools for p in range(config.refine_pools)})


def draw_refine_pool(
    model: Any, tokenizer: Any, inputs: TrainInputs, config: TrainConfig, rewards: Sequence[RLReward], start: int
) -> dict[str, Any]:
    """``refine_samples`` adapter answers per prompt with their exact-delivery weights (step 6), as JSON data."""
    m = config.refine_samples
    texts, _ = generate_texts(
        model, tokenizer, list(inputs.prompts), m, seed=config.seed * 1_000_003 + start,
        max_new_tokens=config.max_new_tokens, batch_size=64,
    )
    flat_p = [p for p in inputs.prompts for _ in range(m)]
    lt = sequence_logprobs(model, tokenizer, flat_p, texts, 64).reshape(len(inputs.prompts), m)
    with adapter_disabled(model):
        lb = sequence_logprobs(model, tokenizer, flat_p, texts, 64).reshape(len(inputs.prompts), m)
    scores = np.stack([np.asarray(r.score(flat_p, texts), dtype=np.float64) for r in rewards])
    reward = aggregate([r.bid for r in rewards], scores).reshape(len(inputs.prompts), m)
    rows = [texts[i * m : (i + 1) * m] for i in range(len(inputs.prompts))]
    weights, ess = [], []
    for i in range(len(inputs.prompts)):
        w, e = importance_weights(log_pi_theta=lt[i], log_pi0=lb[i], reward=reward[i], kl_weight=config.kl_weight)
        weights.append(w.tolist())
        ess.append(float(e))
    return {
        "start": start,
        "candidates": rows,
        "target_weights": weights,
        "base_logweights": (lb - lt).tolist(),
        "base_logprobs": lb.tolist(),
        "ess": ess,
    }


def refine_pool(
    out: Path, model: Any, tokenizer: Any, inputs: TrainInputs, config: TrainConfig, rewards: Sequence[RLReward],
    start: int,
) -> tuple[TrainInputs, list[NDArray[np.float64]]]:
    """The pool that starts at ``start``: read back from the job folder, else drawn and written there first."""
    path = out / "refine" / f"pool-{start:06d}.json"
    if path.exists():
        data = json.loads(path.read_text())
    else:
        data = draw_refine_pool(model, tokenizer, inputs, config, rewards, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data))
    pool = train_inputs(
        inputs.prompts, data["candidates"], data["target_weights"], inputs.mu, data["base_logweights"]
    )
    return pool, [np.asarray(r, dtype=np.float64) for r in data["base_logprobs"]]


def train_weighted_sft(
    base_path: Path | str,
    inputs: TrainInputs,
    config: TrainConfig,
    out: Path,
    on_progress: Callable[[Progress], None] | None,
    should_cancel: Callable[[], bool] | None,
    rewards: Sequence[RLReward] | None = None,
) -> TrainResult:
    """Run (or resume) the loop of the module docstring in the job folder ``out``; ``rewards`` (each group's
    normalised reward and bid) are needed when ``config.refine_steps`` > 0."""
    # torch: kept out of Django start-up
    import torch

    with training_session(base_path, config) as session:
        tokenizer = session.tokenizer
        torch.manual_seed(config.seed)
        model = with_new_adapter(session.base, session.resolved)
        device = torch.device(config.device)
        dp = data_parallel()  # one process, or this rank of a data-parallel job (training.lib.distributed)

        # 1. tokenise once
        weights = inputs.pair_weights
        pairs = encode_for_training(tokenizer, inputs, config.max_length)
        mean_len = max(1.0, float(weights @ pairs.rlens))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(config))
        metrics = CandidateMetrics(model, tokenizer, inputs, mean_len)
        listwise = config.loss == "candidate_normalised"
        candidates = StepData(
            inputs=inputs,
            pairs=pairs,
            targets=candidate_targets(metrics.logp_base, inputs, device),
            weights=weights,
            mean_len=mean_len,
            per_step=prompts_per_step(config, inputs.candidates),
        )
        pool_starts = refine_pool_starts(config)
        data, data_start = candidates, -1

        # resume
        checkpoints = list_checkpoints(out)
        start_step, tokens = 0, 0
        if checkpoints:
            last = checkpoints[-1]
            state = load_checkpoint(last, model)
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
            t_step = time.perf_counter()
            # 6. refinement: the pool of the latest pool start at or before this step
            started = [s for s in pool_starts if s <= step]
            if started and started[-1] != data_start:
                assert rewards, "refine_steps needs rewards (checked by trainer.train)"
                data_start = started[-1]
                pool, pool_base = refine_pool(out, model, tokenizer, inputs, config, rewards, data_start)
                data = step_data(tokenizer, pool, pool_base, config, device)
                model.train()
            # 2. the batch for this step depends only on (seed, step)
            offsets = data.inputs.offsets
            chosen, idx = draw_batch(config, step, data.inputs.mu, data.weights, offsets, data.per_step)
            batch_tokens = int(data.pairs.lens[idx].sum())
            chosen, idx, share = dp.shard(chosen, idx, offsets)  # data-parallel: this rank's part of the batch
            torch.manual_seed(config.seed * 1_000_003 + step)
            # 3. left-padded batch; logits only where response tokens are predicted
            seq_logp = batch_logprobs(model, data.pairs, idx, pad_id, device)
            if listwise:
                loss = listwise_loss(seq_logp, chosen, offsets, data.targets, config.sft_weight, data.mean_len)
            else:
                loss = -seq_logp.sum() / (len(idx) * data.mean_len)
            # 4. one optimiser step
            opt.zero_grad(set_to_none=True)
            loss.backward()
            dp.reduce_gradients(params, share)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_seconds += time.perf_counter() - t_step
            tokens += batch_tokens
            window.append(dp.combine(loss.item(), share))
            elapsed = time.perf_counter() - t0
            if on_progress is not None:
                per_step_s = elapsed / (step - start_step)
                on_progress(
                    Progress(step, config.steps, tokens, window[-1], per_step_s * (config.steps - step), elapsed)
                )
            # 5. checkpoint
            if step % config.checkpoint_every == 0 or step == config.steps:
                nll_c, tv = metrics()
                model.train()
                info = CheckpointInfo(
                    step=step,
                    path=checkpoint_path(out, step),
                    loss=float(np.mean(window)),
                    tokens=tokens,
                    weighted_nll=nll_c,
                    tv_to_target=tv,
                )
                window = []
                save_checkpoint(
                    info, model, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": info.step}
                )
                checkpoints = [c for c in checkpoints if c.step != step] + [info]
        train_seconds = time.perf_counter() - t0
        return finish_job(
            out,
            status=status,
            checkpoints=checkpoints,
            steps_done=step,
            tokens=tokens,
            resolved=session.resolved,
            train_seconds=train_seconds,
            tv_initial=metrics.tv_initial(),
            resumed_from=resumed_from,
            step_seconds=step_seconds,
            best_from_step=config.steps if config.refine_steps else 0,
        )
