"""Load test: the production server on PostgreSQL with localstripe, driven from this (second) process over loopback.

    .venv/bin/python bench/load.py                      # the Procfile's server, 10/50/200 clients, 30 s per level
    .venv/bin/python bench/load.py --seconds 10         # shorter levels
    .venv/bin/python bench/load.py --think 0            # closed loop: each client asks again as soon as answered
    .venv/bin/python bench/load.py --server all         # the old server, uvicorn without uvloop/httptools, the new

It creates (and drops afterwards) its own PostgreSQL database (``--database-url``, default
postgres://postgres@127.0.0.1:5432/marketplace_bench), starts localstripe on a free port, seeds an open round and
``--groups`` groups each with an admin, an API token and a card on file, then starts the server in its own process:

* ``uvicorn``: ``uvicorn marketplace.asgi:application --loop uvloop --http httptools --workers 2
  --limit-concurrency 100`` with Django's psycopg pool (max 10 per process), as in the Procfile;
* ``uvicorn-plain``: the same with uvicorn's pure-Python event loop and HTTP parser (``--loop asyncio --http h11``);
* ``runserver``: the old site, the threaded ``manage.py runserver`` with ``CONN_MAX_AGE=60`` and no pool.

Clients: by default each waits between 0.5 T and 1.5 T (``--think T``, 1 s) after an answer before its next
request, as a person between clicks does and as locust's ``between`` wait does, so 50 clients offer about 50
requests a second. With ``--think 0`` the loop is closed: the offered load is whatever the server absorbs, and by
Little's law the latency at N clients is N over the throughput (the saturation figures). Clients join spread over
the first second, and ``--warmup`` seconds of uncounted requests per endpoint come first, so neither a start line of
fifty requests in one millisecond nor a process's first requests is what is measured.

For each level and endpoint it measures latency (p50, p99), throughput and error counts: ``bid_place`` (PUT the
group's bid, a card hold at localstripe each time the amount changes), ``bid_read`` (GET the bid), ``round_page``
(the round's HTML page) and ``api_rounds`` (GET /api/rounds). Stripe calls go through a timing proxy in this
process, so the table shows the share of bid placement time spent waiting on localstripe. Prints a table per server
and, last, one JSON line: ``endpoints`` (the last server's ``clients``, ``p50_s``, ``p99_s``, ``rps`` and
``server_errors`` per endpoint and level), ``server_errors`` (every 5xx answer of that server over the run),
``http_500``, ``http_503``, ``targets`` (GET p99 < 100 ms and bid placement p99 < 1 s at 50 clients, no 500) and the
same per server under ``servers``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
LEVELS = (10, 50, 200)
ENDPOINTS = ("bid_place", "bid_read", "round_page", "api_rounds")
SERVERS = ("uvicorn", "uvicorn-plain", "runserver")
SERVER_SETS = {"both": ["runserver", "uvicorn"], "all": ["runserver", "uvicorn-plain", "uvicorn"]}


@dataclass
class Level:
    endpoint: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # no HTTP answer at all (connection refused or reset, timeout)
    stripe_s: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    @property
    def client_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if 400 <= s < 500)

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


# --- setup ----------------------------------------------------------------------------------------------------------


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def database_recreate(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(base: dict[str, str], *, pool: bool) -> dict[str, str]:
    env = dict(os.environ, **base)
    env.update(DEBUG="false", LOGIN_THROTTLING="false", DJANGO_SETTINGS_MODULE="marketplace.settings")
    if pool:
        env.update(DATABASE_POOL_MAX_SIZE="10", DATABASE_POOL_MIN_SIZE="2", DATABASE_POOL_TIMEOUT_S="10")
    else:
        env["DATABASE_POOL_MAX_SIZE"] = "0"
    return env


def seed(env: dict[str, str], groups: int) -> dict:
    """Migrate and create the round, the groups (admin, token, card) in this process; returns what the clients need."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from marketplace.accounts.tokens import api_token_create
    from marketplace.billing.services import billing_card_attach
    from marketplace.groups.services import group_create
    from marketplace.rounds.models import Round

    User = get_user_model()
    staff = User.objects.create_user("staff@bench.example", "staff@bench.example", "bench-Password-1", is_staff=True)
    now = timezone.now()
    round = Round.objects.create(
        title="Bench round", slug="bench-round", base_model="tiny", prompts=["Q: hi\nA:", "Q: bye\nA:"], kl_weight=1.0,
        candidates_per_prompt=4, currency="usd", opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=1),
        status=Round.Status.OPEN, created_by=staff,
    )
    clients = []
    for n in range(groups):
        email = f"admin{n}@bench.example"
        user = User.objects.create_user(email, email, "bench-Password-1")
        group = group_create(user=user, name=f"Bench group {n}")
        # One card per group (bidding allows one card behind one group's bid): a distinct test number each.
        billing_card_attach(group=group, by=user, payment_method_id=_card_for(env["STRIPE_API_BASE"], n))
        _, token = api_token_create(user=user, name="bench")
        clients.append({"group": group.slug, "token": token})
    from django.db import connections

    connections.close_all()  # the next server's database replaces this one
    return {"round": round.slug, "clients": clients}


