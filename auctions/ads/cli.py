"""Command line of the advertising mechanisms, registered on ``python -m auctions`` by :func:`register`.

    python -m auctions segment FILE
        {"ads": [{"id": str, "bid": float, "relevance": float}, ...]}
        -> {"ads": {"<id>": {"probability": float, "expected_payment": float}},
            "metrics": {"social_welfare": float, "revenue": float, "relevance": float}}
    python -m auctions token FILE
        {"agents": [{"id": str, "bid": float, "distribution": [float, ...]}, ...], "aggregation": "linear" | "log_linear"}
        -> {"aggregate": [float, ...], "agents": {"<id>": {"selection_probability": float, "expected_payment": float}}}
    python -m auctions summary FILE
        {"ads": [{"id": str, "bid": float, "ctr": float}, ...], "beta": float, "slots": int, "decay": float (default 0.9)}
        -> {"ads": {"<id>": {"prominence": float, "effective_ctr": float, "expected_payment": float,
                             "cost_per_click": float}}}
    python -m auctions ads-lab {segment|token|summary} FILE --ad ID --out DIR [--points N]
        writes PNG + CSV bid sweeps (and, for summary, the word-budget comparison); prints the paths written.

FILE is JSON (``-`` reads standard input); fields not listed are ignored; ads appear in the output in input order.
Segment is one segment with one ad. Invalid input exits with status 2 and one line on standard error (the
handlers raise :class:`auctions.mechanism.MechanismError`; ``auctions.cli.main`` prints it). The mechanism
modules are imported inside the handlers, so ``solve`` and ``lab`` start no slower for these commands' existence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auctions.ads.validation import (
    describe,
    json_entries,
    json_field,
    json_integer,
    json_list,
    json_number,
    json_object,
    json_string,
)
from auctions.mechanism import MechanismError

if TYPE_CHECKING:
    from auctions.ads.segment import SegmentAuction
    from auctions.ads.summary import SummaryAuction
    from auctions.ads.token import TokenAuction

ReadJson = Callable[[str], Any]
KINDS = ("segment", "token", "summary")


def parse_segment(data: Any) -> SegmentAuction:
    from auctions.ads.segment import segment_auction

    ids, cols = json_entries(data, "ads", ("bid", "relevance"))
    return segment_auction(ids=ids, bids=cols["bid"], relevance=cols["relevance"])


def parse_token(data: Any) -> TokenAuction:
    from auctions.ads.token import token_auction

    root = json_object(data, "input")
    agents = json_list(json_field(root, "agents", "input"), "agents")
    ids: list[str] = []
    bids: list[float] = []
    dists: list[list[float]] = []
    for i, raw in enumerate(agents):
        agent = json_object(raw, f"agents[{i}]")
        ident = json_field(agent, "id", f"agents[{i}]")
        if not isinstance(ident, str) or not ident:
            raise MechanismError(f"agents[{i}].id: expected a non-empty string, got {describe(ident)}")
        ids.append(ident)
        bids.append(json_number(json_field(agent, "bid", f"agents[{i}]"), f"agents[{i}].bid"))
        row = json_list(json_field(agent, "distribution", f"agents[{i}]"), f"agents[{i}].distribution")
        dists.append([json_number(p, f"agents[{i}].distribution[{t}]") for t, p in enumerate(row)])
    aggregation = json_string(json_field(root, "aggregation", "input"), "aggregation")
    return token_auction(ids=ids, bids=bids, distributions=dists, aggregation=aggregation)


def parse_summary(data: Any) -> SummaryAuction:
    from auctions.ads.summary import DEFAULT_DECAY, summary_auction

    ids, cols = json_entries(data, "ads", ("bid", "ctr"))
    root = json_object(data, "input")
    beta = json_number(json_field(root, "beta", "input"), "beta")
    slots = json_integer(json_field(root, "slots", "input"), "slots")
    decay = json_number(root["decay"], "decay") if "decay" in root else DEFAULT_DECAY
    return summary_auction(ids=ids, bids=cols["bid"], ctrs=cols["ctr"], beta=beta, slots=slots, decay=decay)


def segment_json(auction: SegmentAuction) -> dict[str, Any]:
    from auctions.ads.segment import segment_solve

    out = segment_solve(auction)
    return {
        "ads": {
            ident: {"probability": float(out.allocation[i]), "expected_payment": float(out.expected_payment[i])}
            for i, ident in enumerate(auction.ids)
        },
        "metrics": {
            "social_welfare": out.metrics.social_welfare,
            "revenue": out.metrics.revenue,
            "relevance": out.metrics.relevance,
        },
    }


def token_json(auction: TokenAuction) -> dict[str, Any]:
    from auctions.ads.token import token_solve

    out = token_solve(auction)
    return {
        "aggregate": [float(p) for p in out.aggregate],
        "agents": {
            ident: {
                "selection_probability": float(out.selection_probability[i]),
                "expected_payment": float(out.expected_payment[i]),
            }
            for i, ident in enumerate(auction.ids)
        },
    }


def summary_json(auction: SummaryAuction) -> dict[str, Any]:
    from auctions.ads.summary import summary_solve

    out = summary_solve(auction)
    return {
        "ads": {
            ident: {
                "prominence": float(out.prominence[i]),
                "effective_ctr": float(out.effective_ctr[i]),
                "expected_payment": float(out.expected_payment[i]),
                "cost_per_click": float(out.cost_per_click[i]),
            }
            for i, ident in enumerate(auction.ids)
        }
    }


PARSERS: dict[str, Callable[[Any], Any]] = {"segment": parse_segment, "token": parse_token, "summary": parse_summary}
RENDERERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "segment": segment_json,
    "token": token_json,
    "summary": summary_json,
}


def _print_json(result: dict[str, Any]) -> None:
    json.dump(result, sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


def _solve(args: argparse.Namespace, *, kind: str, read_json: ReadJson) -> int:
    auction = PARSERS[kind](read_json(args.file))
    _print_json(RENDERERS[kind](auction))
    return 0


def _lab(args: argparse.Namespace, *, read_json: ReadJson) -> int:
    from auctions.ads.lab import run_ads_lab  # matplotlib is imported only there

    auction = PARSERS[args.kind](read_json(args.file))
    for path in run_ads_lab(auction, ad_id=args.ad, out_dir=Path(args.out), points=args.points):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction[Any], *, read_json: ReadJson) -> None:
    """Add ``segment``, ``token``, ``summary`` and ``ads-lab`` to the ``python -m auctions`` subcommands.

    ``read_json`` reads FILE (or ``-``) and raises MechanismError on unreadable or invalid JSON; the caller passes
    its own, so every subcommand reports a bad file the same way.
    """
    helps = {
        "segment": "RAG segment auction: win probabilities, expected payments and the paper's metrics",
        "token": "token auction: aggregate distribution, selection probabilities and expected payments",
        "summary": "summary auction (GPA): prominence, effective CTR, expected payment and cost per click",
    }
    for kind in KINDS:
        p = sub.add_parser(kind, help=helps[kind])
        p.add_argument("file", help="input JSON file, or - for standard input")
        p.set_defaults(run=partial(_solve, kind=kind, read_json=read_json))
    lab = sub.add_parser("ads-lab", help="sweep one ad's bid and plot its allocation, payment and utility")
    lab.add_argument("kind", choices=KINDS, help="which advertising mechanism the FILE is for")
    lab.add_argument("file", help="input JSON file, or - for standard input")
    lab.add_argument("--ad", required=True, help="id of the ad (or agent) whose bid is swept")
    lab.add_argument("--out", required=True, help="directory for the PNG and CSV files")
    lab.add_argument("--points", type=int, default=41, help="points per sweep (default 41)")
    lab.set_defaults(run=partial(_lab, read_json=read_json))
