"""The dynamic batcher: one worker thread that owns the model and decodes every admitted sequence together.

A *slot* is one sequence to generate (one choice of one request, or one draft of exact delivery), with its own
adapter, sampling parameters and ``torch.Generator``. The HTTP side submits slots and receives events through the
slot's ``emit`` callback (called on the worker thread; the server hands them to its event loop).

The worker loop, one iteration at a time:

1. Wait for work. When nothing is running, wait up to ``window_s`` more after the first arrival so that requests
   arriving together share the first forward pass.
2. Run queued jobs (scoring for exact delivery, adapter housekeeping) between decoding steps.
3. Drop cancelled slots (a client that went away): their rows leave the batch, the others continue.
4. Admit pending slots up to ``max_batch`` rows (FIFO; a slot whose adapter cannot be loaded now because the cache
   is full of adapters in use waits). Prefill them in one left-padded forward pass with one adapter name per row,
   sample each one's first token, and merge their KV cache into the running batch's (continuous insertion).
5. One decoding step: a single forward pass over every running row's last token, with peft's mixed-adapter routing
   (``adapter_names``), explicit position ids, and the running 2-D attention mask. Sample each row with its own
   temperature / top-p / generator; rows that hit eos, a stop string, ``max_tokens`` or the context length finish
   and leave the batch (continuous removal).

Cache layout: every row's real tokens are right-aligned; padding is only ever on the left (a prefill pads on the
left, a merge pads the shorter side on the left, and every step appends one column to all rows). So after rows leave,
the leading columns that no row uses any more are cut, and the cache's width stays the longest running row's length.
Invariant between steps: the cache holds every row's tokens except its last sampled one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inference.engine import Engine
from inference.protocol import ProtocolError


@dataclass(frozen=True)
class TokenInfo:
    token: str
    logprob: float  # under the served model at temperature 1 (OpenAI's and vLLM's meaning)
    offset: int  # where the token's text starts in the choice's text
    top: dict[str, float] | None = None


@dataclass(frozen=True)
class Event:
    """``delta``: new text and tokens (streamed slots); ``done``: finish_reason plus the finished sequence (its
    whole text, and its tokens when the slot was not streamed); ``error``: a ProtocolError."""

    kind: str
    text: str = ""
    tokens: tuple[TokenInfo, ...] = ()
    finish_reason: str | None = None
    token_ids: tuple[int, ...] = ()  # done: every sampled id, eos included
    proposal_logprob: float = 0.0  # done: log-probability under the sampling distribution actually used
    error: ProtocolError | None = None


@dataclass
class Slot:
    prompt_ids: list[int]
    adapter: tuple[str, str] | None  # (name, path), None for the base model
    max_new: int
    emit: Callable[[Event], None]
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0
    ignore_eos: bool = False
    stream: bool = True  # post a delta per token; otherwise only the finished text
    want_tokens: bool = True  # per-token logprobs / offsets
    cancelled: bool = False
    # worker state
    internal: str | None = None
    ids: list[int] = field(default_factory=list)
    position: int = 0
    proposal_logprob: float = 0.0
    text: str = ""
    sent: int = 0
    generator: Any = None
    infos: list[TokenInfo] = field(default_factory=list)

    def cancel(self) -> None:
        self.cancelled = True


class Batcher:
    def __init__(
        self, engine: Engine, *, max_batch: int = 32, window_s: float = 0.005, max_pending: int = 4096
    ) -> None:
        self.engine = engine
        self.torch = engine.torch
        self.max_batch = max(1, max_batch)
        self.window_s = window_s
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._pending: collections.deque[Slot] = collections.deque()
        self._jobs: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = collections.deque()
        self._active: list[Slot] = []
        self._cache: Any = None
        self._mask: Any = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inference-batcher", daemon=True)
        self.steps = 0  # decoding steps run, for the bench and the tests
        self.max_rows_seen = 0
        self.cancelled = 0  # slots dropped because their client went away
        self._outbox: list[tuple[Callable[[Event], None], Event]] = []
        # called on the worker thread with each iteration's (emit, event) pairs; None: call each emit there
        self.deliver: Callable[[list[tuple[Callable[[Event], None], Event]]], None] | None = None

    # --- any thread --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def queue_depth(self) -> int:
        return len(self._pending) + len(self._active)

    def submit(self, slots: list[Slot]) -> None:
        with self._cond:
            if not self.alive or self._stopping:
                raise ProtocolError("the engine is not running", status=503, code="engine_down")
            if len(self._pending) + len(slots) > self.max_pending:
                raise ProtocolError(
                    "the engine is overloaded; retry shortly", status=503, code="overloaded"
                )
            self._pending.extend(slots)
            self._cond.notify_all()

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn`` on the worker thread between decoding steps."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            self._jobs.append((fn, fut))
            self._cond.notify_all()
        return fut

    # --- worker thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._jobs or self._active or self._stopping):
                    self._cond.wait()
                if self._stopping:
                    break
                if not self._active and self._pending and not self._jobs:
                    deadline = time.monotonic() + self.window_s
                    while len(self._pending) < self.max_batch and not self._stopping:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                jobs = list(self._jobs)
                self._jobs.clear()
            for fn, fut in jobs:
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as exc:  # handed to the waiting request
                        fut.set_exception(exc)
            try:
                gone = [s for s in self._active if s.cancelled]
                self.cancelled += len(gone)
                self._drop(gone)
                new = self._admit()
                if new:
                    self._prefill(new)
                if self._active:
                    self._step()
            except Exception as exc:  # a failed forward pass fails its rows, never the worker
                failed = self._active
                self._active, self._cache, self._mask = [], None, None
                for s in failed:
                    self._finish_error(
                        s, ProtocolError(f"generation failed: {exc}", status=500, type="server_error")
                    )
            finally:
                self._flush()

    def _admit(self) -> list[Slot]:
        """Take pending slots (FIFO) up to the batch's room; their adapters load outside the lock, so submitting
        never waits for a disk read."""
        room = self.max_batch - len(self._active)
        if room <= 0:
            return []
        with self._cond:
            taken = [self._pending.popleft() for _ in range(min(room, len(self._pending)))]
        new: list[Slot] = []
        waiting: list[Slot] = []
        for s in taken:
            if s.cancelled:
                self.cancelled += 1
                continue
            try:
                internal = self.engine.acquire(s.adapter)
            except Exception as exc:
                name = s.adapter[0] if s.adapter else ""
                self._finish_error(
                    s, ProtocolError(f"could not load adapter {name!r}: {exc}", param="model", code="adapter_error")
                )
                continue
            if internal is None:  # every cache slot is held by running rows: wait for one to finish
                waiting.append(s)
                continue
            s.internal = internal
            new.append(s)
        if waiting:
            with self._cond:
                self._pending.extendleft(reversed(waiting))
        return new

    def _prefill(self, new: list[Slot]) -> None:
        torch = self.torch
        width = max(len(s.prompt_ids) for s in new)
        ids = torch.full((len(new), width), self.engine.pad, dtype=torch.long)
        mask = torch.zeros((len(new), width), dtype=torch.long)
        for r, s in enumerate(new):
            n = len(s.prompt_ids)
            ids[r, width - n :] = torch.tensor(s.prompt_ids, dtype=torch.long)
            mask[r, width - n :] = 1
            s.position = n
            s.generator = torch.Generator(device="cpu").manual_seed(
                s.seed if s.seed is not None else secrets.randbits(63)
            )
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.engine.device
        logits, cache = self.engine.forward(
            ids.to(dev), mask.to(dev), pos.to(dev), None, [s.internal or "__base__" for s in new]
        )
        self._merge(new, cache, mask.to(dev))
        self._sample_all(logits, new)

    def _merge(self, new: list[Slot], cache: Any, mask: Any) -> None:
        torch = self.torch
        if not self._active:
            self._active, self._cache, self._mask = list(new), cache, mask
            return
        old_w, new_w = self._mask.shape[1], mask.shape[1]
        width = max(old_w, new_w)

        def lpad(t: Any, w: int) -> Any:
            if t.shape[-2 if t.dim() == 4 else -1] == w:
                return t
            extra = w - (t.shape[-2] if t.dim() == 4 else t.shape[-1])
            if t.dim() == 4:
                z = torch.zeros((t.shape[0], t.shape[1], extra, t.shape[3]), dtype=t.dtype, device=t.device)
                return torch.cat([z, t], dim=2)
            return torch.cat([torch.zeros((t.shape[0], extra), dtype=t.dtype, device=t.device), t], dim=1)

        for old_layer, new_layer in zip(self._cache.layers, cache.layers, strict=True):
            old_layer.keys = torch.cat([lpad(old_layer.keys, width), lpad(new_layer.keys, width)], dim=0)
            old_layer.values = torch.cat([lpad(old_layer.values, width), lpad(new_layer.values, width)], dim=0)
        self._mask = torch.cat([lpad(self._mask, width), lpad(mask, width)], dim=0)
        self._active.extend(new)

    def _step(self) -> None:
        torch = self.torch
        rows = self._active
        self.max_rows_seen = max(self.max_rows_seen, len(rows))
        dev = self.engine.device
        ids = torch.tensor([[s.ids[-1]] for s in rows], dtype=torch.long, device=dev)
        pos = torch.tensor([[s.position] for s in rows], dtype=torch.long, device=dev)
        mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=self._mask.dtype, device=dev)], dim=1)
        logits, self._cache = self.engine.forward(ids, mask, pos, self._cache, [s.internal or "__base__" for s in rows])
        self._mask = mask
        for s in rows:
            s.position += 1
        self.steps += 1
        self._sample_all(logits, rows)

    def _sample_all(self, logits: Any, rows: list[Slot]) -> None:
        """Sample one token per row, vectorised over the batch: each row's temperature and top-p shape its own
        distribution, and its own generator draws the one uniform that picks its token by inverse CDF (so a row's
        draws do not depend on which other rows share the batch)."""
        torch = self.torch
        raw = torch.log_softmax(logits, dim=-1)
        shaped = logits
        no_eos = [r for r, s in enumerate(rows) if s.ignore_eos]
        if no_eos:
            shaped = logits.clone()
            shaped[no_eos, self.engine.eos] = float("-inf")
        temps = torch.tensor([s.temperature if s.temperature > 0 else 1.0 for s in rows], device=logits.device)
        dist = torch.log_softmax(shaped / temps[:, None], dim=-1)
        top_p = torch.tensor([s.top_p for s in rows], device=logits.device)
        if bool((top_p < 1.0).any()):
            probs, order = torch.sort(dist.exp(), dim=-1, descending=True)
            drop = (probs.cumsum(-1) - probs) >= top_p[:, None]  # keep the smallest prefix reaching top_p
            keep = torch.ones_like(drop).scatter(-1, order, ~drop)
            dist = torch.log_softmax(dist.masked_fill(~keep, float("-inf")), dim=-1)
        probs = dist.exp()
        cdf = probs.cumsum(-1)
        u = torch.stack([torch.rand((), generator=s.generator) for s in rows]).to(logits.device)
        sampled = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
        sampled = sampled.clamp(max=logits.shape[-1] - 1)
        greedy = torch.argmax(shaped, dim=-1)
        is_greedy = torch.tensor([s.temperature == 0 for s in rows], device=logits.device)
        tok = torch.where(is_greedy, greedy, sampled)
        prop = torch.where(is_greedy, torch.zeros_like(u), dist.gather(-1, tok[:, None]).squeeze(-1))
        lp = raw.gather(-1, tok[:, None]).squeeze(-1)
        done: list[Slot] = []
        for r, (s, t, q, x) in enumerate(zip(rows, tok.tolist(), prop.tolist(), lp.tolist(), strict=True)):
            if s.cancelled:
                self.cancelled += 1
                done.append(s)
                continue
            s.proposal_logprob += q
            s.ids.append(t)
            if self._advance(s, t, x, raw[r]):
                done.append(s)
        if done:
            self._drop(done)

    def _advance(self, s: Slot, tok: int, logprob: float, lp_row: Any) -> bool:
        """Record one sampled token; post the text it makes safe to show (streamed slots); True when finished.

        The text is decoded as it grows only when something needs it on the way (a stream, stop strings,
        per-token logprobs); otherwise once, at the end."""
        eng = self.engine
        incremental = s.stream or bool(s.stop) or s.want_tokens
        offset = len(s.text)
        finish: str | None = None
        if tok == eng.eos:
            finish = "stop"
        elif incremental:
            full = eng.tokenizer.decode(s.ids, skip_special_tokens=True)
            cut = min((i for i in (full.find(x) for x in s.stop) if i >= 0), default=-1)
            if cut >= 0:
                full = full[:cut]
                finish = "stop"
            s.text = full
        if finish is None and (len(s.ids) >= s.max_new or s.position + 1 >= eng.context_length):
            finish = "length"
        if finish is not None and not incremental:
            s.text = eng.tokenizer.decode(s.ids, skip_special_tokens=True)
        info = None
        if s.want_tokens:
            top = None
            if s.top_logprobs:
                vals, idx = self.torch.topk(lp_row, s.top_logprobs)
                top = {eng.tokenizer.decode([int(i)]): float(v) for v, i in zip(vals, idx, strict=True)}
            info = TokenInfo(token=eng.tokenizer.decode([tok]), logprob=logprob, offset=min(offset, len(s.text)), top=top)
        if s.stream:
            if finish is None:
                safe = len(s.text)
                if s.text.endswith("\ufffd"):
                    safe -= 1  # an incomplete multi-byte character: wait for the next token
                for x in s.stop:  # hold back a tail that may be the start of a stop string
                    for k in range(min(len(x) - 1, safe), 0, -1):
                        if s.text[:safe].endswith(x[:k]):
                            safe -= k
                            break
            else:
                safe = len(s.text)
            delta = s.text[s.sent : safe] if safe > s.sent else ""
            s.sent = max(s.sent, safe)
            self._post(s, Event(kind="delta", text=delta, tokens=(info,) if info else ()))
        elif info is not None:
            s.infos.append(info)
        if finish is not None:
            self._post(
                s,
                Event(
                    kind="done",
                    text=s.text,
                    tokens=tuple(s.infos),
                    finish_reason=finish,
                    token_ids=tuple(s.ids),
                    proposal_logprob=s.proposal_logprob,
                ),
            )
            return True
        return False

    def _post(self, s: Slot, ev: Event) -> None:
        self._outbox.append((s.emit, ev))

    def _flush(self) -> None:
        """Hand this iteration's events over in one call (one wake-up of the server's event loop per step)."""
        if not self._outbox:
            return
        items, self._outbox = self._outbox, []
        if self.deliver is not None:
            self.deliver(items)
        else:
            for emit, ev in items:
                emit(ev)

    def _drop(self, gone: list[Slot]) -> None:
        if not gone:
            return
        ids = {id(s) for s in gone}
        keep = [i for i, s in enumerate(self._active) if id(s) not in ids]
        for s in gone:
            if s.internal is not None:
                self.engine.release(s.internal)
                s.internal = None
        if not keep:
            self._active, self._cache, self._mask = [], None, None
            return
        torch = self.torch
        idx = torch.tensor(keep, dtype=torch.long, device=self._mask.device)
        mask = self._mask[idx]
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if used.numel() else 0
        for layer in self._cache.layers:
            layer.keys = layer.keys[idx, :, first:, :]
            layer.values = layer.values[idx, :, first:, :]
        self._mask = mask[:, first:]
        self._active = [self._active[i] for i in keep]

    def _finish_error(self, s: Slot, error: ProtocolError) -> None:
        if s.internal is not None:
            self.engine.release(s.internal)
            s.internal = None
        self._post(s, Event(kind="error", error=error))