def _luhn_number(n: int) -> str:
    body = f"4{n:014d}"
    total = 0
    for i, digit in enumerate(reversed(body)):
        d = int(digit) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _card_for(api_base: str, n: int) -> str:
    import requests

    response = requests.post(
        f"{api_base}/v1/payment_methods",
        data={"type": "card", "card[number]": _luhn_number(1000 + n), "card[exp_month]": "12", "card[exp_year]": "2030",
              "card[cvc]": "123"},
        headers={"Authorization": "Bearer sk_test_localstripe"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["id"]


class StripeProxy:
    """A pass-through HTTP proxy in front of localstripe that adds up the time the server spends waiting on it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.busy_s = 0.0
        self.calls = 0
        self.port = 0

    async def start(self) -> None:
        from aiohttp import ClientSession, web

        from marketplace.localstripe_server import free_port

        self.session = ClientSession()

        async def forward(request: web.Request) -> web.Response:
            t0 = time.perf_counter()
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with self.session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as upstream:
                payload = await upstream.read()
                response = web.Response(body=payload, status=upstream.status, content_type=upstream.content_type)
            self.busy_s += time.perf_counter() - t0
            self.calls += 1
            return response

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.session.close()


def start_server(kind: str, env: dict[str, str], port: int, log: Path, workers: int = 2) -> subprocess.Popen:
    if kind.startswith("uvicorn"):
        # "uvicorn" is the Procfile's web process; "uvicorn-plain" the same with uvicorn's pure-Python event loop and
        # HTTP parser (what it falls back to without uvloop and httptools), for the comparison in the same run.
        fast = ["--loop", "uvloop", "--http", "httptools"] if kind == "uvicorn" else ["--loop", "asyncio", "--http", "h11"]
        cmd = [
            PY, "-m", "uvicorn", "marketplace.asgi:application", "--host", "127.0.0.1", "--port", str(port), *fast,
            "--workers", str(workers), "--limit-concurrency", "100", "--no-access-log", "--no-server-header",
        ]
    else:
        cmd = [PY, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    out = open(log, "ab")  # noqa: SIM115 - the process owns it until it ends
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2)
            return process
        except Exception:
            if process.poll() is not None:
                raise RuntimeError(f"the {kind} server exited; see {log}") from None
            time.sleep(0.3)
    raise RuntimeError(f"the {kind} server did not answer; see {log}")


def stop_server(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


# --- load -----------------------------------------------------------------------------------------------------------


async def run_level(base: str, seeded: dict, endpoint: str, clients: int, seconds: float, proxy: StripeProxy,
                    think: float = 0.0) -> Level:
    import aiohttp

    level = Level(endpoint=endpoint, clients=clients, seconds=seconds)
    slug = seeded["round"]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    stripe_before = proxy.busy_s
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop_at = time.perf_counter() + seconds

        async def client(n: int) -> None:
            who = seeded["clients"][n % len(seeded["clients"])]
            headers = {"Authorization": f"Bearer {who['token']}"}
            bid_path = f"{base}/api/rounds/{slug}/groups/{who['group']}/bid"
            rng = random.Random(n)
            # Clients join spread over the first second, as locust's spawn rate does: fifty requests fired in the
            # same millisecond measure the start line, not the server.
            await asyncio.sleep(rng.uniform(0, 1.0))
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    if endpoint == "bid_place":
                        request = session.put(bid_path, json={"amount_cents": rng.randrange(100, 100_000)}, headers=headers)
                    elif endpoint == "bid_read":
                        request = session.get(bid_path, headers=headers)
                    elif endpoint == "round_page":
                        request = session.get(f"{base}/rounds/{slug}/")
                    else:
                        request = session.get(f"{base}/api/rounds", headers=headers)
                    async with request as response:
                        await response.read()
                        status = response.status
                except (TimeoutError, aiohttp.ClientError):
                    level.failures += 1
                    await asyncio.sleep(0.05)
                    continue
                level.latencies.append(time.perf_counter() - t0)
                level.statuses[status] = level.statuses.get(status, 0) + 1
                if status == 503:
                    await asyncio.sleep(0.05)  # a polite client honours a busy answer a little
                if think:
                    # A person between two clicks (locust's ``between(0.5 t, 1.5 t)``): the offered load is then about
                    # clients / think requests a second, instead of whatever the server can absorb.
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

        await asyncio.gather(*(client(n) for n in range(clients)))
    level.stripe_s = proxy.busy_s - stripe_before
    return level


def table(kind: str, levels: list[Level]) -> str:
    lines = [
        f"\n{kind}",
        f"{'endpoint':<11} {'clients':>7} {'requests':>8} {'rps':>7} {'p50 s':>7} {'p99 s':>7} {'2xx':>6} {'4xx':>5} "
        f"{'5xx':>5} {'no answer':>9} {'Stripe share':>12}",
    ]
    for lv in levels:
        ok = sum(n for s, n in lv.statuses.items() if s < 400)
        busy = sum(lv.latencies)
        share = f"{100 * lv.stripe_s / busy:.0f} %" if lv.endpoint == "bid_place" and busy else "-"
        lines.append(
            f"{lv.endpoint:<11} {lv.clients:>7} {len(lv.latencies):>8} {lv.rps:>7.1f} {lv.quantile(0.5):>7.3f} "
            f"{lv.quantile(0.99):>7.3f} {ok:>6} {lv.client_errors:>5} {lv.server_errors:>5} {lv.failures:>9} {share:>12}"
        )
    return "\n".join(lines)


def targets(levels: list[Level]) -> dict[str, bool | None]:
    """The issue's targets for this 2-core machine, read off the measured levels (None: that level was not run)."""
    at_50 = [lv for lv in levels if lv.clients == 50]
    gets = [lv.quantile(0.99) for lv in at_50 if lv.endpoint != "bid_place"]
    bids = [lv.quantile(0.99) for lv in at_50 if lv.endpoint == "bid_place"]
    return {
        "get_p99_under_100ms_at_50": max(gets) < 0.1 if gets else None,
        "bid_p99_under_1s_at_50": max(bids) < 1.0 if bids else None,
        "no_500": all(lv.statuses.get(500, 0) == 0 for lv in levels),
    }


async def bench_server(kind: str, args, seeded: dict, env: dict[str, str], proxy: StripeProxy, log: Path) -> list[Level]:
    from marketplace.localstripe_server import free_port

    port = free_port()
    process = start_server(kind, server_env(env, pool=kind != "runserver"), port, log, workers=args.workers)
    try:
        # Warm-up, not counted: each process opens its pool, compiles its templates and fills its caches once.
        for endpoint in args.endpoints:
            await run_level(f"http://127.0.0.1:{port}", seeded, endpoint, 4, args.warmup, proxy)
        levels = []
        for clients in args.levels:
            for endpoint in args.endpoints:
                levels.append(await run_level(f"http://127.0.0.1:{port}", seeded, endpoint, clients, args.seconds, proxy,
                                              think=args.think))
                print(
                    f"  {kind} {endpoint} x{clients}: {len(levels[-1].latencies)} answers, "
                    f"{levels[-1].server_errors} 5xx, {levels[-1].failures} unanswered",
                    file=sys.stderr, flush=True,
                )
        return levels
    finally:
        stop_server(process)


async def main_async(args) -> None:
    from marketplace.localstripe_server import LocalStripe

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    proxy = StripeProxy("")
    await proxy.start()
    stripe = None
    try:
        env = {
            "DATABASE_URL": args.database_url,
            "STRIPE_SECRET_KEY": "sk_test_localstripe",
            "STRIPE_API_BASE": f"http://127.0.0.1:{proxy.port}",
            "CELERY_BROKER_URL": "filesystem://",
            "VAR_DIR": str(work / "var"),
        }
        results: dict[str, list[Level]] = {}
        kinds = list(dict.fromkeys(k for name in args.server for k in (SERVER_SETS.get(name) or [name])))
        for kind in kinds:
            # Each server starts from the same place: a new database and an empty localstripe. localstripe slows as
            # its PaymentIntents pile up (its share of a bid went 31 % -> 76 % over one shared run), which would
            # otherwise count against whichever server is measured last.
            database_recreate(args.database_url)
            stripe = LocalStripe(state_path=work / kind / "localstripe" / "state", from_scratch=True).start()
            proxy.target = stripe.url
            seeded = await asyncio.to_thread(seed, env, args.groups)
            try:
                results[kind] = await bench_server(kind, args, seeded, env, proxy, work / f"{kind}.log")
            finally:
                stripe.stop()
                stripe = None
        for kind, levels in results.items():
            print(table(kind, levels))
        summary = {
            "seconds_per_level": args.seconds,
            "think_s": args.think,
            "servers": {
                kind: {
                    "levels": [
                        {
                            "endpoint": lv.endpoint, "clients": lv.clients, "p50_s": round(lv.quantile(0.5), 4),
                            "p99_s": round(lv.quantile(0.99), 4), "rps": round(lv.rps, 1), "requests": len(lv.latencies),
                            "server_errors": lv.server_errors, "unanswered": lv.failures,
                            "statuses": {str(k): v for k, v in sorted(lv.statuses.items())},
                            **({"stripe_share": round(lv.stripe_s / sum(lv.latencies), 3)} if lv.endpoint == "bid_place" and lv.latencies else {}),
                        }
                        for lv in levels
                    ],
                    "server_errors": sum(lv.server_errors for lv in levels),
                }
                for kind, levels in results.items()
            },
        }
        main_kind = kinds[-1]
        summary["server"] = main_kind
        summary["endpoints"] = {
            endpoint: [
                {k: lv[k] for k in ("clients", "p50_s", "p99_s", "rps", "server_errors")}
                for lv in summary["servers"][main_kind]["levels"] if lv["endpoint"] == endpoint
            ]
            for endpoint in args.endpoints
        }
        summary["server_errors"] = summary["servers"][main_kind]["server_errors"]
        # 503 with Retry-After is the designed answer to overload; 500 is a failure. Both are in server_errors.
        summary["http_500"] = sum(lv.statuses.get(500, 0) for lv in results[main_kind])
        summary["http_503"] = sum(lv.statuses.get(503, 0) for lv in results[main_kind])
        summary["targets"] = targets(results[main_kind])
        print(json.dumps(summary))
    finally:
        await proxy.stop()
        if stripe is not None:
            stripe.stop()
        if not args.keep_database:
            database_drop(args.database_url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each endpoint x level run")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--server", nargs="+", choices=(*SERVERS, *SERVER_SETS), default=["uvicorn"],
                        help="servers to measure one after the other (both: runserver and uvicorn; all: the three)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds each client waits between answers (0: closed loop)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of uncounted requests per endpoint first")
    parser.add_argument("--groups", type=int, default=20, help="groups bidding (clients share them round-robin)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/marketplace_bench")
    parser.add_argument("--keep-database", action="store_true")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
