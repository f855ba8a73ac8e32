"""The pages' own headers and error pages: a strict Content-Security-Policy, a Permissions-Policy, and the site's styled
404, 403, 405 and 500 pages (each with a way back), while JSON callers keep their JSON."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from marketplace.web.middleware import content_security_policy
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_page_has_a_strict_csp_that_allows_stripe_js_from_its_setting(client: Client, settings) -> None:
    settings.STRIPE_JS_URL = "http://127.0.0.1:8555/js.stripe.com/v3/"
    response = client.get("/")
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", "http://127.0.0.1:8555"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "camera=()" in response["Permissions-Policy"]


def test_real_stripe_js_gets_stripes_documented_origins(settings) -> None:
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    policy = directives(content_security_policy())
    assert "https://js.stripe.com" in policy["script-src"]
    assert "https://hooks.stripe.com" in policy["frame-src"]
    assert "https://api.stripe.com" in policy["connect-src"]


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", text):
            offenders.append(f"{path.name}: inline <script>")
        if re.search(r"\son[a-z]+\s*=\s*[\"']", text):
            offenders.append(f"{path.name}: inline event handler")
    assert offenders == []


def test_a_missing_page_is_the_sites_404_with_a_way_back(client: Client) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and 'href="/"' in html and "app.css" in html


def test_a_page_opened_with_the_wrong_method_is_the_sites_405_with_its_allow_header(client: Client) -> None:
    user = make_user("walker@example.com")
    client.force_login(user)
    response = client.get(reverse("logout"))
    assert response.status_code == 405
    assert "POST" in response["Allow"]
    html = response.content.decode()
    assert "cannot be opened that way" in html and 'href="/"' in html


def test_the_api_keeps_its_own_405(client: Client) -> None:
    response = client.get("/accounts/logout/", HTTP_ACCEPT="application/json")
    assert response.status_code == 405
    assert b"cannot be opened" not in response.content


@pytest.mark.parametrize("name", ["403.html", "404.html", "405.html", "500.html"])
def test_each_error_template_renders_without_a_request(name: str) -> None:
    from django.template.loader import render_to_string

    html = render_to_string(name)
    assert 'href="/"' in html and "Tunemarket" in html


def test_the_counting_preferences_version_can_be_read_back_on_the_page(client: Client) -> None:
    from tests.factories import make_group, make_round
    from training.services.submissions import preferences_submit

    admin = make_user("vera@example.com")
    group = make_group(admin=admin, name="Rubric Writers")
    round = make_round()
    preferences_submit(user=admin, group=group, round=round, kind="rubric",
                       payload={"phrases": [{"phrase": "in short", "weight": 2.0}, {"phrase": "as an AI", "weight": -3}]})
    client.force_login(admin)
    html = client.get(reverse("preferences_edit", kwargs={"slug": round.slug, "group_slug": group.slug})).content.decode()
    assert "current-version-contents" in html
    # The rubric box starts from the saved rubric, in the lines it was typed in.
    assert "in short, 2\nas an AI, -3</textarea>" in html
