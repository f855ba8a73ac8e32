"""Command line: ``python -m economics bargain|contract|pricing FILE`` (``-`` reads standard input).

bargain, the quadratic fine-tuning game::

    in:  {"c0": float, "c1": float, "r": float (optional, default 1)}
    out: {"pareto": [lo, hi],
          "solutions": {"joint_surplus" | "nash" | "egalitarian" | "kalai_smorodinsky":
                        {"delta", "alpha0", "alpha1", "u_generalist", "u_specialist"}}}

contract, the cheapest contract for the last action::

    in:  {"actions": [{"name": str, "cost": float, "distribution": [float, ...]}, ...],
          "objective": "min_pay" | "min_budget", "monotone": bool, "robust": bool}
    out: {"payments": [float, ...], "expected_payment": float, "max_payment": float}

pricing, the first mover's price against a latecomer::

    in:  {"demand_slope": float, "tasks": [{"demand_scale": float, "relative_performance": float}, ...]}
    out: {"region": "latecomer_takes_all" | "tight_bound" | "loose_bound",
          "first_mover_max_price": float | null, "first_mover_price": float | null}
         and, unless there are exactly two tasks,
         "tasks_won": {"first_mover": [index, ...], "latecomer": [index, ...]} (indices from 0)

Fields not listed are ignored. Invalid input exits with status 2 and one line on standard error; no traceback
ever reaches the user.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from auctions.commandline import OneLineParser, fail, read_json
from auctions.schema import describe
from economics.errors import EconomicsError

_PRINTED_SOLUTIONS = ("joint_surplus", "nash", "egalitarian", "kalai_smorodinsky")


def _read_json(path: str) -> Any:
    return read_json(path, error=EconomicsError)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EconomicsError(f"{where}: expected an object, got {describe(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise EconomicsError(f"{where}: expected a list, got {describe(value)}")
    return value


def _field(obj: dict[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise EconomicsError(f"{where}: missing field {name!r}")
    return obj[name]


def _number(value: Any, where: str) -> float:
    # bool is an int subclass in Python, but true/false is never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EconomicsError(f"{where}: expected a number, got {describe(value)}")
    try:
        result = float(value)
    except OverflowError:  # an integer literal beyond float range
        raise EconomicsError(f"{where}: {str(value)[:20]}... is not a finite number") from None
    if not math.isfinite(result):
        raise EconomicsError(f"{where}: {value!r} is not a finite number")
    return result


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise EconomicsError(f"{where}: expected true or false, got {describe(value)}")
    return value


def _emit(result: dict[str, Any]) -> int:
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


# Each command imports only its own model: scipy.optimize and scipy.special take most of a run's time.


def _bargain(args: argparse.Namespace) -> int:
    from economics.bargaining import quadratic_bargain

    root = _object(_read_json(args.file), "input")
    c0 = _number(_field(root, "c0", "input"), "c0")
    c1 = _number(_field(root, "c1", "input"), "c1")
    r = _number(root["r"], "r") if "r" in root else 1.0
    result = quadratic_bargain(c0=c0, c1=c1, r=r)
    return _emit(
        {
            "pareto": [result.pareto[0], result.pareto[1]],
            "solutions": {
                name: {
                    "delta": o.delta,
                    "alpha0": o.alpha0,
                    "alpha1": o.alpha1,
                    "u_generalist": o.u_generalist,
                    "u_specialist": o.u_specialist,
                }
                for name in _PRINTED_SOLUTIONS
                for o in (result.solutions[name],)
            },
        }
    )


def _contract(args: argparse.Namespace) -> int:
    from economics.contracts import OBJECTIVES, design_contract, make_actions

    root = _object(_read_json(args.file), "input")
    raw = _list(_field(root, "actions", "input"), "actions")
    if not raw:
        raise EconomicsError("actions: at least one action is required")
    names, costs, dists = [], [], []
    for i, item in enumerate(raw):
        action = _object(item, f"actions[{i}]")
        name = _field(action, "name", f"actions[{i}]")
        if not isinstance(name, str) or not name:
            raise EconomicsError(f"actions[{i}].name: expected a non-empty string, got {describe(name)}")
        names.append(name)
        costs.append(_number(_field(action, "cost", f"action {name!r}"), f"action {name!r}: cost"))
        dist = _list(_field(action, "distribution", f"action {name!r}"), f"action {name!r}: distribution")
        dists.append([_number(p, f"action {name!r}: distribution[{j}]") for j, p in enumerate(dist)])
    objective = _field(root, "objective", "input")
    if objective not in OBJECTIVES:
        raise EconomicsError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {describe(objective)}")
    monotone = _bool(_field(root, "monotone", "input"), "monotone")
    robust = _bool(_field(root, "robust", "input"), "robust")
    contract = design_contract(make_actions(names, costs, dists), objective=objective, monotone=monotone, robust=robust)
    return _emit(
        {
            "payments": [float(x) for x in contract.payments],
            "expected_payment": contract.expected_payment,
            "max_payment": contract.max_payment,
        }
    )


def _pricing(args: argparse.Namespace) -> int:
    from economics.pricing import first_mover_market, make_tasks, two_task_market

    root = _object(_read_json(args.file), "input")
    slope = _number(_field(root, "demand_slope", "input"), "demand_slope")
    raw = _list(_field(root, "tasks", "input"), "tasks")
    if not raw:
        raise EconomicsError("tasks: at least one task is required")
    scales, kappas = [], []
    for t, item in enumerate(raw):
        task = _object(item, f"tasks[{t}]")
        scales.append(_number(_field(task, "demand_scale", f"tasks[{t}]"), f"tasks[{t}].demand_scale"))
        kappas.append(_number(_field(task, "relative_performance", f"tasks[{t}]"), f"tasks[{t}].relative_performance"))
    tasks = make_tasks(scales, kappas)
    two = len(tasks) == 2
    market = two_task_market(tasks, demand_slope=slope) if two else first_mover_market(tasks, demand_slope=slope)
    result: dict[str, Any] = {
        "region": market.region,
        "first_mover_max_price": market.max_price,
        "first_mover_price": market.price,
    }
    if not two:
        result["tasks_won"] = {"first_mover": list(market.first_mover_tasks), "latecomer": list(market.latecomer_tasks)}
    return _emit(result)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m economics", description="Economic models of the fine-tuning market.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, run, text in (
        ("bargain", _bargain, "bargaining solutions of the quadratic fine-tuning game"),
        ("contract", _contract, "the cheapest contract that makes the last action a best response"),
        ("pricing", _pricing, "the first mover's price against a latecomer"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("file", help="input JSON file, or - for standard input")
        cmd.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except EconomicsError as exc:
        return fail(str(exc))
    except MemoryError:
        return fail("the input is too large for this machine's memory")
    except OSError as exc:
        return fail(f"cannot write output: {exc.strerror or exc}")
    except Exception as exc:  # a bug, not bad input: still one line, but a distinct exit status
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
