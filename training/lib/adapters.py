"""LoRA adapters: the peft config a job trains, loading an adapter onto its base model, and switching it off.

The only modules that import peft are this one and ``config`` (for peft's default target modules); the only one
that imports trl is ``grpo``. Both stay inside functions so Django start-up never loads torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.lib.basemodels import load_base


def lora_config(resolved: dict[str, Any]) -> Any:
    """peft's ``LoraConfig`` from a job's resolved hyperparameters (``TrainConfig.resolved``)."""
    # peft imports torch: kept out of Django start-up
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


def with_new_adapter(base: Any, resolved: dict[str, Any]) -> Any:
    """The base model wrapped in a freshly initialised LoRA adapter (initialisation draws from torch's global RNG)."""
    # peft imports torch: kept out of Django start-up
    from peft import get_peft_model

    return get_peft_model(base, lora_config(resolved))


def load_adapter(base_path: Path | str, adapter_dir: Path | str, device: str = "cpu") -> tuple[Any, Any]:
    """``(peft model, tokenizer)``: the base model with the adapter on top, in eval mode.
    ``with model.disable_adapter():`` gives the base model back without reloading."""
    # peft imports torch: kept out of Django start-up
    from peft import PeftModel

    base, tokenizer = load_base(base_path, device=device)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).to(device)
    model.eval()
    return model, tokenizer


def load_adapter_weights(model: Any, adapter_dir: Path) -> None:
    """Overwrite a peft model's adapter weights with those saved in ``adapter_dir`` (a checkpoint's adapter)."""
    # peft and safetensors.torch import torch: kept out of Django start-up
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(adapter_dir / "adapter_model.safetensors")))


class adapter_disabled:
    """``with adapter_disabled(model):`` runs the base model under a peft model (a no-op for a plain model)."""

    def __init__(self, model: Any) -> None:
        self.cm = model.disable_adapter() if hasattr(model, "disable_adapter") else None

    def __enter__(self) -> None:
        if self.cm is not None:
            self.cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.cm is not None:
            self.cm.__exit__(*exc)
