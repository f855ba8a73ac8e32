"""What a person does on the site, one function per step, written with Playwright's sync API.

Each step asserts what the person sees when it is done (the message after the action), so a test reads as a story
and a broken page fails at the step that broke.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

# localstripe's stand-in Stripe.js renders plain <input>s; the card form's script names each (data-stand-in, aria-label).
CARD_OK = "4242424242424242"
# Attaches fine, but every charge or hold on it is declined (localstripe's list, as on real Stripe).
CARD_CHARGE_DECLINED = "4000000000000341"
# Declined as soon as it is attached to a customer (Stripe's generic decline card).
CARD_DECLINED = "4000000000000002"


def sign_up(page: Page, email: str, *, first_name: str = "", screenshot=None, shot_name: str = "") -> None:
    if "/accounts/signup/" not in page.url:
        page.goto("/accounts/signup/")
    page.get_by_label("E-mail", exact=True).fill(email)
    if first_name:
        page.get_by_label("First name", exact=True).fill(first_name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again", exact=True).fill(PASSWORD)
    if screenshot and shot_name:
        screenshot(page, shot_name)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator(".messages")).to_contain_text("Check your inbox")
    # The live server runs in this process, so the confirmation e-mail is in Django's test outbox.
    from django.core import mail

    sent = [m for m in mail.outbox if m.to == [email.lower()] and "/accounts/verify/" in m.body]
    assert sent, f"no confirmation e-mail was sent to {email}"
    link = re.search(r"https?://\S+/accounts/verify/\S+/", sent[-1].body).group(0)
    page.goto("/accounts/verify/" + link.split("/accounts/verify/", 1)[1])
    expect(page.locator(".messages")).to_contain_text("Welcome! Your account is ready.")


def log_in(page: Page, email: str, *, next_path: str = "") -> None:
    page.goto("/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Log in").click()
    expect(page.locator(".nav-user")).to_have_text(email)


def create_group(page: Page, name: str, *, description: str = "") -> str:
    """Create a group from the "new group" page; returns its slug."""
    page.goto("/groups/new/")
    page.get_by_label("Name", exact=True).fill(name)
    if description:
        page.get_by_label("Description", exact=True).fill(description)
    page.get_by_role("button", name="Create group").click()
    expect(page.locator(".messages")).to_contain_text(f"Group “{name}” created.")
    match = re.search(r"/groups/([^/]+)/$", page.url)
    assert match, f"creating a group should land on the group's page, not {page.url}"
    return match.group(1)


def create_invitation_link(page: Page, group_slug: str) -> str:
    """As a group admin, create a shareable member invitation; returns the link the page shows once."""
    page.goto(f"/groups/{group_slug}/members/")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_test_id("invitation-link")
    expect(link).to_be_visible()
    return link.inner_text().strip()


def add_card(page: Page, group_slug: str, number: str, *, name: str = "Ada Admin", screenshot=None, shot_name: str = "") -> None:
    """Open the card form from the billing page and fill localstripe's stand-in card element, then save."""
    page.goto(f"/groups/{group_slug}/billing/")
    page.locator("main").get_by_role("button", name=re.compile(r"^(Add a card|Replace card)$")).click()
    card = page.get_by_test_id("card-element")
    expect(card.locator("input[data-stand-in=number]")).to_be_visible()
    page.get_by_label("Name on the card").fill(name)
    card.locator("input[data-stand-in=number]").fill(number)
    card.locator("input[data-stand-in=exp_month]").fill("12")
    card.locator("input[data-stand-in=exp_year]").fill("34")
    card.locator("input[data-stand-in=cvc]").fill("123")
    card.locator("input[data-stand-in=postal_code]").fill("75001")
    if screenshot and shot_name:
        screenshot(page, shot_name)
    page.get_by_role("button", name="Save card").click()


def upload_pairs(page: Page, round_slug: str, group_slug: str, *, filename: str, content: bytes) -> None:
    page.goto(f"/rounds/{round_slug}/groups/{group_slug}/preferences/")
    page.get_by_label("Preference pairs (JSONL or CSV)").set_input_files(
        files=[{"name": filename, "mimeType": "application/jsonl", "buffer": content}]
    )
    page.get_by_role("button", name="Upload pairs").click()


def pairs_jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def place_bid(page: Page, round_slug: str, group_slug: str, amount: str) -> None:
    page.goto(f"/rounds/{round_slug}/groups/{group_slug}/bid/")
    page.get_by_role("textbox", name="Your group's bid").fill(amount)
    page.locator("main").get_by_role("button", name=re.compile(r"^(Place bid|Change bid)$")).click()
