"""schemathesis against the live server's /api/openapi.json with a member's token: no input gives a 5xx.

Bounded (SCHEMATHESIS_MAX_EXAMPLES per operation, 25 by default) and marked slow; CI runs it with the rest of
`make test`. The only check is "not a server error": 4xx answers to nonsense are what the API should give.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from marketplace.accounts.tokens import api_token_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))


@pytest.fixture
def api_token(transactional_db, localstripe):
    from tests.factories import make_round
    from tests.personas import cast_build

    cast = cast_build()
    make_round(slug="open-round")
    _, plain = api_token_create(user=cast.alice, name="schemathesis")
    return plain


def test_no_generated_request_gets_a_server_error(live_server, api_token):
    """Every operation of the schema, MAX_EXAMPLES generated cases each (schemathesis' Python API driving hypothesis
    directly, which works with this pytest; its pytest plugin's lazy fixtures do not)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {api_token}"}
    calls: list[tuple[str, int]] = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call(base_url=live_server.url, headers=headers)
            calls.append((case.operation.label, response.status_code))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        run()
    print(f"schemathesis: {len(calls)} cases over {len({label for label, _ in calls})} operations, {len(failures)} 5xx")
    assert calls and failures == []
