from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auctions.mechanism import solve
from auctions.schema import instance_from_json, instance_to_json, result_to_json

ROOT = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "kl_weight": 0.5,
    "groups": [{"id": "alice", "bid": 2.0}, {"id": "bob", "bid": 1.0}],
    "prompts": [
        {"base_logweights": [0.0, 0.0, 0.0], "rewards": {"alice": [1.0, 0.0, 0.5], "bob": [0.0, 1.0, 0.2]}},
        {"weight": 3, "base_logweights": [0.1, -1.0], "rewards": {"alice": [0.3, 0.9], "bob": [1, 0]}},
    ],
}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auctions", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def write(tmp_path: Path, data: Any, name: str = "instance.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_it_prints_the_schema_v1_result(tmp_path: Path) -> None:
    done = run_cli("solve", str(write(tmp_path, VALID)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"policy", "groups", "welfare", "kl_to_base", "revenue"}
    assert list(result["groups"]) == ["alice", "bob"]
    for group in result["groups"].values():
        assert set(group) == {"payment", "value", "utility", "expected_reward"}
        assert 0 <= group["payment"] <= group["value"]
        assert group["utility"] == pytest.approx(group["value"] - group["payment"])
    assert [len(q) for q in result["policy"]] == [3, 2]
    assert result["revenue"] == pytest.approx(sum(g["payment"] for g in result["groups"].values()))
    expected = result_to_json(instance_from_json(VALID), solve(instance_from_json(VALID)))
    assert result == json.loads(json.dumps(expected))


def test_it_weights_prompts_by_their_normalised_weight() -> None:
    inst = instance_from_json(VALID)
    np.testing.assert_allclose(inst.prompt_weights, [0.25, 0.75])


def test_it_reads_standard_input_with_a_dash() -> None:
    done = run_cli("solve", "-", stdin=json.dumps(VALID))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["groups"]["alice"]["payment"] > 0


def test_it_ignores_extra_fields(tmp_path: Path) -> None:
    noisy = json.loads(json.dumps(VALID))
    noisy["schema"] = "v1"
    noisy["groups"][0]["name"] = "Alice's group"
    noisy["prompts"][0]["text"] = "Write a haiku"
    plain = json.loads(run_cli("solve", str(write(tmp_path, VALID, "a.json"))).stdout)
    extra = run_cli("solve", str(write(tmp_path, noisy, "b.json")))
    assert extra.returncode == 0, extra.stderr
    assert json.loads(extra.stdout) == plain


def test_the_json_round_trip_keeps_the_instance() -> None:
    inst = instance_from_json(VALID)
    again = instance_from_json(instance_to_json(inst))
    assert result_to_json(inst, solve(inst)) == result_to_json(again, solve(again))


def broken(path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(VALID))
    target = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


INVALID = [
    ("not json", "{", "invalid JSON"),
    ("not an object", "[1, 2]", "instance: expected an object"),
    ("no kl weight", broken("kl_weight", KeyError), "missing field 'kl_weight'"),
    ("zero kl weight", broken("kl_weight", 0), "kl_weight"),
    ("string kl weight", broken("kl_weight", "1"), "kl_weight: expected a number"),
    ("nan kl weight", '{"kl_weight": NaN, "groups": [], "prompts": []}', "kl_weight"),
    ("negative bid", broken("groups.1.bid", -1), "group 'bob': bid"),
    ("boolean bid", broken("groups.1.bid", True), "group 'bob': bid: expected a number"),
    ("missing id", broken("groups.0.id", KeyError), "groups[0]: missing field 'id'"),
    ("duplicate id", broken("groups.1.id", "alice"), "group 'alice': the id appears twice"),
    ("no prompts", broken("prompts", []), "at least one prompt"),
    ("no candidates", broken("prompts.1.base_logweights", []), "prompt 1: at least one candidate"),
    (
        "infinite base",
        '{"kl_weight": 1, "groups": [], "prompts": [{"base_logweights": [Infinity], "rewards": {}}]}',
        "candidate 0",
    ),
    ("reward above 1", broken("prompts.1.rewards.bob.1", 1.5), "group 'bob', prompt 1, candidate 1: reward 1.5"),
    ("reward below 0", broken("prompts.0.rewards.alice.2", -0.1), "group 'alice', prompt 0, candidate 2"),
    (
        "null reward",
        broken("prompts.0.rewards.alice.0", None),
        "group 'alice', prompt 0, candidate 0: reward: expected a number, got null",
    ),
    ("missing group rewards", broken("prompts.1.rewards.bob", KeyError), "group 'bob', prompt 1: no rewards"),
    ("short rewards", broken("prompts.0.rewards.bob", [0.1, 0.2]), "group 'bob', prompt 0: 2 rewards for 3 candidates"),
    ("unknown group", broken("prompts.0.rewards.carol", [0, 0, 0]), "group 'carol', prompt 0"),
    ("negative weight", broken("prompts.0.weight", -1), "prompt 0: weight"),
    ("overflowing rate", broken("kl_weight", 1e-320), "overflows"),
    (
        "huge integer bid",
        '{"kl_weight": 1, "groups": [{"id": "a", "bid": 1' + "0" * 400 + '}], "prompts": []}',
        "group 'a': bid",
    ),
    ("non-string id", broken("groups.0.id", 7), "groups[0].id: expected a non-empty string"),
    ("rewards not an object", broken("prompts.0.rewards", [1, 2]), "prompt 0: rewards: expected an object"),
]


@pytest.mark.parametrize(("case", "text", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_it_rejects_invalid_input_with_status_2_and_one_line(
    tmp_path: Path, case: str, text: Any, fragment: str
) -> None:
    done = run_cli("solve", str(write(tmp_path, text)))
    assert done.returncode == 2, (case, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert fragment in lines[0]


def test_it_reports_a_missing_file_in_one_line() -> None:
    done = run_cli("solve", "/nonexistent/instance.json")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "cannot read" in done.stderr


def test_it_reports_usage_errors_in_one_line() -> None:
    done = run_cli("solve")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
