from __future__ import annotations

from pathlib import Path

from django.conf import settings

from training.lib.basemodels import resolve_base


def base_path_for(name: str) -> Path:
    """The base model's folder: builds the tiny model once on first use, otherwise a local path or model id."""

    return resolve_base(name, cache_dir=Path(settings.MODEL_CACHE_DIR))


def round_artifact_dir(round_id: int) -> Path:
    path = Path(settings.ARTIFACT_DIR) / f"round-{round_id}"
    path.mkdir(parents=True, exist_ok=True)
    return path
