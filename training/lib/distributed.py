"""Data-parallel training of one job over several processes: ``torch.distributed``, gloo on CPU, NCCL on GPUs.

``train(..., processes=N)`` (``training.lib.trainer``) lands here when N > 1. This process is rank 0; ranks 1..N-1
are started with ``torch.multiprocessing`` (spawn) and all N run the same ``weighted_sft`` loop:

1. Every rank draws the same step batch from the ``(seed, step)`` stream (``schedule.draw_batch``) and keeps its
   share of it (``shard``): candidate-normalised, every N-th drawn prompt with all its candidates; plain, every N-th
   pair. The adapter starts identical everywhere (the same seed before it is made).
2. After ``backward`` each rank's gradient is scaled by its share of the batch and the gradients are summed over
   the ranks (``reduce_gradients``, one flat all-reduce): that is the gradient of the whole batch's loss, so N
   processes take the steps one process would take, up to floating-point summation order. The reported loss is
   combined the same way.
3. Rank 0 alone writes the job folder (checkpoints, ``result.json``, the adapter) and alone reports progress. The
   other ranks write to a scratch copy of the folder, made at their start, so they resume from the same checkpoint
   as rank 0 and throw their own writes away.
4. Cancel: rank 0 polls ``should_cancel`` once per step and broadcasts the answer, so every rank stops at the same
   step. If rank 0 fails (its progress callback raises, say), the other ranks are terminated.

GPU workers: rank r uses ``cuda:r`` (NCCL). The number of processes is the site's ``TRAINING_PROCESSES``; ``grpo``
jobs (TRL's trainer) and jobs whose batch has fewer units than processes run in fewer processes (``world_size``).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.lib.config import TrainConfig, TrainingError
from training.lib.jobdir import TrainResult
from training.lib.schedule import prompts_per_step

RENDEZVOUS_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the job: rank and world size (``rank=0, world=1`` outside a process group)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(
        self, chosen: NDArray[np.int64], idx: NDArray[np.int64], offsets: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], float]:
        """``(chosen, idx, share)`` for this rank out of the step's whole batch (step 1); ``share`` is the fraction of
        the batch's units (prompts, or pairs for the plain loss) this rank got."""
        if not self.active:
            return chosen, idx, 1.0
        if len(chosen):  # candidate-normalised: whole prompts
            mine = chosen[self.rank :: self.world]
            pairs = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in mine])
            return mine, pairs, len(mine) / len(chosen)
        mine = idx[self.rank :: self.world]
        return chosen, mine, len(mine) / len(idx)

    def reduce_gradients(self, params: list[Any], share: float) -> None:
        """Sum ``share`` x each rank's gradient over the ranks, in place (step 2)."""
        if not self.active:
            return
        # torch: kept out of Django start-up
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]) * share
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        start = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[start : start + n].view_as(g).clone()
            start += n

    def combine(self, value: float, share: float) -> float:
        """The whole batch's loss from each rank's loss on its share."""
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value * share], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (step 4)."""
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
        dist.broadcast(t, src=0)
        return bool(t.item())


def current() -> DataParallel:
    """The data-parallel place of this process: from the torch process group if one is up, else a single process."""
    # torch: kept out of Django start-up
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DataParallel(rank=dist.get_rank(), world=dist.get_world_size())
    return DataParallel()


def world_size(config: TrainConfig, candidates: Any, processes: int) -> int:
    """How many processes the job can use: one for grpo and for on-policy refinement (its reward models run in the
    job's process), at most one per unit of the step's batch."""
    if processes <= 1 or config.method != "weighted_sft" or config.refine_steps:
        return 1
    units = prompts_per_step(config, candidates) if config.loss == "candidate_normalised" else config.batch_size
    return max(1, min(processes, units))


def _collective_device() -> Any:
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _backend(config: TrainConfig) -> str:
    return "nccl" if config.device.startswith("cuda") else "gloo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _join(rank: int, world: int, init_method: str, config: TrainConfig) -> None:
    import torch
    import torch.distributed as dist

    if config.device.startswith("cuda"):
        torch.cuda.set_device(rank)
    dist.init_process_group(
        _backend(config), init_method=init_method, rank=rank, world_size=world, timeout=RENDEZVOUS_TIMEOUT
    )


def _rank_main(rank: int, world: int, init_method: str, run: Callable[..., TrainResult], kwargs: dict[str, Any]) -> None:
    """A rank other than 0 (a spawned process): the same loop on a scratch copy of the job folder (step 3)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(kwargs.pop("out_dir"))
    scratch = Path(tempfile.mkdtemp(prefix=f"train-rank{rank}-"))
    try:
        if out.exists():
            shutil.copytree(out, scratch / "job", dirs_exist_ok=True)
        _join(rank, world, init_method, kwargs["config"])
        dp = current()
        run(**kwargs, out_dir=scratch / "job", should_cancel=lambda: dp.agree(False))
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        shutil.rmtree(scratch, ignore_errors=True)


def train_data_parallel(
    *,
    run: Callable[..., TrainResult],
    processes: int,
    on_progress: Callable[[Any], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> TrainResult:
    """Run ``run(**kwargs)`` (``training.lib.trainer.train`` in one process) as ``processes`` data-parallel ranks,
    this process being rank 0 (see the module docstring). Callbacks run in this process only."""
    config: TrainConfig = kwargs["config"]
    world = world_size(config, kwargs["candidates"], processes)
    if world == 1:
        return run(**kwargs, on_progress=on_progress, should_cancel=should_cancel)
    # torch: kept out of Django start-up
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if dist.is_initialized():
        raise TrainingError("a data-parallel job cannot start inside another process group")
    init_method = f"tcp://127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")
    children = [ctx.Process(target=_rank_main, args=(rank, world, init_method, run, dict(kwargs)), daemon=True)
                for rank in range(1, world)]
    for child in children:
        child.start()
    failed = True
    try:
        _join(0, world, init_method, config)
        dp = current()
        result = run(**kwargs, on_progress=on_progress,
                       should_cancel=lambda: dp.agree(should_cancel is not None and should_cancel()))
        failed = False
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for child in children:
            child.join(timeout=None if not failed else 5)
            if child.is_alive():  # rank 0 failed: the others wait on a collective that never comes
                child.terminate()
                child.join(timeout=10)
    codes = [child.exitcode for child in children]
    if any(code != 0 for code in codes):
        raise TrainingError(f"a data-parallel rank failed (exit codes {codes})")
    return result
