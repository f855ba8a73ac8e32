"""schemathesis against the live server's /api/openapi.json with a member's token: no input gives a 5xx, and every
answer agrees with the schema (schemathesis' default checks: status codes, content types, response bodies and
headers, schema-valid data accepted, schema-invalid data refused).

Bounded (SCHEMATHESIS_MAX_EXAMPLES per operation and pass, 25 by default; about a minute) and marked slow; CI runs it
with the rest of `make test`. Two passes:

1. every operation with generated values everywhere, paths included (so mostly unknown slugs: 404s);
2. the operations of a round and a group with the real round and the caller's own group in the path (a card on file,
   so bids are held at localstripe), so generated bodies reach the validators and the limits the schema states
   (minimum and maximum bid, rubric sizes and weights, score keys) are checked against the ones the server enforces.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from marketplace.accounts.tokens import api_token_create
from marketplace.billing.services import billing_card_attach

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
ROUND_SLUG = "open-round"
# Rules no JSON Schema can state, so schema-valid data may still be refused (a 4xx with a message; every other check
# still runs on these operations):
# - a preference body: a score's key must name a candidate of the round (this round has none), a phrase may appear only
#   once (case-insensitively), 'chosen' and 'rejected' must differ;
# - a bid: JSON Schema counts 150.0 as an integer, the API takes only a JSON integer literal (a float is a 422), so
#   the bid's limits are checked here instead: every integer amount within the schema's bounds is accepted.
BID = "PUT /api/rounds/{slug}/groups/{group_slug}/bid"
NOT_STATABLE = {
    "POST /api/rounds/{slug}/groups/{group_slug}/preferences": [positive_data_acceptance],
    BID: [positive_data_acceptance],
}


@pytest.fixture
def api_world(transactional_db, localstripe):
    from tests.factories import make_round
    from tests.personas import cast_build

    cast = cast_build()
    make_round(slug=ROUND_SLUG)
    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    _, plain = api_token_create(user=cast.alice, name="schemathesis")
    return {"token": plain, "group": cast.group.slug}


def _bid_limits_hold(case, response) -> bool:
    """An integer amount within the schema's bounds is a bid (200) on the real round; others are not held to it."""
    amount = case.body.get("amount_cents") if isinstance(case.body, dict) else None
    if type(amount) is not int or case.operation.label != BID:
        return True
    return response.status_code == 200


def _run(live_server, operations, headers, *, paths: dict[str, str] | None = None) -> tuple[Counter, list[str]]:
    """Drive hypothesis directly with schemathesis' strategies (its pytest plugin's lazy fixtures do not work with
    this pytest); returns the status counts and one line per failed check."""
    statuses: Counter = Counter()
    failures: list[str] = []
    for operation in operations:
        _run_operation(live_server, operation, headers, paths, statuses, failures)
    return statuses, failures


def _run_operation(live_server, operation, headers, paths, statuses: Counter, failures: list[str]) -> None:
    """One operation, MAX_EXAMPLES positive cases; ``paths`` replaces the generated path parameters."""
    excluded = NOT_STATABLE.get(operation.label, [])

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case):
        if paths:
            case.path_parameters = {**(case.path_parameters or {}), **paths}
        response = case.call(base_url=live_server.url, headers=headers)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, headers=headers, excluded_checks=excluded)
        except (Failure, FailureGroup) as exc:
            for failure in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                failures.append(f"{case.method} {case.formatted_path} {str(case.body)[:120]!r} -> "
                                f"{response.status_code} {response.text[:160]}: {failure.title}")
        if paths and not _bid_limits_hold(case, response):
            failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code} "
                            f"{response.text[:160]}: an integer bid within the schema's bounds was refused")
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

    run()


def test_no_generated_request_gets_a_server_error_or_breaks_the_schema(live_server, api_world):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {api_world['token']}"}
    operations = [result.ok() for result in schema.get_all_operations()]

    everywhere, failures = _run(live_server, operations, headers)
    in_round = [op for op in operations if "{group_slug}" in op.path]
    assert in_round, "the schema lost the round-and-group operations"
    real, more = _run(live_server, in_round, headers, paths={"slug": ROUND_SLUG, "group_slug": api_world["group"]})
    print(f"schemathesis: {sum(everywhere.values())} cases over {len(operations)} operations "
          f"({dict(sorted(everywhere.items()))}); {sum(real.values())} on the real round over {len(in_round)} "
          f"({dict(sorted(real.items()))}); {len(failures) + len(more)} failed checks")
    assert not [s for s in everywhere + real if s >= 500]
    assert failures + more == [], "\n".join(sorted(set(failures + more))[:30])
    assert real[200] > 0  # some bids were placed: the limits let valid data through
