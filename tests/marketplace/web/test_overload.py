"""Overload (no pool connection in time, PostgreSQL's "too many clients") is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import OperationalError
from django.test import RequestFactory
from psycopg_pool import PoolTimeout

from marketplace.web.overload import OverloadMiddleware, is_overload


def wrapped(cause: Exception) -> OperationalError:
    """What Django raises: its OperationalError with the driver's error as the cause."""
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


OVERLOADS = {
    "pool-timeout": PoolTimeout("couldn't get a connection after 10.00 sec"),
    "pool-timeout-wrapped": wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")),
    "too-many-clients": wrapped(psycopg.OperationalError('connection failed: FATAL:  sorry, too many clients already')),
    "reserved-slots": wrapped(psycopg.OperationalError("FATAL:  remaining connection slots are reserved for superuser")),
}


@pytest.mark.parametrize("exc", OVERLOADS.values(), ids=OVERLOADS.keys())
def test_a_refused_connection_anywhere_below_is_a_503_with_retry_after(exc, settings):
    def view(request):
        raise exc

    response = OverloadMiddleware(view)(RequestFactory().get("/rounds/"))
    assert response.status_code == 503 and response["Retry-After"] == str(settings.OVERLOAD_RETRY_AFTER_S)
    api = OverloadMiddleware(view)(RequestFactory().get("/api/rounds"))
    assert api.status_code == 503 and json.loads(api.content)["error"]["code"] == "overloaded"


def test_other_database_errors_are_not_disguised_as_overload():
    assert not is_overload(wrapped(psycopg.OperationalError("server closed the connection unexpectedly")))
    assert not is_overload(ValueError("too many clients"))


@pytest.mark.django_db
def test_the_api_answers_503_with_retry_after_when_the_pool_times_out(monkeypatch, cast):
    from django.test import Client

    from marketplace.accounts.tokens import api_token_create
    from marketplace.api import endpoints

    def no_connection(*args, **kwargs):
        raise OVERLOADS["pool-timeout-wrapped"]

    _, plain = api_token_create(user=cast.bob, name="t")
    monkeypatch.setattr(endpoints, "rounds_public_listed", no_connection)
    response = Client().get("/api/rounds", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 503, response.content[:200]
    assert response["Retry-After"] and response.json()["error"]["code"] == "overloaded"
