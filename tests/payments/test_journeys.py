"""One browser journey per provider, through the stand-ins' hosted checkout pages: choose
the method at our checkout, pay on the provider's page, come back, see the subscription
active, the invoice, and the saved method on the account. Screenshots in tests/artifacts/."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from magazine.db import db
from magazine.roles import Role
from subscriptions.models import PlanKind
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import browser, live_server, page  # noqa: F401  (fixtures)
from tests.factories import DEFAULT_PASSWORD, make_issue, make_user
from tests.subscriptions.factories import make_plan

pytestmark = pytest.mark.browser


def shot(page, name: str) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"payments-{name}.png"), full_page=True)


def subscriber_at_checkout(app, page, provider: str) -> None:  # noqa: F811
    with app.app_context():
        make_issue(volume=4, number=3, print_date=date.today() + timedelta(days=30))
        make_plan(kind=PlanKind.DIGITAL, price_cents=3900, code="digitaal")
        user = make_user(roles={Role.SUBSCRIBER}, email=f"an.{provider}@example.be",
                         name="An Peeters")
        email = user.email
        db.session.remove()
    page.goto("/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("#password").press("Enter")
    page.wait_for_url("**/account")
    page.goto("/checkout?plan=digitaal")
    page.locator(f"input[name=provider][value={provider}]").check()
    page.locator("#save_method").check()
    shot(page, f"{provider}-checkout")
    page.locator("button[name=place]").click()


def back_home_and_active(page, provider: str, method_label: str) -> None:  # noqa: F811
    page.wait_for_url(re.compile(r".*/payments/\d+$"))
    assert "Bedankt, je betaling is binnen." in page.locator("main").inner_text() or \
        "payment is received" in page.locator("main").inner_text()
    shot(page, f"{provider}-return")
    page.get_by_role("link", name=re.compile("bestelling|order", re.I)).last.click()
    page.wait_for_url(re.compile(r".*/account/orders/\d+$"))
    invoice = page.locator("a[href$='.pdf']").first
    assert invoice.is_visible()
    shot(page, f"{provider}-order")
    page.goto("/account")
    text = page.locator("main").inner_text()
    assert re.search(r"actief|active", text, re.I), text
    assert method_label in text
    shot(page, f"{provider}-account")


def test_mollie_journey_bancontact_with_automatic_renewal(app, page, with_mollie):  # noqa: F811
    subscriber_at_checkout(app, page, "mollie")

    page.wait_for_url(f"{with_mollie.url}/checkout/*")
    page.get_by_label("Bancontact").check()
    page.get_by_label("Paid").check()
    shot(page, "mollie-hosted-page")
    page.get_by_role("button", name="Continue").click()

    back_home_and_active(page, "mollie", "IBAN •••• 6769")
    # Mollie's webhook reached the live app too (form post of the id only).
    assert with_mollie.webhooks_sent and with_mollie.webhooks_sent[0][2] == 200


def test_stripe_journey_card_with_automatic_renewal(app, page, with_stripe):  # noqa: F811
    subscriber_at_checkout(app, page, "stripe")

    page.wait_for_url(f"{with_stripe.url}/_checkout/*")
    page.get_by_label("Card", exact=True).check()
    page.get_by_label("Pay", exact=True).check()
    shot(page, "stripe-hosted-page")
    page.get_by_role("button", name="Continue").click()

    back_home_and_active(page, "stripe", "•••• 4242")


def test_coordinator_refunds_part_of_a_mollie_payment_in_the_back_office(
        app, page, with_mollie, buyer_order):  # noqa: F811
    order_id, payment_id, _ = buyer_order("mollie")
    with app.app_context():
        from subscriptions.models import Payment

        ref = db.session.get(Payment, payment_id).provider_ref
        make_user(roles={Role.COORDINATOR}, email="coordinator@example.be")
        db.session.remove()
    with_mollie.set_status(ref, "paid", method="bancontact")
    with_mollie.send_webhook(ref, via=app.test_client())
    page.goto("/login")
    page.locator("#email").fill("coordinator@example.be")
    page.locator("#password").fill(DEFAULT_PASSWORD)
    with page.expect_navigation():
        page.locator("#password").press("Enter")

    page.goto(f"/business/subscriptions/orders/{order_id}")
    page.locator("#amount").fill("15,00")
    page.locator("#reason").fill("Nummer beschadigd aangekomen")
    shot(page, "office-refund-form")
    page.locator("#reason").press("Enter")
    page.wait_for_load_state()

    text = page.locator("main").inner_text()
    assert "CN" in text and "15,00" in text, text
    assert next(iter(with_mollie.refunds.values())).amount == 1500
    shot(page, "office-refunded")
