from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auctions.ads.cli import segment_json, summary_json, token_json
from auctions.ads.segment import segment_auction
from auctions.ads.summary import summary_auction
from auctions.ads.token import token_auction

ROOT = Path(__file__).resolve().parents[3]

SEGMENT: dict[str, Any] = {
    "ads": [
        {"id": "a", "bid": 3, "relevance": 0.36},
        {"id": "b", "bid": 3, "relevance": 0.87},
        {"id": "c", "bid": 2, "relevance": 0.31},
        {"id": "d", "bid": 2, "relevance": 0.26},
    ]
}
TOKEN: dict[str, Any] = {
    "agents": [
        {"id": "x", "bid": 1, "distribution": [0.8, 0.2]},
        {"id": "y", "bid": 2, "distribution": [1, 0]},
        {"id": "z", "bid": 2, "distribution": [0, 1]},
    ],
    "aggregation": "linear",
}
SUMMARY: dict[str, Any] = {
    "ads": [
        {"id": "a", "bid": 3, "ctr": 0.1},
        {"id": "b", "bid": 2, "ctr": 0.3},
        {"id": "c", "bid": 2.5, "ctr": 0.2},
        {"id": "d", "bid": 1, "ctr": 0.25},
    ],
    "beta": 0.5,
    "slots": 3,
}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auctions", *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def write(tmp_path: Path, data: Any, name: str = "input.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def changed(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the dotted ``path`` set to ``value`` (KeyError: deleted)."""
    out = json.loads(json.dumps(data))
    target: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return out


def test_segment_prints_probabilities_payments_and_metrics(tmp_path: Path) -> None:
    done = run_cli("segment", str(write(tmp_path, SEGMENT)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"ads", "metrics"}
    assert list(result["ads"]) == ["a", "b", "c", "d"]
    for ad in result["ads"].values():
        assert set(ad) == {"probability", "expected_payment"}
    assert set(result["metrics"]) == {"social_welfare", "revenue", "relevance"}
    assert result["metrics"]["social_welfare"] == pytest.approx(0.684840, abs=1e-6)
    assert result["metrics"]["revenue"] == pytest.approx(0.379302, abs=1e-6)
    assert result["metrics"]["relevance"] == pytest.approx(0.710811, abs=1e-6)
    expected = segment_json(segment_auction(ids=list("abcd"), bids=[3, 3, 2, 2], relevance=[0.36, 0.87, 0.31, 0.26]))
    assert result == json.loads(json.dumps(expected))


def test_token_prints_the_aggregate_and_each_agents_terms(tmp_path: Path) -> None:
    done = run_cli("token", str(write(tmp_path, TOKEN)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"aggregate", "agents"}
    assert result["aggregate"] == pytest.approx([0.56, 0.44])
    assert list(result["agents"]) == ["x", "y", "z"]
    assert {k for a in result["agents"].values() for k in a} == {"selection_probability", "expected_payment"}
    expected = token_json(token_auction(ids=list("xyz"), bids=[1, 2, 2], distributions=[[0.8, 0.2], [1, 0], [0, 1]]))
    assert result == json.loads(json.dumps(expected))


def test_token_log_linear_charges_nothing(tmp_path: Path) -> None:
    data = changed(TOKEN, "aggregation", "log_linear")
    data["agents"][1]["distribution"] = [0.6, 0.4]
    data["agents"][2]["distribution"] = [0.3, 0.7]
    done = run_cli("token", str(write(tmp_path, data)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert all(a["expected_payment"] == 0 for a in result["agents"].values())
    assert sum(result["aggregate"]) == pytest.approx(1.0)


def test_summary_prints_prominence_clicks_and_prices(tmp_path: Path) -> None:
    done = run_cli("summary", str(write(tmp_path, SUMMARY)))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"ads"}
    assert list(result["ads"]) == ["a", "b", "c", "d"]
    for ad in result["ads"].values():
        assert set(ad) == {"prominence", "effective_ctr", "expected_payment", "cost_per_click"}
    expected = summary_json(
        summary_auction(ids=list("abcd"), bids=[3, 2, 2.5, 1], ctrs=[0.1, 0.3, 0.2, 0.25], beta=0.5, slots=3)
    )
    assert result == json.loads(json.dumps(expected))


def test_summary_decay_defaults_to_0_9(tmp_path: Path) -> None:
    plain = json.loads(run_cli("summary", str(write(tmp_path, SUMMARY, "a.json"))).stdout)
    explicit = json.loads(run_cli("summary", str(write(tmp_path, changed(SUMMARY, "decay", 0.9), "b.json"))).stdout)
    other = json.loads(run_cli("summary", str(write(tmp_path, changed(SUMMARY, "decay", 0.5), "c.json"))).stdout)
    assert plain == explicit != other


@pytest.mark.parametrize(("command", "data"), [("segment", SEGMENT), ("token", TOKEN), ("summary", SUMMARY)])
def test_extra_fields_are_ignored_and_a_dash_reads_stdin(tmp_path: Path, command: str, data: dict[str, Any]) -> None:
    noisy = json.loads(json.dumps(data))
    noisy["comment"] = "from the staff page"
    entries = noisy["agents" if command == "token" else "ads"]
    entries[0]["name"] = "Acme"
    plain = run_cli(command, str(write(tmp_path, data)))
    extra = run_cli(command, "-", stdin=json.dumps(noisy))
    assert extra.returncode == 0, extra.stderr
    assert json.loads(extra.stdout) == json.loads(plain.stdout)


INVALID = [
    ("segment", "not json", "{", "invalid JSON"),
    ("segment", "not an object", "[1]", "input: expected an object"),
    ("segment", "no ads", "{}", "input: missing field 'ads'"),
    ("segment", "empty ads", {"ads": []}, "ads: at least one ad is required"),
    ("segment", "duplicate id", changed(SEGMENT, "ads.2.id", "a"), "ads[2].id: 'a' appears twice"),
    (
        "segment",
        "negative bid",
        changed(SEGMENT, "ads.2.bid", -1),
        "ads[2].bid: must be a finite number >= 0, got -1.0",
    ),
    ("segment", "string bid", changed(SEGMENT, "ads.1.bid", "3"), "ads[1].bid: expected a number, got the string '3'"),
    (
        "segment",
        "boolean relevance",
        changed(SEGMENT, "ads.0.relevance", True),
        "ads[0].relevance: expected a number, got true",
    ),
    (
        "segment",
        "missing relevance",
        changed(SEGMENT, "ads.3.relevance", KeyError),
        "ads[3]: missing field 'relevance'",
    ),
    ("segment", "numeric id", changed(SEGMENT, "ads.0.id", 7), "ads[0].id: expected a non-empty string, got 7"),
    ("segment", "ads not a list", {"ads": {"a": 1}}, "ads: expected a list, got an object"),
    (
        "segment",
        "nan bid",
        '{"ads": [{"id": "a", "bid": NaN, "relevance": 1}]}',
        "ads[0].bid: nan is not a finite number",
    ),
    (
        "token",
        "sum not one",
        changed(TOKEN, "agents.0.distribution", [0.5, 0.4]),
        "agents[0].distribution: sums to 0.9",
    ),
    (
        "token",
        "mismatched lengths",
        changed(TOKEN, "agents.2.distribution", [0.5, 0.25, 0.25]),
        "agents[2].distribution: 3 probabilities, expected 2",
    ),
    (
        "token",
        "negative probability",
        changed(TOKEN, "agents.1.distribution", [1.5, -0.5]),
        "agents[1].distribution[1]: must be a finite number >= 0",
    ),
    (
        "token",
        "string probability",
        changed(TOKEN, "agents.1.distribution", ["1", 0]),
        "agents[1].distribution[0]: expected a number",
    ),
    (
        "token",
        "distribution not a list",
        changed(TOKEN, "agents.1.distribution", 1),
        "agents[1].distribution: expected a list",
    ),
    ("token", "negative bid", changed(TOKEN, "agents.0.bid", -0.5), "agents[0].bid: must be a finite number >= 0"),
    ("token", "duplicate id", changed(TOKEN, "agents.1.id", "x"), "agents[1].id: 'x' appears twice"),
    (
        "token",
        "unknown aggregation",
        changed(TOKEN, "aggregation", "max"),
        "aggregation: expected 'linear' or 'log_linear'",
    ),
    ("token", "missing aggregation", changed(TOKEN, "aggregation", KeyError), "input: missing field 'aggregation'"),
    ("token", "numeric aggregation", changed(TOKEN, "aggregation", 1), "aggregation: expected a string"),
    (
        "token",
        "disjoint log-linear",
        changed(TOKEN, "aggregation", "log_linear"),
        "log-linear aggregate is 0 on every token",
    ),
    ("summary", "beta one", changed(SUMMARY, "beta", 1.0), "beta: must be a number in [0, 1), got 1.0"),
    ("summary", "missing beta", changed(SUMMARY, "beta", KeyError), "input: missing field 'beta'"),
    ("summary", "float slots", changed(SUMMARY, "slots", 2.5), "slots: expected an integer, got 2.5"),
    ("summary", "zero slots", changed(SUMMARY, "slots", 0), "slots: must be an integer >= 1, got 0"),
    (
        "summary",
        "ctr above one",
        changed(SUMMARY, "ads.1.ctr", 1.2),
        "ads[1].ctr: must be a finite number in [0, 1], got 1.2",
    ),
    ("summary", "string decay", changed(SUMMARY, "decay", "0.9"), "decay: expected a number, got the string '0.9'"),
    ("summary", "duplicate id", changed(SUMMARY, "ads.3.id", "b"), "ads[3].id: 'b' appears twice"),
    (
        "summary",
        "negative bid",
        changed(SUMMARY, "ads.0.bid", -3),
        "ads[0].bid: must be a finite number >= 0, got -3.0",
    ),
]


@pytest.mark.parametrize(("command", "case", "text", "fragment"), INVALID, ids=[f"{c[0]}-{c[1]}" for c in INVALID])
def test_it_rejects_invalid_input_with_status_2_and_one_line(
    tmp_path: Path, command: str, case: str, text: Any, fragment: str
) -> None:
    done = run_cli(command, str(write(tmp_path, text)))
    assert done.returncode == 2, (case, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert fragment in lines[0]
    assert lines[0].startswith("error: ")


def test_a_missing_file_and_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args in (
        ("segment", "/nonexistent/ads.json"),
        ("token",),
        ("ads-lab", "auction", "x.json", "--ad", "a", "--out", "o"),
    ):
        done = run_cli(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_ads_lab_writes_and_prints_its_files(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    done = run_cli("ads-lab", "summary", str(write(tmp_path, SUMMARY)), "--ad", "b", "--out", str(out), "--points", "9")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split()
    names = ["summary_bid_sweep.png", "summary_bid_sweep.csv", "summary_word_budget.png", "summary_word_budget.csv"]
    assert printed == [str(out / name) for name in names]
    assert all(Path(p).stat().st_size > 0 for p in printed)


def test_ads_lab_rejects_an_unknown_ad_in_one_line(tmp_path: Path) -> None:
    done = run_cli("ads-lab", "segment", str(write(tmp_path, SEGMENT)), "--ad", "zz", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: ads-lab --ad: ads: no entry with id 'zz'"]


def test_solve_and_lab_still_answer_as_before() -> None:
    done = run_cli("solve", str(ROOT / "auctions" / "examples" / "demo.json"))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"policy", "groups", "welfare", "kl_to_base", "revenue"}
