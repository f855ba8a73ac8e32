from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from auctions.lab import run_lab
from auctions.mechanism import MechanismError
from auctions.schema import instance_from_json

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "auctions" / "examples" / "demo.json"
FAMILIES = ("bid_scale", "exaggeration", "mixing")


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lab")
    run_lab(instance_from_json(json.loads(DEMO.read_text())), group_id="concise", out_dir=out, points=25)
    return out


def read(path: Path) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(path.open()))
    x = np.array([float(r["parameter"]) for r in rows])
    truthful = [int(r["truthful"]) for r in rows].index(1)
    value = np.array([float(r["true_value"]) for r in rows])
    with_pay = np.array([float(r["utility_with_payments"]) for r in rows])
    without = np.array([float(r["utility_without_payments"]) for r in rows])
    return x, truthful, value, with_pay, without


def test_it_writes_a_png_and_a_csv_per_family(lab_dir: Path) -> None:
    for family in FAMILIES:
        png = lab_dir / f"{family}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
        assert (lab_dir / f"{family}.csv").exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_truthful_report_maximises_utility_with_payments(lab_dir: Path, family: str) -> None:
    _, truthful, value, with_pay, _ = read(lab_dir / f"{family}.csv")
    assert int(np.argmax(with_pay)) == truthful
    assert with_pay.max() - with_pay[truthful] <= 1e-9 * value[truthful]


@pytest.mark.parametrize("family", FAMILIES)
def test_without_payments_some_misreport_beats_the_truth(lab_dir: Path, family: str) -> None:
    _, truthful, _, _, without = read(lab_dir / f"{family}.csv")
    assert without.max() > without[truthful] * (1 + 1e-3)


def test_the_truthful_row_sits_at_the_truthful_parameter(lab_dir: Path) -> None:
    for family, truth in zip(FAMILIES, (1.0, 0.0, 0.0), strict=True):
        x, truthful, *_ = read(lab_dir / f"{family}.csv")
        assert x[truthful] == truth


def test_it_rejects_an_unknown_group(tmp_path: Path) -> None:
    with pytest.raises(MechanismError, match="'nobody'"):
        run_lab(instance_from_json(json.loads(DEMO.read_text())), group_id="nobody", out_dir=tmp_path)


def test_the_command_line_runs_the_lab(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "auctions",
            "lab",
            str(DEMO),
            "--group",
            "formal",
            "--out",
            str(tmp_path / "o"),
            "--points",
            "7",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(
        f"{f}.{ext}" for f in FAMILIES for ext in ("csv", "png")
    )


def test_the_command_line_lab_reports_an_unknown_group_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auctions", "lab", str(DEMO), "--group", "nobody", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
