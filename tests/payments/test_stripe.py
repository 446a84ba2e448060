"""Stripe payments over HTTP: the real stripe SDK against localstripe, with the Checkout
Sessions, idempotency and refund checks it lacks added by our stand-in
(tests/fakes/localstripe_server.py). Webhooks are the events localstripe really signs,
caught by a receiver and replayed to our endpoint in the order a test needs."""

from __future__ import annotations

import json
import time

import requests
import sqlalchemy as sa

from magazine.db import db
from magazine.models import AuditEvent
from magazine.roles import Role
from subscriptions import payments
from subscriptions.models import Mandate, Order, Payment, ProviderEvent
from subscriptions.providers.base import ChargeOutcome
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.conftest import log_in
from tests.payments.conftest import WEBHOOK_SECRET, count, read_payment


def pay_on_stripe_page(payment, method: str = "card", outcome: str = "succeed"):
    return requests.post(payment.checkout_url, data={"method": method, "outcome": outcome},
                         allow_redirects=False, timeout=5)


def post_event(client, hook):
    return client.post("/webhooks/stripe", data=hook.body, headers={
        "Stripe-Signature": hook.headers["Stripe-Signature"],
        "Content-Type": "application/json"})


def event_type(hook) -> str:
    return json.loads(hook.body)["type"]


def test_order_with_stripe_goes_to_stripe_checkout(app, with_stripe, buyer_order):
    order_id, payment_id, _ = buyer_order("stripe")

    payment = read_payment(app, payment_id)
    session = with_stripe.client().v1.checkout.sessions.retrieve(payment.provider_ref)
    assert payment.checkout_url == session.url and session.url.startswith(with_stripe.url)
    assert session.amount_total == 6500 and session.currency == "eur"
    assert session.payment_method_types == ["card", "bancontact", "sepa_debit"]
    assert session.metadata.to_dict() == {"payment_id": str(payment_id),
                                          "order_id": str(order_id)}
    assert session.success_url == f"http://localhost/payments/{payment_id}"


def test_stripe_webhook_with_a_bad_or_missing_signature_is_refused(app, client, with_stripe,
                                                                   webhook_receiver,
                                                                   buyer_order):
    with_stripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    _, payment_id, _ = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    hook = webhook_receiver.wait_for(
        lambda h: b'"checkout.session.completed"' in h.body)
    header = hook.headers["Stripe-Signature"]

    forged = client.post("/webhooks/stripe", data=hook.body,
                         headers={"Stripe-Signature": header.replace("v1=", "v1=0")})
    missing = client.post("/webhooks/stripe", data=hook.body)
    altered = client.post("/webhooks/stripe", data=hook.body.replace(b"6500", b"1"),
                          headers={"Stripe-Signature": header})

    assert (forged.status_code, missing.status_code, altered.status_code) == (400, 400, 400)
    assert read_payment(app, payment_id).state == PaymentState.OPEN
    assert count(app, sa.select(ProviderEvent)) == 0


