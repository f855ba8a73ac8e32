"""``train``: LoRA fine-tuning toward the auction's target q*, the entry point the job service calls.

Methods: ``weighted_sft`` (default, our torch loop, ``training.lib.sft``) minimises the q*-weighted cross-entropy
over the round's candidates; ``grpo`` (TRL, ``training.lib.grpo``) optimises the same objective written as
KL-regularised RL on fresh samples.

1. Validate the inputs (``inputs.train_inputs``): nothing is written for inputs that cannot make a job.
2. Claim the job folder (``jobdir``): its ``job.json`` fingerprint must match, so a folder never mixes two jobs.
3. A folder with a finished ``result.json`` returns that result; otherwise the method's loop runs, resuming from
   the folder's last checkpoint when there is one.
4. The loop checkpoints every ``checkpoint_every`` steps and at the last step (adapter, optimiser and schedule
   state, the loss and the candidate metrics: weighted NLL and TV(q_theta, q*)), polls ``should_cancel`` before (SFT)
   or after (GRPO) every step, and on success copies the best checkpoint's adapter to ``out_dir/adapter``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from numpy.typing import ArrayLike

from training.lib.config import TrainConfig, TrainingError
from training.lib.distributed import train_data_parallel
from training.lib.grpo import RLReward, train_grpo
from training.lib.inputs import train_inputs
from training.lib.jobdir import TrainResult, claim_out_dir, finished_result, job_fingerprint
from training.lib.loop import Progress
from training.lib.sft import train_weighted_sft

DEFAULT_CONFIG = TrainConfig()  # frozen, so one shared default is safe


def train(
    *,
    base_path: Path | str,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[ArrayLike],
    prompt_weights: ArrayLike | None = None,
    config: TrainConfig = DEFAULT_CONFIG,
    out_dir: Path | str,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    rewards_for_rl: Sequence[RLReward] | None = None,
    base_logweights: Sequence[ArrayLike] | None = None,
    processes: int = 1,
) -> TrainResult:
    """Train a LoRA adapter toward q* (see the module docstring). ``target_weights`` is q* per prompt (rows are
    renormalised), ``base_logweights`` log q0 per prompt (default: zeros, i.e. candidates sampled from the base),
    used for the fidelity metric. ``rewards_for_rl`` is required for ``grpo`` and for weighted_sft's on-policy
    refinement (``refine_steps``). ``processes`` > 1 trains the job
    data-parallel over that many processes (``training.lib.distributed``), with the same folder and result."""
    if processes > 1:
        return train_data_parallel(
            run=train, processes=processes, base_path=base_path, prompts=prompts, candidates=candidates,
            target_weights=target_weights, prompt_weights=prompt_weights, config=config, out_dir=out_dir,
            on_progress=on_progress, should_cancel=should_cancel, rewards_for_rl=rewards_for_rl,
            base_logweights=base_logweights,
        )
    out = Path(out_dir)
    inputs = train_inputs(prompts, candidates, target_weights, prompt_weights, base_logweights)
    out.mkdir(parents=True, exist_ok=True)
    claim_out_dir(out, job_fingerprint(config, prompts, candidates, target_weights))
    done = finished_result(out)
    if done is not None:
        return done
    if config.method == "weighted_sft":
        if config.refine_steps and not rewards_for_rl:
            raise TrainingError("refine_steps needs rewards_for_rl (each group's normalised reward and bid)")
        return train_weighted_sft(base_path, inputs, config, out, on_progress, should_cancel, rewards_for_rl)
    if not rewards_for_rl:
        raise TrainingError("the grpo method needs rewards_for_rl (each group's normalised reward and bid)")
    return train_grpo(base_path, inputs, config, out, on_progress, should_cancel, list(rewards_for_rl))
