"""Replacing the saved payment method from /account: Stripe Checkout in setup mode, Mollie
with a verification payment paid back at once. The old method is revoked at its provider."""

from __future__ import annotations

import re

import requests
import sqlalchemy as sa

from magazine.db import db
from subscriptions.models import Mandate, MandateState
from tests.conftest import log_in
from tests.payments.conftest import read_payment


def provider_page(answer) -> str:
    assert answer.status_code == 200, answer.text
    return re.search(r'content="0;url=([^"]+)"', answer.text).group(1)


def mandates(app) -> list[tuple[str, str, MandateState]]:
    with app.app_context():
        return [(m.method, m.label, m.state) for m in
                db.session.scalars(sa.select(Mandate).order_by(Mandate.id))]


def test_stripe_card_replaced_by_a_sepa_mandate(app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe", save_method=True)
    requests.post(read_payment(app, payment_id).checkout_url,
                  data={"method": "card", "outcome": "succeed"}, allow_redirects=False,
                  timeout=5)
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    with app.app_context():
        card = db.session.scalar(sa.select(Mandate))
        card_ref, customer = card.mandate_ref, card.customer_ref

    url = provider_page(browser.post("/account/payment-methods/new",
                                     data={"provider": "stripe"}))
    back = requests.post(url, data={"method": "sepa_debit"}, allow_redirects=False, timeout=5)
    assert back.headers["Location"] == "http://localhost/account/payment-methods/new/done"
    done = browser.get("/account/payment-methods/new/done", follow_redirects=True)

    assert [(m, s) for m, _, s in mandates(app)] == [
        ("card", MandateState.REPLACED), ("sepa_debit", MandateState.VALID)]
    assert "IBAN •••• 6769" in done.text
    stripe_client = with_stripe.client()
    assert stripe_client.v1.payment_methods.retrieve(card_ref).customer is None  # detached
    # The new method is saved on the same Stripe customer.
    with app.app_context():
        assert db.session.scalars(sa.select(Mandate.customer_ref)).all() == [customer] * 2


def test_mollie_method_saved_with_a_verification_payment_paid_back(app, login_as,
                                                                   with_mollie):
    browser = login_as()

    url = provider_page(browser.post("/account/payment-methods/new",
                                     data={"provider": "mollie"}))
    reference = url.rsplit("/", 1)[1]
    with_mollie.set_status(reference, "paid", method="creditcard")
    browser.get("/account/payment-methods/new/done")
    again = browser.get("/account/payment-methods/new/done")  # nothing left to do

    assert [(m, s) for m, _, s in mandates(app)] == [("creditcard", MandateState.VALID)]
    assert with_mollie.payment(reference)["amount"] == {"currency": "EUR", "value": "0.02"}
    assert [r.amount for r in with_mollie.refunds.values()] == [2]
    assert again.status_code == 302


def test_unfinished_setup_keeps_the_old_method(app, with_mollie, buyer_order):
    _, payment_id, email = buyer_order("mollie", save_method=True)
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    browser = app.test_client()
    log_in(browser, email)

    provider_page(browser.post("/account/payment-methods/new", data={"provider": "mollie"}))
    done = browser.get("/account/payment-methods/new/done", follow_redirects=True)

    assert [(m, s) for m, _, s in mandates(app)] == [("directdebit", MandateState.VALID)]
    assert "IBAN •••• 6769" in done.text


def test_unknown_provider_for_a_new_method_is_refused(app, login_as, with_mollie):
    browser = login_as()

    answer = browser.post("/account/payment-methods/new", data={"provider": "paypal"})

    assert answer.status_code == 302 and mandates(app) == []
