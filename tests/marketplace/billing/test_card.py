"""The group's card on file: one Stripe customer per group, cards saved through SetupIntents, details for admins only."""

from __future__ import annotations

import json
import urllib.request

import pytest
from django.conf import settings
from django.urls import reverse

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.services import billing_card_attach, billing_card_attach_from_setup, billing_setup_start
from marketplace.core.errors import AppError, NotAllowed, NotFound
from marketplace.models import BillingCustomer
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def confirm_setup_like_stripe_js(client_secret: str, number: str = "4242424242424242") -> dict:
    """Do what the stand-in Stripe.js does in confirmCardSetup: confirm the SetupIntent with the publishable key."""
    seti = client_secret.split("_secret_")[0]
    body = {
        "key": settings.STRIPE_PUBLISHABLE_KEY,
        "use_stripe_sdk": True,
        "client_secret": client_secret,
        "payment_method_data": {
            "type": "card",
            "card": {"number": number, "exp_month": "4", "exp_year": "2031", "cvc": "123"},
            "billing_details": {"name": "Ada Admin"},
        },
    }
    request = urllib.request.Request(f"{settings.STRIPE_API_BASE}/v1/setup_intents/{seti}/confirm", data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def test_saving_a_test_card_creates_one_customer_and_keeps_only_display_details(localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    customer = billing_card_attach(group=group, by=admin, payment_method_id="pm_card_visa")
    again = billing_card_attach(group=group, by=admin, payment_method_id="pm_card_visa")

    assert BillingCustomer.objects.filter(group=group).count() == 1
    assert again.stripe_customer_id == customer.stripe_customer_id
    assert customer.stripe_customer_id.startswith("cus_")
    assert customer.payment_method_id.startswith("pm_") and customer.payment_method_id != "pm_card_visa"
    assert (customer.card_brand, customer.card_last4, customer.card_exp_month, customer.card_exp_year) == ("visa", "4242", 12, 2030)


def test_a_card_confirmed_in_the_browser_is_saved_from_its_setup_intent(localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    setup = billing_setup_start(group=group, by=admin)
    confirmed = confirm_setup_like_stripe_js(setup.client_secret, number="4000056655665556")
    assert confirmed["status"] == "succeeded"

    customer = billing_card_attach_from_setup(group=group, by=admin, setup_intent_id=setup.id)

    assert customer.card_last4 == "5556" and customer.card_exp_month == 4 and customer.card_exp_year == 2031
    card = gateway.card_attach(payment_method_id=customer.payment_method_id, customer_id=customer.stripe_customer_id)
    assert card.customer_id == customer.stripe_customer_id


def test_it_refuses_a_setup_intent_of_another_group(localstripe):
    admin = make_user()
    group, other = make_group(admin=admin), make_group(admin=admin)
    setup = billing_setup_start(group=other, by=admin)
    confirm_setup_like_stripe_js(setup.client_secret)

    with pytest.raises(AppError) as caught:
        billing_card_attach_from_setup(group=group, by=admin, setup_intent_id=setup.id)
    assert caught.value.code == "bad_setup_intent"
    assert not BillingCustomer.objects.get(group=group).has_card


def test_it_refuses_a_card_the_bank_declines_and_keeps_the_old_one(localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id="pm_card_visa")

    with pytest.raises(AppError) as caught:
        billing_card_attach(group=group, by=admin, payment_method_id="pm_card_visa_chargeDeclined")

    assert caught.value.code == "card_declined"
    assert "declined" in caught.value.message and "another card" in caught.value.message
    assert BillingCustomer.objects.get(group=group).card_last4 == "4242"


def test_only_admins_change_the_card_and_outsiders_are_told_nothing(localstripe):
    admin, member, outsider = make_user(), make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    with pytest.raises(NotAllowed):
        billing_card_attach(group=group, by=member, payment_method_id="pm_card_visa")
    with pytest.raises(NotFound):
        billing_card_attach(group=group, by=outsider, payment_method_id="pm_card_visa")
    assert not BillingCustomer.objects.filter(group=group).exists()


def test_the_billing_page_shows_card_details_to_admins_and_only_presence_to_members(client, group_with_card, group_admin):
    member = make_user()
    group_with_card.memberships.create(user=member, role="member")
    url = reverse("group_billing", kwargs={"slug": group_with_card.slug})

    client.force_login(group_admin)
    admin_page = client.get(url).content.decode()
    assert "4242" in admin_page and "12/2030" in admin_page and "Replace card" in admin_page

    client.force_login(member)
    member_page = client.get(url).content.decode()
    assert "has a card on file" in member_page
    assert "4242" not in member_page and "2030" not in member_page and "Replace card" not in member_page


def test_the_billing_page_is_a_404_for_outsiders(client, group_with_card):
    client.force_login(make_user())
    assert client.get(reverse("group_billing", kwargs={"slug": group_with_card.slug})).status_code == 404
    assert client.post(reverse("group_billing_setup", kwargs={"slug": group_with_card.slug})).status_code == 404


def test_the_card_form_loads_stripe_js_from_the_configured_address_and_saves_the_card(client, localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    client.force_login(admin)

    form = client.post(reverse("group_billing_setup", kwargs={"slug": group.slug}))
    html = form.content.decode()
    assert form.status_code == 200
    assert f'src="{localstripe.url}/js.stripe.com/v3/"' in html
    secret = html.split('data-client-secret="')[1].split('"')[0]
    assert secret.startswith("seti_")
    confirm_setup_like_stripe_js(secret)

    saved = client.post(
        reverse("group_billing_card", kwargs={"slug": group.slug}), {"setup_intent_id": secret.split("_secret_")[0]}, follow=True
    )
    assert "Card saved: Visa ending in 4242" in saved.content.decode()
    assert BillingCustomer.objects.get(group=group).card_last4 == "4242"


def test_members_cannot_open_the_card_form(client, group_with_card):
    member = make_user()
    group_with_card.memberships.create(user=member, role="member")
    client.force_login(member)
    assert client.post(reverse("group_billing_setup", kwargs={"slug": group_with_card.slug})).status_code == 403
