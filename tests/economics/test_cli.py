from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from economics.bargaining import quadratic_bargain
from economics.cli import main
from tests.economics.test_contracts import MT_BENCH, MT_BENCH_COSTS

ROOT = Path(__file__).resolve().parents[2]
SOLUTION_KEYS = {"delta", "alpha0", "alpha1", "u_generalist", "u_specialist"}

BARGAIN = {"c0": 1.0, "c1": 4.0, "comment": "extra fields are ignored"}
CONTRACT = {
    "actions": [
        {"name": name, "cost": cost, "distribution": dist}
        for name, cost, dist in zip(["7B", "13B", "70B"], MT_BENCH_COSTS, MT_BENCH, strict=True)
    ],
    "objective": "min_pay",
    "monotone": True,
    "robust": False,
}
PRICING = {
    "demand_slope": 0.5,
    "tasks": [{"demand_scale": 1, "relative_performance": 2.0}, {"demand_scale": 1, "relative_performance": 0.5}],
}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "economics", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def write(tmp_path: Path, data: Any, name: str = "input.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def assert_one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert fragment in done.stderr


def test_bargain_prints_the_pareto_interval_and_four_solutions(tmp_path: Path) -> None:
    done = run_cli("bargain", str(write(tmp_path, BARGAIN)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"pareto", "solutions"}
    assert set(result["solutions"]) == {"joint_surplus", "nash", "egalitarian", "kalai_smorodinsky"}
    assert all(set(s) == SOLUTION_KEYS for s in result["solutions"].values())
    expected = quadratic_bargain(c0=1.0, c1=4.0)
    assert result["pareto"] == pytest.approx(list(expected.pareto))
    assert result["solutions"]["joint_surplus"]["delta"] == pytest.approx(0.8)
    assert result["solutions"]["nash"]["u_specialist"] == pytest.approx(expected.solutions["nash"].u_specialist)


def test_contract_reads_standard_input_and_prints_the_payments() -> None:
    done = run_cli("contract", "-", stdin=json.dumps(CONTRACT))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"payments", "expected_payment", "max_payment"}
    assert len(result["payments"]) == 10 and min(result["payments"]) == 0.0
    assert result["payments"][-1] == pytest.approx(10.64, abs=1e-2)
    assert result["max_payment"] == pytest.approx(10.64, abs=1e-2)


def test_pricing_prints_the_region_for_two_tasks(tmp_path: Path) -> None:
    done = run_cli("pricing", str(write(tmp_path, PRICING)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {
        "region": "tight_bound",
        "first_mover_max_price": pytest.approx(0.924196, abs=1e-6),
        "first_mover_price": pytest.approx(0.924196, abs=1e-6),
    }


def test_pricing_adds_the_tasks_won_beyond_two_tasks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    three = {**PRICING, "tasks": [*PRICING["tasks"], {"demand_scale": 2, "relative_performance": 0.1}]}
    assert main(["pricing", str(write(tmp_path, three))]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"region", "first_mover_max_price", "first_mover_price", "tasks_won"}
    assert result["region"] == "loose_bound"
    assert result["tasks_won"] == {"first_mover": [1, 2], "latecomer": [0]}


def test_invalid_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("bargain", str(write(tmp_path, "{nope"))), "invalid JSON")
    infeasible = {
        **CONTRACT,
        "actions": [CONTRACT["actions"][0], {**CONTRACT["actions"][0], "name": "copy", "cost": 1}],
    }
    assert_one_line_error(run_cli("contract", str(write(tmp_path, infeasible))), "no monotone contract")
    assert_one_line_error(run_cli("auction", "x"), "invalid choice")


def call(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, data: Any) -> tuple[int, str]:
    code = main([command, str(write(tmp_path, data))])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("command", "data", "fragment"),
    [
        ("bargain", [1, 2], "input: expected an object, got a list"),
        ("bargain", {"c1": 1}, "input: missing field 'c0'"),
        ("bargain", {"c0": True, "c1": 1}, "c0: expected a number, got true"),
        ("bargain", {"c0": 1, "c1": "2"}, "c1: expected a number, got the string '2'"),
        ("bargain", {"c0": 1, "c1": 1, "r": 0}, "r: 0.0 must be > 0"),
        ("bargain", {"c0": 10**400, "c1": 1}, "c0: 1000000000000000000"),
        ("contract", {**CONTRACT, "actions": []}, "actions: at least one action"),
        ("contract", {**CONTRACT, "actions": [{"name": "a", "cost": 0}]}, "action 'a': missing field 'distribution'"),
        ("contract", {**CONTRACT, "actions": [{"name": "", "cost": 0, "distribution": [1]}]}, "actions[0].name"),
        ("contract", {**CONTRACT, "objective": "max_pay"}, "objective: expected one of min_pay, min_budget"),
        ("contract", {**CONTRACT, "monotone": "yes"}, "monotone: expected true or false"),
        ("contract", {k: v for k, v in CONTRACT.items() if k != "robust"}, "input: missing field 'robust'"),
        (
            "contract",
            {**CONTRACT, "actions": [{"name": "a", "cost": 0, "distribution": [0.5, 0.4]}]},
            "action 'a': distribution sums to",
        ),
        ("pricing", {"tasks": []}, "input: missing field 'demand_slope'"),
        ("pricing", {"demand_slope": 0.5, "tasks": []}, "tasks: at least one task"),
        ("pricing", {"demand_slope": -1, "tasks": PRICING["tasks"]}, "demand_slope: -1.0 must be > 0"),
        (
            "pricing",
            {"demand_slope": 1, "tasks": [{"demand_scale": 1}]},
            "tasks[0]: missing field 'relative_performance'",
        ),
    ],
)
def test_every_invalid_field_is_named_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, data: Any, fragment: str
) -> None:
    code, err = call(capsys, tmp_path, command, data)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert fragment in err
