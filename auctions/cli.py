"""Command line: ``python -m auctions solve FILE`` and ``python -m auctions lab FILE --group ID --out DIR``.

FILE is a schema-v1 instance (see auctions.schema); ``-`` reads standard input. Invalid input exits with status 2
and one line on standard error; no traceback ever reaches the user. The advertising subcommands (``segment``,
``token``, ``summary``, ``ads-lab``) are registered by auctions.ads.cli, which documents their JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from auctions.ads.cli import register as register_ads
from auctions.commandline import OneLineParser, fail, read_json
from auctions.mechanism import Instance, MechanismError, solve
from auctions.schema import instance_from_json, result_to_json


def _read_json(path: str) -> Any:
    return read_json(path, error=MechanismError)


def _load(path: str) -> Instance:
    return instance_from_json(_read_json(path))


def _solve(args: argparse.Namespace) -> int:
    instance = _load(args.file)
    result = result_to_json(instance, solve(instance))
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from auctions.lab import run_lab  # matplotlib is imported only here

    instance = _load(args.file)
    written = run_lab(instance, group_id=args.group, out_dir=Path(args.out), other_id=args.other, points=args.points)
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m auctions", description="The fine-tuning auction (schema v1).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    solve_p = sub.add_parser("solve", help="solve an instance and print the result as JSON")
    solve_p.add_argument("file", help="instance JSON file, or - for standard input")
    solve_p.set_defaults(run=_solve)
    lab_p = sub.add_parser("lab", help="sweep one group's misreports and plot its utility")
    lab_p.add_argument("file", help="instance JSON file, or - for standard input")
    lab_p.add_argument("--group", required=True, help="id of the group whose misreports are swept")
    lab_p.add_argument("--out", required=True, help="directory for the PNG and CSV files")
    lab_p.add_argument("--other", default=None, help="group to mix rewards with (default: the highest other bid)")
    lab_p.add_argument("--points", type=int, default=41, help="points per sweep (default 41)")
    lab_p.set_defaults(run=_lab)
    register_ads(sub, read_json=_read_json)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except MechanismError as exc:
        return fail(str(exc))
    except MemoryError:
        return fail("the instance is too large for this machine's memory")
    except OSError as exc:
        return fail(f"cannot write output: {exc.strerror or exc}")
    except Exception as exc:  # a bug, not bad input: still one line, but a distinct exit status
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
