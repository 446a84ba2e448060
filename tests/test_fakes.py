"""The contract of the payment providers' stand-ins: the real SDKs, over real HTTP.

If one of these fails after an SDK or localstripe upgrade, the stand-in no longer behaves
like the provider where our payments code relies on it; fix the stand-in first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import stripe
from mollie.api.error import (
    NotFoundError,
    RequestError,
    ResponseError,
    ResponseHandlingError,
    UnauthorizedError,
    UnprocessableEntityError,
)

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
DECLINING_CARD = {**CARD, "number": "4000000000000341"}
AUTHENTICATING_CARD = {**CARD, "number": "4000002500003155"}
IBAN = "BE71096123456769"
WEBHOOK_SECRET = "whsec_magazine_test"


def eur(value: str) -> dict[str, str]:
    return {"currency": "EUR", "value": value}


# ---- Stripe: localstripe ------------------------------------------------------------------


def stripe_customer_with(client: stripe.StripeClient, *methods: dict) -> tuple[str, list[str]]:
    customer = client.v1.customers.create(params={"email": "an@example.be", "name": "An"})
    ids = []
    for params in methods:
        method = client.v1.payment_methods.create(params=params)
        client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        ids.append(method.id)
    return customer.id, ids


def test_stripe_customer_gets_a_card_and_a_sepa_debit_payment_method(localstripe):
    client = localstripe.client()

    customer_id, (card_id, sepa_id) = stripe_customer_with(
        client, {"type": "card", "card": CARD},
        {"type": "sepa_debit", "sepa_debit": {"iban": IBAN}})

    cards = client.v1.payment_methods.list(params={"customer": customer_id, "type": "card"})
    assert [m.id for m in cards.data] == [card_id]
    assert cards.data[0].card.last4 == "4242"
    sepa = client.v1.payment_methods.retrieve(sepa_id)
    assert (sepa.customer, sepa.sepa_debit.country, sepa.sepa_debit.last4) == (
        customer_id, "BE", "6769")


def test_stripe_payment_intents_on_session_then_off_session(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})

    first = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": card_id,
        "confirm": True, "setup_future_usage": "off_session", "description": "Order 12",
        "metadata": {"order": "12"}, "return_url": "http://localhost/return"})
    renewal = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": card_id,
        "confirm": True, "off_session": True, "metadata": {"subscription": "3"}})

    assert (first.status, first.setup_future_usage, first.metadata.order) == (
        "succeeded", "off_session", "12")
    assert renewal.status == "succeeded"
    assert client.v1.payment_intents.retrieve(renewal.id).amount == 6500


def test_stripe_declining_card_raises_card_error(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client,
                                                   {"type": "card", "card": DECLINING_CARD})

    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(params={
            "amount": 6500, "currency": "eur", "customer": customer_id,
            "payment_method": card_id, "confirm": True, "off_session": True})

    assert declined.value.code == "card_declined"


def test_stripe_off_session_charge_needing_authentication_fails_as_at_stripe(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client,
                                                   {"type": "card", "card": AUTHENTICATING_CARD})

    on_session = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": card_id,
        "confirm": True})
    with pytest.raises(stripe.CardError) as needs_customer:
        client.v1.payment_intents.create(params={
            "amount": 6500, "currency": "eur", "customer": customer_id,
            "payment_method": card_id, "confirm": True, "off_session": True})

    assert on_session.status == "requires_action"
    assert needs_customer.value.code == "authentication_required"
    intent = needs_customer.value.error.payment_intent
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def test_stripe_sepa_debit_is_processing_until_the_bank_answers(localstripe, webhook_receiver):
    localstripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    client = localstripe.client()
    customer_id, (sepa_id,) = stripe_customer_with(
        client, {"type": "sepa_debit", "sepa_debit": {"iban": IBAN}})

    intent = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": sepa_id,
        "payment_method_types": ["sepa_debit"], "confirm": True, "off_session": True})

    assert intent.status == "processing"
    webhook_receiver.wait_for(lambda hook: intent.id in hook.text
                              and "payment_intent.succeeded" in hook.text)
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_stripe_setup_intent_saves_a_card_for_later(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})

    setup = client.v1.setup_intents.create(params={"customer": customer_id,
                                                   "usage": "off_session"})
    confirmed = client.v1.setup_intents.confirm(setup.id, params={"payment_method": card_id})

    assert (confirmed.status, confirmed.payment_method) == ("succeeded", card_id)


def test_stripe_partial_refund_and_a_refund_beyond_what_is_left(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})
    intent = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": card_id,
        "confirm": True})

    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1500,
                                              "reason": "requested_by_customer"})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 5001})
    rest = client.v1.refunds.create(params={"payment_intent": intent.id})

    assert (refund.status, refund.amount, refund.reason) == (
        "succeeded", 1500, "requested_by_customer")
    assert too_much.value.code == "amount_too_large"
    assert rest.amount == 5000
    charge = client.v1.charges.retrieve(intent.latest_charge.id)
    assert (charge.amount_refunded, charge.refunded) == (6500, True)


def test_stripe_events_arrive_signed_and_verify_with_the_sdk(localstripe, webhook_receiver):
    localstripe.register_webhook("app", f"{webhook_receiver.url}/webhooks/stripe",
                                 WEBHOOK_SECRET)
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})
    intent = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": customer_id, "payment_method": card_id,
        "confirm": True})
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})

    hook = webhook_receiver.wait_for(lambda h: b'"payment_intent.succeeded"' in h.body)
    event = stripe.Webhook.construct_event(hook.body, hook.headers["Stripe-Signature"],
                                           WEBHOOK_SECRET)
    refunded = webhook_receiver.wait_for(lambda h: b'"charge.refunded"' in h.body)

    assert hook.path == "/webhooks/stripe"
    assert (event.type, event.data.object.id) == ("payment_intent.succeeded", intent.id)
    assert json.loads(refunded.body)["data"]["object"]["amount_refunded"] == 500
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(hook.body, hook.headers["Stripe-Signature"],
                                       "whsec_someone_else")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(hook.body.replace(b"6500", b"1"),
                                       hook.headers["Stripe-Signature"], WEBHOOK_SECRET)


def test_stripe_same_idempotency_key_charges_once(localstripe):
    client = localstripe.client()
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})
    params = {"amount": 6500, "currency": "eur", "customer": customer_id,
              "payment_method": card_id, "confirm": True, "off_session": True}

    first = client.v1.payment_intents.create(params=params,
                                             options={"idempotency_key": "sub-3-term-2-try-1"})
    again = client.v1.payment_intents.create(params=params,
                                             options={"idempotency_key": "sub-3-term-2-try-1"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(params={**params, "amount": 100},
                                         options={"idempotency_key": "sub-3-term-2-try-1"})

    assert first.id == again.id
    assert len(client.v1.payment_intents.list().data) == 1


def test_stripe_down_or_slow_surfaces_as_sdk_errors_and_a_retry_charges_once(localstripe):
    client = localstripe.client(timeout=0.5)
    customer_id, (card_id,) = stripe_customer_with(client, {"type": "card", "card": CARD})
    params = {"amount": 6500, "currency": "eur", "customer": customer_id,
              "payment_method": card_id, "confirm": True, "off_session": True}

    localstripe.fail_next(1, status=503)
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})
    localstripe.hang_next(1, seconds=1.5, after_processing=True)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})
    retried = client.v1.payment_intents.create(params=params, options={"idempotency_key": "k-1"})

    assert retried.status == "succeeded"
    assert [i.id for i in client.v1.payment_intents.list().data] == [retried.id]


# Checkout Sessions are not in localstripe: tests/fakes/localstripe_server.py adds them.


def checkout_session(client: stripe.StripeClient, **extra):
    params = {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": {
            "currency": "eur", "unit_amount": 6500,
            "product_data": {"name": "Kinderopvang Magazine, 1 year"}}}],
        "payment_method_types": ["card", "bancontact"],
        "success_url": "http://localhost/pay/return?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://localhost/pay/cancel",
        "client_reference_id": "order-12",
        "customer_email": "an@example.be",
        "metadata": {"order_id": "12"},
        "payment_intent_data": {"setup_future_usage": "off_session",
                                "metadata": {"order_id": "12"}},
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)


def test_stripe_checkout_session_paid_by_card_returns_and_notifies(localstripe,
                                                                   webhook_receiver):
    localstripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    client = localstripe.client()
    session = checkout_session(client)

    page = requests.get(session.url, timeout=5)
    answer = requests.post(session.url, data={"method": "card", "outcome": "succeed"},
                           allow_redirects=False, timeout=5)

    assert session.status == "open" and session.amount_total == 6500
    assert page.status_code == 200 and "Bancontact" in page.text
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"http://localhost/pay/return?session={session.id}"
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status, done.client_reference_id) == (
        "complete", "paid", "order-12")
    intent = client.v1.payment_intents.retrieve(done.payment_intent)
    assert (intent.status, intent.amount, intent.setup_future_usage) == (
        "succeeded", 6500, "off_session")
    saved = client.v1.payment_methods.list(params={"customer": done.customer, "type": "card"})
    assert len(saved.data) == 1
    hook = webhook_receiver.wait_for(lambda h: b'"checkout.session.completed"' in h.body)
    event = stripe.Webhook.construct_event(hook.body, hook.headers["Stripe-Signature"],
                                           WEBHOOK_SECRET)
    assert event.data.object.id == session.id


def test_stripe_checkout_bancontact_leaves_a_sepa_debit_method_for_renewals(localstripe):
    client = localstripe.client()
    session = checkout_session(client)

    requests.post(session.url, data={"method": "bancontact"}, allow_redirects=False, timeout=5)

    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_status == "paid"
    sepa = client.v1.payment_methods.list(params={"customer": done.customer,
                                                  "type": "sepa_debit"}).data
    assert [m.sepa_debit.country for m in sepa] == ["BE"]
    renewal = client.v1.payment_intents.create(params={
        "amount": 6500, "currency": "eur", "customer": done.customer,
        "payment_method": sepa[0].id, "payment_method_types": ["sepa_debit"],
        "confirm": True, "off_session": True})
    assert renewal.status == "processing"


def test_stripe_checkout_declined_card_stays_on_the_page(localstripe):
    client = localstripe.client()
    session = checkout_session(client)

    answer = requests.post(session.url, data={"method": "card", "outcome": "decline"},
                           allow_redirects=False, timeout=5)

    assert answer.status_code == 402 and "declined" in answer.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_stripe_checkout_cancel_expire_and_setup_mode(localstripe):
    client = localstripe.client()
    customer = client.v1.customers.create(params={"email": "an@example.be"})
    to_cancel, to_expire = checkout_session(client), checkout_session(client)
    setup = client.v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer.id, "currency": "eur",
        "payment_method_types": ["sepa_debit"], "success_url": "http://localhost/ok"})

    cancel = requests.post(to_cancel.url, data={"outcome": "cancel"}, allow_redirects=False,
                           timeout=5)
    expired = client.v1.checkout.sessions.expire(to_expire.id)
    requests.post(setup.url, data={"method": "sepa_debit"}, allow_redirects=False, timeout=5)

    assert cancel.headers["Location"] == "http://localhost/pay/cancel"
    assert expired.status == "expired"
    saved = client.v1.checkout.sessions.retrieve(setup.id)
    assert (saved.status, saved.payment_status) == ("complete", "no_payment_required")
    assert client.v1.setup_intents.retrieve(saved.setup_intent).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError, match="price_data"):
        client.v1.checkout.sessions.create(params={
            "mode": "payment", "success_url": "http://localhost/ok",
            "line_items": [{"price": "price_123", "quantity": 1}]})


def test_localstripe_keeps_nothing_in_the_shared_tmp_pickle(localstripe):
    shared = Path("/tmp/localstripe.pickle")
    before = shared.stat().st_mtime_ns if shared.exists() else None

    localstripe.client().v1.customers.create(params={"email": "an@example.be"})

    assert (shared.stat().st_mtime_ns if shared.exists() else None) == before


def test_localstripe_reset_forgets_everything(localstripe):
    client = localstripe.client()
    client.v1.customers.create(params={"email": "an@example.be"})

    localstripe.reset()

    assert client.v1.customers.list().data == []


# ---- Mollie: our fake ---------------------------------------------------------------------


def first_payment_data(customer_id: str, webhook_url: str, **extra) -> dict:
    return {
        "amount": eur("65.00"), "description": "Kinderopvang Magazine, 1 year",
        "redirectUrl": "http://localhost/pay/return/12", "webhookUrl": webhook_url,
        "method": "bancontact", "sequenceType": "first", "customerId": customer_id,
        "metadata": {"order_id": 12}, **extra,
    }


def paid_first_payment(mollie_fake, webhook_url: str = "http://localhost/webhooks/mollie"):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An Peeters", "email": "an@example.be"})
    payment = client.payments.create(first_payment_data(customer.id, webhook_url))
    mollie_fake.set_status(payment.id, "paid")
    return client, customer, client.payments.get(payment.id)


def test_mollie_first_payment_with_an_idempotency_key_is_created_once(mollie_fake):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An Peeters", "email": "an@example.be"})
    data = first_payment_data(customer.id, "http://localhost/webhooks/mollie")

    first = client.payments.create(data, idempotency_key="order-12-attempt-1")
    again = client.payments.create(data, idempotency_key="order-12-attempt-1")
    with pytest.raises(UnprocessableEntityError):
        client.payments.create({**data, "amount": eur("1.00")},
                               idempotency_key="order-12-attempt-1")

    assert first.id == again.id and first.id.startswith("tr_")
    assert mollie_fake.payments_created == 1
    assert first.is_open() and not first.is_paid()
    assert first.checkout_url == f"{mollie_fake.url}/checkout/{first.id}"
    assert (first.amount, first.sequence_type, first.customer_id, first.metadata) == (
        eur("65.00"), "first", customer.id, {"order_id": 12})
    assert first.get_customer().email == "an@example.be"
    creates = [call for call in mollie_fake.calls if call.path == "/v2/payments"]
    assert [(c.idempotency_key, c.status, c.replayed) for c in creates] == [
        ("order-12-attempt-1", 201, False), ("order-12-attempt-1", 201, True),
        ("order-12-attempt-1", 422, False)]


def test_mollie_paid_first_payment_leaves_a_mandate_for_recurring_payments(mollie_fake):
    client, customer, payment = paid_first_payment(mollie_fake)

    mandate = payment.get_mandate()
    renewal = client.payments.create({
        "amount": eur("65.00"), "description": "Renewal, term 2", "sequenceType": "recurring",
        "customerId": customer.id, "mandateId": mandate.id,
        "webhookUrl": "http://localhost/webhooks/mollie"}, idempotency_key="sub-3-term-2-try-1")

    assert payment.is_paid() and payment.paid_at and payment.status == "paid"
    assert payment.method == "bancontact" and payment.details["consumerAccount"]
    assert (mandate.id, mandate.status, mandate.method) == (
        payment.mandate_id, "valid", "directdebit")
    assert mandate.get_customer().id == customer.id
    assert [m.id for m in customer.mandates.list()] == [mandate.id]
    assert (renewal.status, renewal.method, renewal.mandate_id) == (
        "pending", "directdebit", mandate.id)
    assert renewal.checkout_url is None
    mollie_fake.set_status(renewal.id, "paid")
    assert client.payments.get(renewal.id).is_paid()
    assert [p.id for p in customer.payments.list()] == [renewal.id, payment.id]


def test_mollie_card_first_payment_leaves_a_card_mandate(mollie_fake):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An Peeters"})
    payment = client.payments.create(
        first_payment_data(customer.id, "http://localhost/h", method=None))

    mollie_fake.set_status(payment.id, "paid", method="creditcard")

    mandate = client.payments.get(payment.id).get_mandate()
    assert (mandate.method, mandate.details["cardLabel"]) == ("creditcard", "Mastercard")


def test_mollie_recurring_outcome_and_failure_reason_can_be_set(mollie_fake):
    client, customer, _ = paid_first_payment(mollie_fake)
    mollie_fake.recurring_status = "failed"
    mollie_fake.recurring_failure_reason = "AM04"

    renewal = client.payments.create({"amount": eur("65.00"), "description": "Renewal",
                                      "sequenceType": "recurring", "customerId": customer.id})

    assert renewal.is_failed() and renewal.failed_at
    assert renewal.details["bankReasonCode"] == "AM04"


def test_mollie_revoked_mandate_cannot_be_charged(mollie_fake):
    client, customer, payment = paid_first_payment(mollie_fake)

    customer.mandates.delete(payment.mandate_id)

    assert customer.mandates.get(payment.mandate_id).status == "invalid"
    with pytest.raises(UnprocessableEntityError) as refused:
        client.payments.create({"amount": eur("65.00"), "description": "Renewal",
                                "sequenceType": "recurring", "customerId": customer.id,
                                "mandateId": payment.mandate_id})
    assert refused.value.field == "mandateId"


def test_mollie_partial_refund_lowers_the_amount_remaining(mollie_fake):
    client, _, payment = paid_first_payment(mollie_fake)

    refund = payment.refunds.create({"amount": eur("15.00"), "description": "Credit note 7"})
    with pytest.raises(UnprocessableEntityError) as too_much:
        payment.refunds.create({"amount": eur("50.01")})

    after = client.payments.get(payment.id)
    assert refund.id.startswith("re_") and refund.status == "pending"
    assert (after.amount_refunded, after.amount_remaining) == (eur("15.00"), eur("50.00"))
    assert after.has_refunds() and after.can_be_refunded()
    assert too_much.value.field == "amount"
    assert [r.id for r in after.refunds.list()] == [refund.id]
    assert after.refunds.get(refund.id).amount == eur("15.00")
    mollie_fake.set_refund_status(refund.id, "refunded")
    assert after.refunds.get(refund.id).is_refunded()


def test_mollie_unpaid_payment_cannot_be_refunded(mollie_fake):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An"})
    payment = client.payments.create(first_payment_data(customer.id, "http://localhost/h"))

    assert not payment.can_be_refunded()
    with pytest.raises(UnprocessableEntityError):
        payment.refunds.create({"amount": eur("1.00")})


def test_mollie_chargeback_shows_on_the_payment(mollie_fake):
    client, _, payment = paid_first_payment(mollie_fake)

    chargeback_id = mollie_fake.trigger_chargeback(payment.id, 6500, reason_code="MD06")

    after = client.payments.get(payment.id)
    chargebacks = list(after.chargebacks.list())
    assert [c.id for c in chargebacks] == [chargeback_id]
    assert chargebacks[0].amount == eur("65.00") and chargebacks[0].reason["code"] == "MD06"
    assert after.has_chargebacks() and after.amount_chargedback == eur("65.00")
    assert after.amount_remaining == eur("0.00")


def test_mollie_down_or_slow_surfaces_as_sdk_errors_and_a_retry_charges_once(mollie_fake):
    client = mollie_fake.client(timeout=(1, 0.3))
    customer = client.customers.create({"name": "An"})
    data = first_payment_data(customer.id, "http://localhost/h")

    mollie_fake.fail_next(1, status=500)
    with pytest.raises(ResponseError) as failed:
        client.payments.create(data, idempotency_key="order-12-attempt-1")
    mollie_fake.fail_next(1, status=502, raw="<html>Bad gateway</html>")
    with pytest.raises(ResponseHandlingError):
        client.payments.create(data, idempotency_key="order-12-attempt-1")
    mollie_fake.hang_next(1, seconds=1)
    with pytest.raises(RequestError):
        client.payments.create(data, idempotency_key="order-12-attempt-1")
    assert mollie_fake.payments_created == 0

    mollie_fake.hang_next(1, seconds=1, after_processing=True)
    with pytest.raises(RequestError):
        client.payments.create(data, idempotency_key="order-12-attempt-1")
    retried = client.payments.create(data, idempotency_key="order-12-attempt-1")

    assert failed.value.status == 500
    assert mollie_fake.payments_created == 1
    assert retried.id in mollie_fake.payments


def test_mollie_webhook_posts_only_the_payment_id(mollie_fake, webhook_receiver):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An"})
    payment = client.payments.create(
        first_payment_data(customer.id, f"{webhook_receiver.url}/webhooks/mollie?x=1"))

    mollie_fake.set_status(payment.id, "paid", notify=True)

    hook = webhook_receiver.wait_for()
    assert (hook.path, hook.form, hook.body) == ("/webhooks/mollie", {"id": payment.id},
                                                 f"id={payment.id}".encode())
    assert mollie_fake.webhooks_sent == [(payment.id, payment.webhook_url, 200)]


def test_mollie_webhook_can_go_to_a_flask_test_client(mollie_fake):
    from flask import Flask, request

    app = Flask(__name__)
    seen = []

    @app.post("/webhooks/mollie")
    def mollie_webhook():
        seen.append(dict(request.form))
        return ""

    client = mollie_fake.client()
    customer = client.customers.create({"name": "An"})
    payment = client.payments.create(
        first_payment_data(customer.id, "http://localhost/webhooks/mollie"))

    assert mollie_fake.send_webhook(payment.id, via=app.test_client()) == 200
    assert seen == [{"id": payment.id}]


def test_mollie_checkout_page_pays_notifies_and_returns(mollie_fake, webhook_receiver):
    client = mollie_fake.client()
    customer = client.customers.create({"name": "An"})
    payment = client.payments.create(first_payment_data(
        customer.id, f"{webhook_receiver.url}/webhooks/mollie", method=["bancontact", "kbc"]))

    page = requests.get(payment.checkout_url, timeout=5)
    answer = requests.post(payment.checkout_url, data={"method": "kbc", "status": "paid"},
                           allow_redirects=False, timeout=5)

    assert page.status_code == 200 and "KBC/CBC Payment Button" in page.text
    assert (answer.status_code, answer.headers["Location"]) == (
        303, "http://localhost/pay/return/12")
    assert webhook_receiver.wait_for().form == {"id": payment.id}
    paid = client.payments.get(payment.id)
    assert paid.is_paid() and paid.method == "kbc" and paid.checkout_url is None


def test_mollie_methods_for_first_and_recurring_payments(mollie_fake):
    client = mollie_fake.client()

    first = [m.id for m in client.methods.list(sequenceType="first")]
    recurring = [m.id for m in client.methods.list(sequenceType="recurring",
                                                   amount=eur("65.00"))]
    mollie_fake.disabled_methods.add("kbc")

    assert first == ["bancontact", "ideal", "kbc", "belfius", "creditcard"]
    assert recurring == ["creditcard", "directdebit"]
    assert "kbc" not in [m.id for m in client.methods.list()]
    assert client.methods.get("ideal").description == "iDEAL"


def test_mollie_errors_are_shaped_like_mollie_s(mollie_fake):
    client = mollie_fake.client()

    with pytest.raises(NotFoundError) as missing:
        client.payments.get("tr_doesnotexist")
    with pytest.raises(UnprocessableEntityError) as bad_amount:
        client.payments.create({"amount": {"currency": "EUR", "value": "65"},
                                "description": "x", "redirectUrl": "http://localhost/r"})
    with pytest.raises(UnprocessableEntityError) as first_without_customer:
        client.payments.create({"amount": eur("65.00"), "description": "x",
                                "redirectUrl": "http://localhost/r", "sequenceType": "first"})
    stranger = mollie_fake.client()
    stranger.set_api_key("test_someoneelsesapikey0000000000")
    with pytest.raises(UnauthorizedError):
        stranger.payments.list()

    assert missing.value.status == 404 and "tr_doesnotexist" in str(missing.value)
    assert bad_amount.value.field == "amount.value"
    assert first_without_customer.value.field == "customerId"
    raw = requests.get(f"{mollie_fake.url}/v2/payments/tr_x", timeout=5,
                       headers={"Authorization": f"Bearer {mollie_fake.api_key}"})
    assert raw.headers["Content-Type"] == "application/hal+json"
    assert raw.json()["status"] == 404 and raw.json()["title"] == "Not Found"


def test_mollie_lists_page_newest_first(mollie_fake):
    client = mollie_fake.client()
    created = [client.payments.create({"amount": eur("1.00"), "description": f"p{i}",
                                       "redirectUrl": "http://localhost/r"}).id
               for i in range(3)]

    page = client.payments.list(limit=2)
    rest = page.get_next()

    assert [p.id for p in page] == created[:0:-1]
    assert [p.id for p in rest] == created[:1] and not rest.has_next()


def test_mollie_cancel_and_expire_open_payments(mollie_fake):
    client = mollie_fake.client()
    data = {"amount": eur("65.00"), "description": "x", "redirectUrl": "http://localhost/r"}
    to_cancel, to_expire = client.payments.create(data), client.payments.create(data)

    canceled = client.payments.delete(to_cancel.id)
    mollie_fake.set_status(to_expire.id, "expired")

    assert canceled.is_canceled() and canceled.canceled_at
    expired = client.payments.get(to_expire.id)
    assert expired.is_expired() and expired.expired_at and not expired.is_paid()


def test_mollie_fake_answers_fast(mollie_fake):
    client = mollie_fake.client()
    started = time.monotonic()

    for _ in range(50):
        client.methods.list()

    assert time.monotonic() - started < 5


def test_fakes_listen_on_loopback_only(localstripe, mollie_fake):
    assert localstripe.url.startswith("http://127.0.0.1:")
    assert mollie_fake.url.startswith("http://127.0.0.1:")
