"""The job folder: how a training job's files are laid out, written and read back.

::

    out_dir/
      job.json                      fingerprint: the config (without device and threads) and a hash of the data
      checkpoints/step-NNNNNN/      one per checkpoint
        adapter/                    the LoRA adapter (peft ``save_pretrained``)
        state.pt                    weighted_sft only: optimiser and schedule state, for resuming
        info.json                   ``CheckpointInfo``: step, loss, tokens, weighted NLL, TV to q*
      adapter/                      on success: a copy of the best checkpoint's adapter (the model to deliver)
      result.json                   on success: ``TrainResult``
      trl/                          grpo only: TRL's own checkpoints

1. Every folder is filled under a temporary name and renamed into place, and every file is written to a temporary
   file and replaced, so a reader (the job service mirroring checkpoints, a resumed job) never sees half of one.
2. ``job.json`` is written once; a later job with another fingerprint is refused, so a folder never mixes the
   checkpoints of two jobs. A job that finds ``result.json`` is finished and returns it.
3. The best checkpoint is the one with the smallest TV to q* (smallest weighted NLL when there is no TV; the last
   one when there is neither); ties go to the later step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from training.lib.adapters import load_adapter_weights
from training.lib.config import TrainConfig, TrainingError


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


def job_fingerprint(
    config: TrainConfig,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[ArrayLike],
) -> dict[str, Any]:
    """What makes two calls the same job: the config (less where it runs) and the data, hashed."""
    h = hashlib.sha256(
        json.dumps(
            [
                list(prompts),
                [list(c) for c in candidates],
                [list(map(float, np.asarray(w, dtype=np.float64))) for w in target_weights],
            ]
        ).encode()
    )
    cfg = asdict(config)
    cfg.pop("device")
    cfg.pop("threads")
    if not config.refine_steps:  # added later: left out when off, so folders claimed before they existed still match
        for name in ("refine_steps", "refine_samples", "refine_pools"):
            cfg.pop(name)
    return {"config": cfg, "data_sha256": h.hexdigest()}


def claim_out_dir(out_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Write ``job.json`` on first use; refuse a folder that holds another job (see the module docstring, 2)."""
    path = out_dir / "job.json"
    if path.exists():
        if json.loads(path.read_text()) != json.loads(json.dumps(fingerprint)):
            raise TrainingError(f"{out_dir} holds checkpoints of a different job (config or data differ)")
        return
    atomic_write_text(path, json.dumps(fingerprint, indent=2))


def finished_result(out_dir: Path) -> TrainResult | None:
    """The stored result of a job that already succeeded in this folder, if any."""
    done = out_dir / "result.json"
    if done.exists():
        return TrainResult.from_dict(json.loads(done.read_text()))
    return None


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def publish_dir(fill: Callable[[Path], object], target: Path) -> None:
    """Fill a temporary sibling folder and rename it to ``target`` (replacing an older one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def checkpoint_path(out_dir: Path, step: int) -> str:
    return str(out_dir / "checkpoints" / f"step-{step:06d}")


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


def best_checkpoint(checkpoints: Sequence[CheckpointInfo]) -> CheckpointInfo | None:
    """See the module docstring, 3."""
    if not checkpoints:
        return None
    for metric in ("tv_to_target", "weighted_nll"):
        values: list[float | None] = [getattr(c, metric) for c in checkpoints]
        if all(v is not None for v in values):
            return min(zip(values, checkpoints, strict=True), key=lambda vc: (vc[0], -vc[1].step))[1]
    return checkpoints[-1]


def save_checkpoint(info: CheckpointInfo, model: Any, state: dict[str, Any] | None = None) -> None:
    """Publish the checkpoint folder ``info.path``: the adapter, ``state.pt`` when there is training state to resume
    from, and ``info.json`` last."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp / "adapter")
        if state is not None:
            # torch: kept out of Django start-up
            import torch

            torch.save(state, tmp / "state.pt")
        (tmp / "info.json").write_text(json.dumps(asdict(info), indent=2))

    publish_dir(fill, Path(info.path))


def load_checkpoint(info: CheckpointInfo, model: Any) -> dict[str, Any]:
    """Load a checkpoint's adapter weights into ``model`` (a peft model) and return its ``state.pt``."""
    # torch: kept out of Django start-up
    import torch

    load_adapter_weights(model, Path(info.path) / "adapter")
    # weights_only: a checkpoint folder is data, and unpickling arbitrary objects from it would run code. The state
    # is optimiser and scheduler state dicts (tensors, numbers, lists, dicts), which the safe loader reads.
    state: dict[str, Any] = torch.load(Path(info.path) / "state.pt", weights_only=True)
    return state


def finish_job(
    out: Path,
    *,
    status: str,
    checkpoints: Sequence[CheckpointInfo],
    steps_done: int,
    tokens: int,
    resolved: dict[str, Any],
    train_seconds: float,
    tv_initial: float | None,
    resumed_from: int,
    step_seconds: float | None = None,
    best_from_step: int = 0,
) -> TrainResult:
    """The job's result. On success: the best checkpoint's adapter copied to ``out/adapter`` and ``result.json``
    written (in that order, so a folder with ``result.json`` always has its adapter). On cancel: nothing is written
    and ``adapter_dir`` points at the best checkpoint so far. Only checkpoints from ``best_from_step`` on compete for
    best (all of them when none is that late): a refined adapter (``sft``, step 6) is delivered as trained."""
    best = best_checkpoint([c for c in checkpoints if c.step >= best_from_step] or checkpoints)
    adapter_dir: str | None = None
    if status == "succeeded" and best is not None:
        target = out / "adapter"
        source = Path(best.path) / "adapter"
        publish_dir(lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True), target)
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
        atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2))
    return result
