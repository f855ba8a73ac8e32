"""Run localstripe (the stateful stand-in for the Stripe API) the way this project needs it, and manage it from Python.

    python -m marketplace.localstripe_server --port 8420 --state var/localstripe/state

localstripe's own launcher listens on every interface and keeps its state in a fixed file under /tmp. This one reuses
its aiohttp application but binds 127.0.0.1 only and keeps the state in the file given by --state (under var/ by
default), written atomically at most every ``--flush-interval`` seconds (0.25 by default: localstripe pickles
its whole state on each write, which a burst of bids otherwise waited on) and when the server stops.

It also fills two gaps between localstripe and Stripe that the billing code relies on, so the gateway uses only the
real API's shape: the ``GET /v1/payment_intents?customer=cus_...`` filter (localstripe refuses the parameter; the
gateway uses it to find an existing PaymentIntent by its metadata after a crash), and the PaymentIntent fields
``amount_capturable`` and ``amount_received`` (localstripe leaves them out).

``LocalStripe`` starts this server as a subprocess, waits until it answers and stops it; the test suite, ``make
stripe`` and the demo use it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_PORT = 8420
DEFAULT_STATE = Path("var") / "localstripe" / "state"
HOST = "127.0.0.1"
# A stop (SIGTERM, Ctrl-C) writes what is pending; only a SIGKILL can lose the writes of the last interval.
DEFAULT_FLUSH_INTERVAL_S = 0.25


def _patch_localstripe(state_path: Path, flush_interval: float = 0.0) -> None:
    """Point localstripe's store at `state_path` and add the customer filter on PaymentIntent lists.

    With ``flush_interval`` > 0 the store is written at most once per that many seconds (and when the server stops)
    instead of after every write request: localstripe pickles its whole state each time, so under a burst of bids
    each write cost as much as the state is large, and all requests waited on it (one event loop)."""
    from localstripe import resources

    state_path.parent.mkdir(parents=True, exist_ok=True)
    store_cls = resources.Store

    def try_load_from_disk(self) -> None:
        try:
            with open(state_path, "rb") as f:
                old = pickle.load(f)
        except (FileNotFoundError, EOFError):
            return
        dict.clear(self)
        dict.update(self, old)

    def write_now(self) -> None:
        # Written atomically so a crash mid-write never leaves a truncated state file behind.
        pending["timer"] = None
        fd, tmp = tempfile.mkstemp(dir=state_path.parent, prefix=".state-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, state_path)

    pending: dict = {"timer": None}

    def dump_to_disk(self) -> None:
        # Called after every write request by localstripe's middleware, inside the event loop.
        if flush_interval <= 0:
            write_now(self)
        elif pending["timer"] is None:
            import asyncio

            pending["timer"] = asyncio.get_running_loop().call_later(flush_interval, write_now, self)

    def flush(self) -> None:
        if pending["timer"] is not None:
            pending["timer"].cancel()
            write_now(self)

    store_cls.try_load_from_disk = try_load_from_disk
    store_cls.dump_to_disk = dump_to_disk
    store_cls.flush = flush
    # localstripe dumps the whole store on every item set; once per write request (its middleware) is enough.
    store_cls.__setitem__ = dict.__setitem__
    store_cls.__delitem__ = dict.__delitem__

    payment_intent = resources.PaymentIntent
    base_list_all = resources.StripeObject._api_list_all.__func__

    def list_payment_intents(cls, url, customer=None, limit=None, starting_after=None, **kwargs):
        if customer is not None and not (isinstance(customer, str) and customer.startswith("cus_")):
            raise resources.UserError(400, "Bad request")
        listing = base_list_all(cls, url, limit=limit, starting_after=starting_after, **kwargs)
        if customer is not None:
            listing._list = [pi for pi in listing._list if pi.customer == customer]
        return listing

    payment_intent._api_list_all = classmethod(list_payment_intents)

    def amount_capturable(self) -> int:
        return self.latest_charge.amount if self.status == "requires_capture" else 0

    def amount_received(self) -> int:
        # A partial capture refunds the rest of the authorisation, so what was received is amount minus refunds.
        if self.status != "succeeded" or self.latest_charge is None:
            return 0
        return self.latest_charge.amount - self.latest_charge.amount_refunded

    payment_intent.amount_capturable = property(amount_capturable)
    payment_intent.amount_received = property(amount_received)

    # More of Stripe's test card ids than localstripe knows (same ids work in Stripe's test mode). Each is a
    # different 16-digit card number (localstripe takes no other length), so a different fingerprint: the demo and the tests give each group its own card,
    # as the one-card-one-group rule of bidding requires. Brands follow the number.
    extra_cards = {
        "pm_card_mastercard": ("5555555555554444", "mastercard"),
        "pm_card_visa_debit": ("4000056655665556", "visa"),
        "pm_card_mastercard_debit": ("5200828282828210", "mastercard"),
        "pm_card_discover": ("6011111111111117", "discover"),
        "pm_card_jcb": ("3566002020360505", "jcb"),
        "pm_card_unionpay": ("6200000000000005", "unionpay"),
    }
    method_cls = resources.PaymentMethod
    original_canonical = method_cls._try_get_canonical_test_article.__func__

    def canonical(cls, id):
        if id in extra_cards:
            number, brand = extra_cards[id]
            method = cls(type="card", card={"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"})
            method.card["brand"] = brand
            return method
        return original_canonical(cls, id)

    method_cls._try_get_canonical_test_article = classmethod(canonical)


def serve(*, port: int, state_path: Path, from_scratch: bool = False, flush_interval: float = 0.0) -> None:
    _patch_localstripe(state_path, flush_interval)
    import logging

    from aiohttp import web
    from localstripe import resources, server

    if from_scratch:
        state_path.unlink(missing_ok=True)
    resources.store.try_load_from_disk()
    logger = logging.getLogger("aiohttp.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())
    print(f"localstripe on http://{HOST}:{port} (state in {state_path})", flush=True)

    async def write_pending(app: web.Application) -> None:  # SIGTERM and Ctrl-C stop through here
        resources.store.flush()

    server.app.on_cleanup.append(write_pending)
    web.run_app(server.app, host=HOST, port=port, access_log=logger, print=None)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def is_answering(url: str, *, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/js.stripe.com/v3/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalStripe:
    """Start the launcher above as a subprocess for the duration of a ``with`` block.

    ``with LocalStripe(port=8421, state_path=tmp / "state") as ls: ... ls.url ...``. The state file is kept unless
    ``from_scratch`` is set; output goes to ``log_path`` (next to the state file by default).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        state_path: Path | str = DEFAULT_STATE,
        from_scratch: bool = False,
        log_path: Path | str | None = None,
        start_timeout: float = 20.0,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
    ) -> None:
        self.port = port or free_port()
        self.state_path = Path(state_path)
        self.from_scratch = from_scratch
        self.log_path = Path(log_path) if log_path else self.state_path.with_suffix(".log")
        self.start_timeout = start_timeout
        self.flush_interval = flush_interval
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> LocalStripe:
        if is_answering(self.url):
            raise RuntimeError(f"Something already answers on {self.url}; pick another port.")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "marketplace.localstripe_server", "--port", str(self.port)]
        command += ["--state", str(self.state_path), "--flush-interval", str(self.flush_interval)]
        command += ["--from-scratch"] if self.from_scratch else []
        project_root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(command, cwd=project_root, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"localstripe exited at start (code {self._process.returncode}); see {self.log_path}")
            if is_answering(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not answer on {self.url} within {self.start_timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run localstripe on 127.0.0.1 with its state under var/.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCALSTRIPE_PORT", DEFAULT_PORT)))
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state file (default: var/localstripe/state)")
    parser.add_argument("--from-scratch", action="store_true", help="forget the saved state")
    parser.add_argument("--flush-interval", type=float, default=DEFAULT_FLUSH_INTERVAL_S,
                        help="write the state at most once per this many seconds (0: after every write request)")
    args = parser.parse_args(argv)
    serve(port=args.port, state_path=args.state, from_scratch=args.from_scratch, flush_interval=args.flush_interval)


if __name__ == "__main__":
    main()
