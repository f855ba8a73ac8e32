"""The delivered model's downloads: the merged zip loads with transformers alone (in a fresh process, no peft) and
gives the adapter's log-probabilities; the adapter zip loads with peft on the base; zips are named by their hash."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from training.lib import export

PROMPT = "Question: Is the kettle any good?\nAnswer: It is"


def _logprobs(model, tokenizer, text: str) -> list[float]:
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits.log_softmax(-1)
    return [float(logits[0, i, ids[0, i + 1]]) for i in range(ids.shape[1] - 1)]


@pytest.fixture(scope="module")
def trained_adapter(tiny_path, tmp_path_factory):
    """A LoRA adapter with non-zero weights (a fresh one is the identity), saved as peft saves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_path))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(str(out))
    model.eval()
    return out, model


def _unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def test_the_merged_zip_loads_with_transformers_alone_and_reproduces_the_adapters_logprobs(trained_adapter, tiny_path, tmp_path):
    adapter_dir, peft_model = trained_adapter
    folder = export.export_merged(adapter_dir=adapter_dir, base_path=tiny_path, out_dir=tmp_path / "m", card="# card")
    art = export.zip_folder(folder, dest_dir=tmp_path / "store", prefix="merged")
    assert art.path.name == f"merged-{art.sha256}.zip" and art.size == art.path.stat().st_size
    names = set(zipfile.ZipFile(art.path).namelist())
    assert {"config.json", "model.safetensors", "README.md"} <= names and not any("adapter" in n for n in names)

    from transformers import AutoTokenizer

    expected = _logprobs(peft_model, AutoTokenizer.from_pretrained(str(tiny_path)), PROMPT)
    unzipped = _unzip(art.path, tmp_path / "fresh")
    # A fresh interpreter that never imports peft: the merged weights stand alone.
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(unzipped)!r}); t = AutoTokenizer.from_pretrained({str(unzipped)!r})\n"
        f"ids = t({PROMPT!r}, return_tensors='pt')['input_ids']\n"
        "lp = m(input_ids=ids).logits.log_softmax(-1)\n"
        "print(json.dumps([float(lp[0, i, ids[0, i + 1]]) for i in range(ids.shape[1] - 1)]))\n"
        "assert 'peft' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-4


def test_the_adapter_zip_loads_with_peft_on_the_base(trained_adapter, tiny_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, peft_model = trained_adapter
    folder = export.export_adapter(adapter_dir=adapter_dir, base_path=tiny_path, out_dir=tmp_path / "a", card="# card")
    art = export.zip_folder(folder, dest_dir=tmp_path / "store", prefix="adapter")
    names = set(zipfile.ZipFile(art.path).namelist())
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= names
    unzipped = _unzip(art.path, tmp_path / "fresh")
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_path)), str(unzipped)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(unzipped))
    assert _logprobs(loaded, tokenizer, PROMPT) == pytest.approx(_logprobs(peft_model, tokenizer, PROMPT), abs=1e-6)


def test_zipping_the_same_files_twice_gives_the_same_hash_and_file(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "b.txt").write_text("b")
    (folder / "a.txt").write_text("a")
    first = export.zip_folder(folder, dest_dir=tmp_path / "store", prefix="x")
    second = export.zip_folder(folder, dest_dir=tmp_path / "store", prefix="x")
    assert first == second and len(list((tmp_path / "store").iterdir())) == 1
