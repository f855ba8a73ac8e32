"""The delivered model's two downloads: the peft adapter and the merged weights, each a zip named by its SHA-256.

    adapter zip  adapter_config.json, adapter_model.safetensors, the tokenizer files, README.md (the model card)
    merged zip   config.json, model.safetensors (merge_and_unload), generation config, the tokenizer files, README.md:
                 loadable with ``AutoModelForCausalLM.from_pretrained`` alone, no peft needed

Zips are written deterministically (sorted names, fixed timestamps), so the same files give the same hash, and moved
into place atomically, so a reader never sees half a file and two workers publishing at once agree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Artefact:
    path: Path
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def zip_folder(folder: Path, *, dest_dir: Path, prefix: str) -> Artefact:
    """Zip ``folder``'s files (flat, sorted) into ``dest_dir/<prefix>-<sha256>.zip``; an existing one is reused."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{prefix}-", suffix=".zip", dir=dest_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                info = zipfile.ZipInfo(path.name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        digest = file_sha256(tmp)
        target = dest_dir / f"{prefix}-{digest}.zip"
        if target.exists():
            tmp.unlink()
        else:
            os.replace(tmp, target)
        return Artefact(path=target, size=target.stat().st_size, sha256=digest)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_adapter(*, adapter_dir: Path, base_path: Path, out_dir: Path, card: str) -> Path:
    """The adapter folder for download: peft's two files, the base's tokenizer and the card."""
    # transformers imports torch: kept out of Django start-up
    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copyfile(Path(adapter_dir) / name, out_dir / name)
    AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(str(out_dir))
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    return out_dir


def export_merged(*, adapter_dir: Path, base_path: Path, out_dir: Path, card: str) -> Path:
    """The base with the adapter merged into its weights (``merge_and_unload``), saved as safetensors."""
    # peft and transformers import torch: kept out of Django start-up
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    base = AutoModelForCausalLM.from_pretrained(str(base_path))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.eval()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_path)).save_pretrained(str(out_dir))
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    return out_dir


def adapter_weights_sha256(adapter_dir: Path) -> str:
    return file_sha256(Path(adapter_dir) / "adapter_model.safetensors")