def test_signed_checkout_event_confirms_the_payment_once(app, client, with_stripe,
                                                         webhook_receiver, buyer_order):
    with_stripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    _, payment_id, _ = buyer_order("stripe")

    page = pay_on_stripe_page(read_payment(app, payment_id))
    hook = webhook_receiver.wait_for(lambda h: b'"checkout.session.completed"' in h.body)
    first, again = post_event(client, hook), post_event(client, hook)

    assert page.status_code == 303
    assert page.headers["Location"] == f"http://localhost/payments/{payment_id}"
    assert (first.status_code, first.text) == (200, "applied")
    assert (again.status_code, again.text) == (200, "duplicate")
    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID and payment.intent_ref.startswith("pi_")
    assert [s.state for s in payment.order.subscriptions] == [SubscriptionState.ACTIVE]
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_refund_reported_before_the_success_is_applied_once(app, with_stripe, webhook_receiver,
                                                           buyer_order):
    """Out of order: the dashboard refund's event arrives before the checkout's."""
    with_stripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    _, payment_id, _ = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    stripe_client = with_stripe.client()
    session = stripe_client.v1.checkout.sessions.retrieve(
        read_payment(app, payment_id).provider_ref)
    stripe_client.v1.refunds.create(params={"payment_intent": session.payment_intent,
                                            "amount": 2000})
    refunded = webhook_receiver.wait_for(lambda h: b'"charge.refunded"' in h.body)
    completed = webhook_receiver.wait_for(lambda h: b'"checkout.session.completed"' in h.body)

    answers = [post_event(app.test_client(), hook).status_code
               for hook in (refunded, completed, refunded, completed)]

    assert answers == [200, 200, 200, 200]
    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID
    assert payment.order.state == OrderState.PAID
    assert [r.amount_cents for r in payment.refunds] == [2000]
    assert [n.total_cents for n in payment.order.invoice.credit_notes] == [2000]
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_sepa_debit_waits_for_the_bank_then_is_paid(app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe")
    browser = app.test_client()
    log_in(browser, email)
    pay_on_stripe_page(read_payment(app, payment_id), method="sepa_debit")

    waiting = browser.get(f"/payments/{payment_id}")
    assert read_payment(app, payment_id).state == PaymentState.PENDING
    assert "js/payment-status.js" in waiting.text
    time.sleep(1)  # the stand-in's bank answers after 0.5 s
    paid = browser.get(f"/payments/{payment_id}")

    assert read_payment(app, payment_id).state == PaymentState.PAID
    assert "js/payment-status.js" not in paid.text


def test_stripe_slow_at_checkout_then_retry_makes_one_session(app, with_stripe, buyer_order):
    with_stripe.hang_next(1, seconds=2, after_processing=True)
    _, payment_id, email = buyer_order("stripe")
    browser = app.test_client()
    log_in(browser, email)
    assert read_payment(app, payment_id).provider_ref is None
    page = browser.get(f"/payments/{payment_id}")
    assert page.status_code == 200 and "Traceback" not in page.text

    retried = browser.post(f"/payments/{payment_id}/retry")

    sessions = with_stripe.client().v1.checkout.sessions.list().data
    assert len(sessions) == 1
    assert retried.headers["Location"] == f"/payments/{payment_id}/go"
    assert sessions[0].url in browser.get(retried.headers["Location"]).text
    assert read_payment(app, payment_id).provider_ref == sessions[0].id


def test_bancontact_with_renewal_saves_a_sepa_method_charged_once_after_a_timeout(
        app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe", save_method=True)
    pay_on_stripe_page(read_payment(app, payment_id), method="bancontact")
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    renewal_order_id, _, _ = buyer_order("bank_transfer")
    key = "subscription-1-term-2-attempt-1"

    with app.app_context():
        mandate = db.session.scalar(sa.select(Mandate))
        assert (mandate.provider, mandate.method, mandate.label) == (
            "stripe", "sepa_debit", "IBAN •••• 6769")
        order = db.session.get(Order, renewal_order_id)
        with_stripe.hang_next(1, seconds=2, after_processing=True)
        first = payments.charge_mandate(order, mandate, idempotency_key=key)
        db.session.commit()
        again = payments.charge_mandate(order, mandate, idempotency_key=key)
        db.session.commit()
        charged = db.session.scalar(sa.select(Payment).where(Payment.idempotency_key == key))
        assert charged.state == PaymentState.PENDING and charged.intent_ref

    assert first.outcome == ChargeOutcome.FAILED_RETRYABLE
    assert again.outcome == ChargeOutcome.PENDING
    intents = with_stripe.client().v1.payment_intents.list().data
    assert len(intents) == 2  # the first payment and one renewal charge


def test_card_with_renewal_is_charged_off_session(app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe", save_method=True)
    pay_on_stripe_page(read_payment(app, payment_id), method="card")
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    renewal_order_id, _, _ = buyer_order("bank_transfer")

    with app.app_context():
        mandate = db.session.scalar(sa.select(Mandate))
        result = payments.charge_mandate(db.session.get(Order, renewal_order_id), mandate,
                                         idempotency_key="subscription-1-term-2-attempt-1")
        db.session.commit()
        assert db.session.get(Order, renewal_order_id).state == OrderState.PAID
        assert mandate.method == "card" and "4242" in mandate.label

    assert result.outcome == ChargeOutcome.PAID
    assert "4242" in browser.get("/account").text


def test_coordinator_refunds_a_stripe_payment_in_part(app, login_as, with_stripe,
                                                     webhook_receiver, buyer_order):
    with_stripe.register_webhook("app", webhook_receiver.url, WEBHOOK_SECRET)
    _order_id, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    buyer = app.test_client()
    log_in(buyer, email)
    buyer.get(f"/payments/{payment_id}")
    coordinator = login_as(Role.COORDINATOR)

    coordinator.post(f"/business/subscriptions/payments/{payment_id}/refund",
                     data={"amount": "10,00", "reason": "Nummer beschadigd"})
    hook = webhook_receiver.wait_for(lambda h: b'"charge.refunded"' in h.body)
    post_event(app.test_client(), hook)

    payment = read_payment(app, payment_id)
    assert [r.amount_cents for r in payment.refunds] == [1000]
    assert [n.total_cents for n in payment.order.invoice.credit_notes] == [1000]
    intent = with_stripe.client().v1.payment_intents.retrieve(payment.intent_ref)
    assert payment.refunds[0].provider_ref.startswith("re_") and intent.id


def signed(body: bytes) -> str:
    """A Stripe-Signature header for `body`, as Stripe computes it."""
    import hashlib
    import hmac

    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body,
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def test_dispute_is_recorded_once_as_a_chargeback(app, with_stripe, buyer_order, outbox):
    _, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    intent = read_payment(app, payment_id).intent_ref
    body = json.dumps({
        "id": "evt_dispute_1", "object": "event", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "amount": 6500,
                            "payment_intent": intent, "reason": "fraudulent",
                            "status": "needs_response"}}}).encode()

    answers = [app.test_client().post("/webhooks/stripe", data=body, headers={
        "Stripe-Signature": signed(body), "Content-Type": "application/json"}).text
        for _ in range(2)]

    assert answers == ["chargeback", "duplicate"]
    payment = read_payment(app, payment_id)
    assert [(c.provider_ref, c.amount_cents) for c in payment.chargebacks] == [("dp_1", 6500)]
    assert len([m for m in outbox() if m.template == "payments_chargeback"]) == 1


def test_off_session_charge_needing_authentication_goes_to_the_customer(app, with_stripe,
                                                                        buyer_order):
    renewal_order_id, _, email = buyer_order("bank_transfer")
    stripe_client = with_stripe.client()
    customer = stripe_client.v1.customers.create(params={"email": email})
    card = stripe_client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4000002500003155", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    stripe_client.v1.payment_methods.attach(card.id, params={"customer": customer.id})

    with app.app_context():
        order = db.session.get(Order, renewal_order_id)
        mandate = Mandate(user_id=order.user_id, provider="stripe", customer_ref=customer.id,
                          mandate_ref=card.id, method="card", label="Visa •••• 3155")
        db.session.add(mandate)
        db.session.flush()
        result = payments.charge_mandate(order, mandate,
                                         idempotency_key="subscription-1-term-2-attempt-1")
        db.session.commit()
        charged = db.session.scalar(sa.select(Payment).where(
            Payment.idempotency_key == "subscription-1-term-2-attempt-1"))
        assert charged.state == PaymentState.FAILED
        assert db.session.get(Order, renewal_order_id).state == OrderState.AWAITING_PAYMENT

    assert result.outcome == ChargeOutcome.FAILED_NEEDS_CUSTOMER
    assert result.reason == "authentication_required"


def test_cancelled_order_closes_the_stripe_checkout(app, login_as, with_stripe, buyer_order):
    order_id, payment_id, _ = buyer_order("stripe")
    session_id = read_payment(app, payment_id).provider_ref
    coordinator = login_as(Role.COORDINATOR)

    coordinator.post(f"/business/subscriptions/orders/{order_id}/cancel")

    assert read_payment(app, payment_id).state == PaymentState.CANCELLED
    assert with_stripe.client().v1.checkout.sessions.retrieve(session_id).status == "expired"


def post_signed(app, event: dict):
    body = json.dumps(event).encode()
    return app.test_client().post("/webhooks/stripe", data=body, headers={
        "Stripe-Signature": signed(body), "Content-Type": "application/json"})


def intent_event(event_id: str, payment_id: int, status: str, *, created: int,
                 intent: str = "pi_signed_1") -> dict:
    return {"id": event_id, "object": "event", "type": f"payment_intent.{status}",
            "created": created,
            "data": {"object": {"id": intent, "object": "payment_intent", "amount": 6500,
                                "currency": "eur", "status": status,
                                "payment_method_types": ["card"],
                                "metadata": {"payment_id": str(payment_id)}}}}


def test_signed_intent_events_are_applied_from_the_event_in_any_order(app, with_stripe,
                                                                     buyer_order):
    """A verified event's payment intent is applied as it is (Stripe is not asked: it
    answers 500 to anything meanwhile); a late `processing` after the success, a duplicate
    and a refund event change nothing twice."""
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    with_stripe.fail_next(10)

    answers = [post_signed(app, event).text for event in (
        intent_event("evt_pi_ok", payment_id, "succeeded", created=now),
        intent_event("evt_pi_late", payment_id, "processing", created=now - 5),
        intent_event("evt_pi_ok", payment_id, "succeeded", created=now),
    )]
    refund = {"object": "refund", "id": "re_signed_1", "amount": 1500,
              "payment_intent": "pi_signed_1", "status": "succeeded", "reason": ""}
    refunded = [post_signed(app, {"id": event_id, "object": "event", "type": kind,
                                  "created": now + 10, "data": {"object": refund}}).text
                for event_id, kind in (("evt_re_1", "refund.created"),
                                       ("evt_re_2", "refund.updated"))]
    with_stripe.reset()

    assert answers == ["applied", "applied", "duplicate"]
    assert refunded == ["applied", "applied"]
    payment = read_payment(app, payment_id)
    assert (payment.state, payment.method, payment.intent_ref) == (
        PaymentState.PAID, "card", "pi_signed_1")
    assert payment.order.state == OrderState.PAID
    assert [r.amount_cents for r in payment.refunds] == [1500]
    assert [n.total_cents for n in payment.order.invoice.credit_notes] == [1500]
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_signed_intent_event_of_another_intent_is_re_read(app, with_stripe, buyer_order):
    """An event naming an intent other than the payment's own is not trusted for it: the
    payment is re-read (here Stripe does not answer, so the event is sent again later)."""
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    post_signed(app, intent_event("evt_pi_a", payment_id, "processing", created=now))
    with_stripe.fail_next(1)

    other = post_signed(app, intent_event("evt_pi_b", payment_id, "succeeded", created=now,
                                          intent="pi_someone_else"))
    with_stripe.reset()

    assert other.status_code == 503
    assert read_payment(app, payment_id).state == PaymentState.PENDING
