"""The project's localstripe launcher writes its state in batches (marketplace.localstripe_server), yet a stop and a
start keep every object: the stop writes what is pending."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from marketplace.localstripe_server import LocalStripe

KEY = {"Authorization": "Bearer sk_test_localstripe"}


def _call(url: str, method: str = "GET", data: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data else None
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=KEY, method=method), timeout=10) as r:
        return json.load(r)


def test_a_stopped_and_restarted_localstripe_keeps_what_it_was_told_just_before(tmp_path):
    state = tmp_path / "state"
    server = LocalStripe(state_path=state, from_scratch=True, flush_interval=30.0).start()  # nothing written on a timer
    try:
        made = [_call(f"{server.url}/v1/customers", "POST", {"email": f"c{n}@example.com"})["id"] for n in range(3)]
    finally:
        server.stop()
    again = LocalStripe(port=server.port, state_path=state).start()
    try:
        assert [_call(f"{again.url}/v1/customers/{cid}")["id"] for cid in made] == made
    finally:
        again.stop()
