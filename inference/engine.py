"""The model side of the engine: one base model in memory, LoRA adapters on demand in a bounded LRU cache, and the
forward passes the batcher runs (prefill, one decoding step, scoring), each over rows that may use different
adapters.

Threading: ``register`` / ``unregister`` / ``registered`` may be called from any thread (the HTTP loop); everything
that touches the model (``acquire``, ``release``, ``forward``, ``score``) runs on the batcher's single worker thread.

Mixed-adapter batches are peft's: ``peft_model(..., adapter_names=[...])`` with one name per row and ``"__base__"``
for the base model (peft 0.21, ``LoraModel._enable_peft_forward_hooks``: the model must be in eval mode, no adapter
merged, no DoRA; rows are routed per LoRA layer, and a layer an adapter does not target is the base layer for it).
Adapters are loaded under internal names (``a1``, ``a2``, ...) so that unloading a name and registering it again
with another folder never mixes the two sets of weights.

torch / transformers / peft are imported inside the functions (the package stays importable without them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.protocol import BASE_ADAPTER, ProtocolError


@dataclass
class _Loaded:
    internal: str
    path: str
    in_use: int = 0


class Engine:
    def __init__(
        self,
        base: str,
        *,
        model_cache: Path | str = "var/models",
        device: str = "cpu",
        max_adapters: int = 8,
        threads: int | None = None,
    ) -> None:
        # torch and transformers: heavy, imported when an engine is built
        import torch
        from transformers import AutoTokenizer

        from training.lib.basemodels import load_base, resolve_base

        # One intra-op thread unless told otherwise: the tiny model's kernels are too small to split, and on a busy
        # 2-core machine spinning worker threads made each decoding step about 20x slower (measured).
        torch.set_num_threads(threads or 1)
        self.torch = torch
        self.base_id = base
        self.device = device
        self.max_adapters = max(1, max_adapters)
        path = resolve_base(base, cache_dir=Path(model_cache))
        self.base_model, self.tokenizer = load_base(path, device=device)
        # The HTTP thread encodes prompts with its own tokenizer: a Rust tokenizer shared between threads can
        # fail with "Already borrowed" when two use it at once.
        self.request_tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.base_model.requires_grad_(False)
        self.eos = int(self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad = int(pad if pad is not None else self.eos)
        cfg = self.base_model.config
        self.context_length = int(
            getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 2048
        )
        self.peft_model: Any = None
        self._active: str | None = None  # peft's active adapter, when this engine set it
        self._lock = threading.Lock()
        self._registry: dict[str, str] = {}
        self._loaded: OrderedDict[tuple[str, str], _Loaded] = OrderedDict()
        self._counter = 0
        # peft is slow to import: import it now, not on the first request for an adapter
        import peft  # noqa: F401

    # --- registry (any thread) -------------------------------------------------------------------------------

    def register(self, name: str, path: str) -> bool:
        """Register ``name`` -> ``path``; True if it is new. Same name and path again is a no-op; another path is
        refused (unload it first). The weights load on first use."""
        folder = Path(path)
        if not (folder / "adapter_config.json").is_file():
            raise ProtocolError(
                f"lora_path: no adapter_config.json in {path}", param="lora_path", code="adapter_not_found"
            )
        with self._lock:
            known = self._registry.get(name)
            if known == str(folder):
                return False
            if known is not None:
                raise ProtocolError(
                    f"lora_name: {name!r} is already registered with another path; unload it first",
                    param="lora_name",
                    code="adapter_conflict",
                )
            self._registry[name] = str(folder)
            return True

    def unregister(self, name: str) -> None:
        with self._lock:
            if name not in self._registry:
                raise ProtocolError(
                    f"lora_name: no adapter named {name!r} is registered", status=404, param="lora_name",
                    code="model_not_found",
                )
            del self._registry[name]

    def registered(self) -> list[str]:
        with self._lock:
            return sorted(self._registry)

    def in_memory(self) -> list[str]:
        with self._lock:
            by_path = {(n, p) for n, p in self._registry.items()}
            return sorted(n for (n, p) in self._loaded if (n, p) in by_path)

    def resolve(self, model: str) -> tuple[str, str] | None:
        """``(name, path)`` for a registered adapter, ``None`` for the base model; 404 for anything else."""
        if model == self.base_id:
            return None
        with self._lock:
            path = self._registry.get(model)
        if path is None:
            raise ProtocolError(
                f"The model `{model}` does not exist.", status=404, param="model", code="model_not_found"
            )
        return (model, path)

    # --- adapter cache (worker thread) -----------------------------------------------------------------------

    def acquire(self, key: tuple[str, str] | None) -> str | None:
        """The peft adapter name for ``key`` (``"__base__"`` for the base), loading it if needed; ``None`` when the
        cache is full of adapters in use (the caller retries once rows finish). Raises on a folder peft cannot load."""
        if key is None:
            return BASE_ADAPTER
        hit = self._loaded.get(key)
        if hit is not None:
            with self._lock:
                self._loaded.move_to_end(key)
            hit.in_use += 1
            return hit.internal
        victim = None
        if len(self._loaded) >= self.max_adapters:
            victim = next((k for k, v in self._loaded.items() if v.in_use == 0), None)
            if victim is None:
                return None
        self._counter += 1
        internal = f"a{self._counter}"
        # peft: kept out of module import
        from peft import PeftModel

        if self.peft_model is None:
            self.peft_model = PeftModel.from_pretrained(self.base_model, key[1], adapter_name=internal)
            self.peft_model.eval()
        else:
            self.peft_model.load_adapter(key[1], adapter_name=internal)
        self.peft_model.eval()
        self.peft_model.requires_grad_(False)
        self._active = None  # loading (and deleting, below) may change peft's active adapter
        # Load first, delete after: peft keeps at least one adapter on a PeftModel.
        if victim is not None:
            with self._lock:
                gone = self._loaded.pop(victim)
            self.peft_model.delete_adapter(gone.internal)
        with self._lock:
            self._loaded[key] = _Loaded(internal=internal, path=key[1], in_use=1)
        return internal

    def release(self, internal: str) -> None:
        if internal == BASE_ADAPTER:
            return
        for v in self._loaded.values():
            if v.internal == internal:
                v.in_use -= 1
                return

    # --- forward passes (worker thread) ----------------------------------------------------------------------

    def forward(
        self,
        input_ids: Any,
        attention_mask: Any,
        position_ids: Any,
        cache: Any,
        adapter_names: list[str],
    ) -> tuple[Any, Any]:
        """Logits of the last position ``(B, V)`` in float32 and the updated KV cache."""
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if cache is not None:
            kwargs["cache"] = cache
        model = self.base_model
        if self.peft_model is not None:
            # With adapters injected, the base model's layers are LoRA layers: route rows explicitly, except when
            # every row uses the same adapter: then it is simply the active one (peft's routing hooks are
            # registered on every module per call, which costs more than the tiny model's step itself).
            model = self.peft_model
            first = adapter_names[0]
            if first != BASE_ADAPTER and all(n == first for n in adapter_names):
                if self._active != first:
                    self.peft_model.set_adapter(first)
                    self._active = first
            else:
                kwargs["adapter_names"] = adapter_names
        with self.torch.inference_mode():
            out = model(**kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1, :].float(), new_cache

    def score(self, rows: list[tuple[list[int], int]], adapter_names: list[str]) -> list[float]:
        """Sum of log-probabilities of each row's tokens after its first ``prompt_len`` (the completion, eos
        included), under each row's adapter, in one right-padded forward pass."""
        torch = self.torch
        if not rows:
            return []
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        resp = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, (seq, plen) in enumerate(rows):
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
            resp[r, plen : len(seq)] = True
        ids, mask, resp = ids.to(self.device), mask.to(self.device), resp.to(self.device)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        model = self.base_model
        if self.peft_model is not None:
            model = self.peft_model
            kwargs["adapter_names"] = adapter_names
        with torch.inference_mode():
            logits = model(**kwargs).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return [float(x) for x in (logp * resp[:, 1:]).sum(-1).double().cpu()]
