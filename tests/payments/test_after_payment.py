"""What happens around and after an online payment: the order confirmation, chargebacks
(the order owed again, the subscription suspended, a pay link mailed) and their reversal,
money for an order that no longer wants it (paid back automatically), the method actually
used, and replacement methods saved from the webhook and the reconcile job. Real SDKs over
HTTP against localstripe and the fake Mollie (tests/fakes/)."""

from __future__ import annotations

import json
from datetime import timedelta

import requests
import sqlalchemy as sa

from magazine.clock import shifted
from magazine.db import db
from magazine.models import AuditEvent
from magazine.roles import Role
from subscriptions.models import Chargeback, Mandate, MandateState, MethodSetup, Refund
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.conftest import log_in
from tests.payments.conftest import count, order_of, read_payment
from tests.payments.test_mandates import provider_page
from tests.payments.test_stripe import event_type, pay_on_stripe_page, post_event, signed


def templates(outbox, to=None) -> list[str]:
    return [m.template for m in outbox(to)]


def paid_by_mollie(app, with_mollie, buyer_order, **kwargs):
    order_id, payment_id, email = buyer_order("mollie", **kwargs)
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid", method="bancontact")
    assert with_mollie.send_webhook(ref, via=app.test_client()) == 200
    return order_id, payment_id, email, ref


def subscription_states(app, payment_id) -> list[SubscriptionState]:
    return [s.state for s in read_payment(app, payment_id).order.subscriptions]


# ---------------------------------------------------------------- order confirmation

def test_online_order_mails_the_order_confirmation_once(app, with_mollie, buyer_order, outbox):
    order_id, payment_id, email = buyer_order("mollie")
    # The browser comes back and the webhook arrives: still one confirmation.
    with_mollie.set_status(read_payment(app, payment_id).provider_ref, "paid")
    with_mollie.send_webhook(read_payment(app, payment_id).provider_ref, via=app.test_client())

    mails = outbox(email)
    assert [m.template for m in mails] == ["subscriptions_order_confirmation",
                                           "subscriptions_payment_received"]
    confirmation = mails[0]
    assert confirmation.key == f"order-placed:{order_id}"
    assert "Mollie" in confirmation.body_text
    assert "IBAN" not in confirmation.body_text  # no transfer instructions for an online order
    assert f"/account/orders/{order_id}" in confirmation.body_text


# ---------------------------------------------------------------- chargebacks

def test_chargeback_suspends_the_subscription_and_mails_a_pay_link_then_paying_again_restores(
        app, with_mollie, buyer_order, outbox):
    order_id, payment_id, email, ref = paid_by_mollie(app, with_mollie, buyer_order)
    with_mollie.trigger_chargeback(ref)

    for _ in range(2):
        with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.order.state == OrderState.AWAITING_PAYMENT
    assert subscription_states(app, payment_id) == [SubscriptionState.PENDING_PAYMENT]
    assert [c.reopened_order for c in payment.chargebacks] == [True]
    assert templates(outbox, email).count("payments_chargeback_customer") == 1
    [publisher_mail] = [m for m in outbox() if m.template == "payments_chargeback"]
    assert "suspended" in publisher_mail.body_text or "stil" in publisher_mail.body_text
    # The pay link: the order page offers the online payment again.
    browser = app.test_client()
    log_in(browser, email)
    assert f'href="/payments/{payment_id}"' in browser.get(f"/account/orders/{order_id}").text
    page = browser.get(f"/payments/{payment_id}").text
    assert 'id="charged-back"' in page and f"/payments/{payment_id}/retry" in page

    answer = browser.post(f"/payments/{payment_id}/retry")
    assert answer.status_code == 302
    again = order_of(app, order_id).payments[-1]
    assert again.id != payment_id and again.provider_ref != ref
    with_mollie.set_status(again.provider_ref, "paid", method="ideal")
    with_mollie.send_webhook(again.provider_ref, via=app.test_client())

    assert read_payment(app, again.id).order.state == OrderState.PAID
    assert subscription_states(app, payment_id) == [SubscriptionState.ACTIVE]
    assert templates(outbox, email).count("subscriptions_payment_received") == 2


def test_reversed_mollie_chargeback_restores_order_and_figures_once(app, with_mollie,
                                                                    buyer_order, outbox):
    _, payment_id, email, ref = paid_by_mollie(app, with_mollie, buyer_order)
    chargeback_ref = with_mollie.trigger_chargeback(ref, notify=False)
    with_mollie.send_webhook(ref, via=app.test_client())
    assert read_payment(app, payment_id).refundable_cents == 0

    with_mollie.reverse_chargeback(chargeback_ref)
    for _ in range(3):
        with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.order.state == OrderState.PAID
    assert subscription_states(app, payment_id) == [SubscriptionState.ACTIVE]
    assert sorted(c.amount_cents for c in payment.chargebacks) == [-6500, 6500]
    assert payment.refundable_cents == 6500
    assert templates(outbox, email).count("payments_chargeback_reversed") == 1
    assert count(app, sa.select(AuditEvent).where(
        AuditEvent.action == "payment.chargeback_reversed")) == 1


def test_reversal_after_the_buyer_paid_again_pays_the_second_payment_back(
        app, with_mollie, buyer_order, outbox):
    order_id, payment_id, email, ref = paid_by_mollie(app, with_mollie, buyer_order)
    chargeback_ref = with_mollie.trigger_chargeback(ref)
    with_mollie.send_webhook(ref, via=app.test_client())
    browser = app.test_client()
    log_in(browser, email)
    browser.post(f"/payments/{payment_id}/retry")
    again = order_of(app, order_id).payments[-1]
    with_mollie.set_status(again.provider_ref, "paid")
    with_mollie.send_webhook(again.provider_ref, via=app.test_client())

    with_mollie.reverse_chargeback(chargeback_ref)
    with_mollie.send_webhook(ref, via=app.test_client())
    with_mollie.send_webhook(again.provider_ref, via=app.test_client())

    second = read_payment(app, again.id)
    assert second.order.state == OrderState.PAID
    assert [r.amount_cents for r in second.refunds] == [6500]
    assert second.last_error == "paid_after_close_refunded"
    assert with_mollie.payment(again.provider_ref)["amountRemaining"]["value"] == "0.00"
    # No credit note for it: the invoice was paid (by the first payment).
    assert second.order.invoice.credit_notes == []
    assert templates(outbox, email).count("payments_surplus_refunded") == 1


def test_stripe_dispute_won_reverses_the_chargeback_once(app, with_stripe, buyer_order,
                                                         outbox):
    _, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    intent = read_payment(app, payment_id).intent_ref

    def dispute_event(event_id, kind, status):
        body = json.dumps({
            "id": event_id, "object": "event", "type": kind,
            "data": {"object": {"id": "dp_won", "object": "dispute", "amount": 6500,
                                "payment_intent": intent, "reason": "fraudulent",
                                "status": status}}}).encode()
        return app.test_client().post("/webhooks/stripe", data=body, headers={
            "Stripe-Signature": signed(body), "Content-Type": "application/json"}).text

    assert dispute_event("evt_d1", "charge.dispute.created", "needs_response") == "chargeback"
    assert read_payment(app, payment_id).order.state == OrderState.AWAITING_PAYMENT
    assert dispute_event("evt_d2", "charge.dispute.funds_reinstated", "under_review") \
        == "chargeback"
    assert dispute_event("evt_d3", "charge.dispute.closed", "won") == "chargeback"

    payment = read_payment(app, payment_id)
    assert payment.order.state == OrderState.PAID
    assert subscription_states(app, payment_id) == [SubscriptionState.ACTIVE]
    assert sorted(c.amount_cents for c in payment.chargebacks) == [-6500, 6500]
    assert templates(outbox, email).count("payments_chargeback_reversed") == 1


# ---------------------------------------------------------------- money nobody wants

def test_money_for_an_expired_order_is_paid_back_automatically(app, runner, login_as,
                                                               with_mollie, buyer_order,
                                                               outbox):
    order_id, payment_id, email = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with shifted(timedelta(days=40)):
        assert runner.invoke(args=["jobs", "run", "expire-orders"]).exit_code == 0
    # A late bank pays it all the same.
    with_mollie.set_status(ref, "paid", method="kbc")

    for _ in range(2):
        with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID and payment.order.state == OrderState.EXPIRED
    assert [r.amount_cents for r in payment.refunds] == [6500]
    assert payment.last_error == "paid_after_close_refunded"
    assert with_mollie.payment(ref)["amountRemaining"]["value"] == "0.00"
    # Only the expiry's credit note: the refund of money the order never wanted has none.
    assert len(payment.order.invoice.credit_notes) == 1
    assert templates(outbox, email).count("payments_surplus_refunded") == 1
    assert count(app, sa.select(Refund)) == 1
    office = login_as(Role.COORDINATOR).get(f"/business/subscriptions/orders/{order_id}")
    assert f'id="surplus-{payment_id}"' in office.text


def test_a_failed_payment_paid_late_for_an_order_paid_otherwise_is_paid_back(
        app, with_mollie, buyer_order, outbox):
    order_id, payment_id, email = buyer_order("mollie")
    first = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(first, "failed")
    with_mollie.send_webhook(first, via=app.test_client())
    browser = app.test_client()
    log_in(browser, email)
    browser.post(f"/payments/{payment_id}/retry")
    second = order_of(app, order_id).payments[-1]
    with_mollie.set_status(second.provider_ref, "paid")
    with_mollie.send_webhook(second.provider_ref, via=app.test_client())

    with_mollie.set_status(first, "paid")  # the first bank changes its mind
    with_mollie.send_webhook(first, via=app.test_client())

    late = read_payment(app, payment_id)
    assert late.state == PaymentState.PAID and late.order.state == OrderState.PAID
    assert [r.amount_cents for r in late.refunds] == [6500]
    assert read_payment(app, second.id).refunds == []
    assert late.order.invoice.credit_notes == []
    assert count(app, sa.select(AuditEvent).where(
        AuditEvent.action == "payment.surplus_refunded")) == 1


# ---------------------------------------------------------------- the method used

def test_stripe_records_the_method_actually_used(app, login_as, with_stripe, buyer_order):
    order_id, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id), method="bancontact")
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")

    assert read_payment(app, payment_id).method == "bancontact"
    assert '<span class="payment-method">Bancontact</span>' in \
        browser.get(f"/account/orders/{order_id}").text
    office = login_as(Role.COORDINATOR).get(f"/business/subscriptions/orders/{order_id}")
    assert '<span class="payment-method">Bancontact</span>' in office.text


def test_stripe_card_payment_records_card(app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id), method="card")
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")

    assert read_payment(app, payment_id).method == "card"


# ---------------------------------------------------------------- replacement methods

def mandate_rows(app):
    with app.app_context():
        return [(m.method, m.state) for m in
                db.session.scalars(sa.select(Mandate).order_by(Mandate.id))]


def test_mollie_replacement_saved_from_the_webhook_once_and_paid_back_once(
        app, login_as, with_mollie):
    browser = login_as()
    url = provider_page(browser.post("/account/payment-methods/new",
                                     data={"provider": "mollie"}))
    reference = url.rsplit("/", 1)[1]
    assert with_mollie.payment(reference)["webhookUrl"].endswith("/webhooks/mollie")
    with_mollie.set_status(reference, "paid", method="creditcard")

    answers = [app.test_client().post("/webhooks/mollie", data={"id": reference}).text
               for _ in range(2)]
    browser.get("/account/payment-methods/new/done")  # the browser comes back last

    assert answers == ["method", "method"]
    assert mandate_rows(app) == [("creditcard", MandateState.VALID)]
    assert [r.amount for r in with_mollie.refunds.values()] == [2]
    with app.app_context():
        setup = db.session.scalar(sa.select(MethodSetup))
        assert (setup.state, setup.refund_ref.startswith("re_")) == ("saved", True)


def test_stripe_replacement_saved_by_the_webhook_or_the_reconcile_job_once(
        app, runner, login_as, with_stripe, webhook_receiver):
    with_stripe.register_webhook("app", webhook_receiver.url, "whsec_magazine_payments")
    browser = login_as()
    url = provider_page(browser.post("/account/payment-methods/new",
                                     data={"provider": "stripe"}))
    # The subscriber saves a card and closes the tab: no return page.
    requests.post(url, data={"method": "card"}, allow_redirects=False, timeout=5)
    hook = webhook_receiver.wait_for(lambda h: b"checkout.session.completed" in h.body)
    assert event_type(hook) == "checkout.session.completed"

    answers = [post_event(app.test_client(), hook).text for _ in range(2)]
    job = runner.invoke(args=["jobs", "run", "reconcile-payments"])

    assert answers == ["method", "duplicate"]
    assert mandate_rows(app) == [("card", MandateState.VALID)]
    assert job.exit_code == 0 and "0 checked" in job.output


def test_reconcile_saves_a_replacement_whose_webhook_was_lost(app, runner, login_as,
                                                             with_mollie):
    browser = login_as()
    url = provider_page(browser.post("/account/payment-methods/new",
                                     data={"provider": "mollie"}))
    reference = url.rsplit("/", 1)[1]
    with_mollie.set_status(reference, "paid", method="bancontact")

    first = runner.invoke(args=["jobs", "run", "reconcile-payments"])
    again = runner.invoke(args=["jobs", "run", "reconcile-payments"])

    assert "1 checked, 1 changed" in first.output, first.output
    assert "0 checked" in again.output
    assert mandate_rows(app) == [("directdebit", MandateState.VALID)]
    assert [r.amount for r in with_mollie.refunds.values()] == [2]
    assert count(app, sa.select(Chargeback)) == 0


def test_stripe_inquiry_is_not_a_chargeback(app, with_stripe, buyer_order):
    _, payment_id, email = buyer_order("stripe")
    pay_on_stripe_page(read_payment(app, payment_id))
    browser = app.test_client()
    log_in(browser, email)
    browser.get(f"/payments/{payment_id}")
    body = json.dumps({
        "id": "evt_inquiry", "object": "event", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_inq", "object": "dispute", "amount": 6500,
                            "payment_intent": read_payment(app, payment_id).intent_ref,
                            "reason": "general", "status": "warning_needs_response"}}}).encode()

    answer = app.test_client().post("/webhooks/stripe", data=body, headers={
        "Stripe-Signature": signed(body), "Content-Type": "application/json"})

    assert answer.text == "inquiry"
    payment = read_payment(app, payment_id)
    assert payment.chargebacks == [] and payment.order.state == OrderState.PAID


def test_chargeback_of_a_single_copy_order_only_alerts_the_coordinator(app, with_mollie,
                                                                      outbox):
    from subscriptions import services
    from tests.factories import make_issue, make_user
    from tests.subscriptions.factories import address

    with app.app_context():
        buyer = make_user(roles={Role.SUBSCRIBER})
        offer = services.save_offer(make_issue(), price_cents=1500, stock=10, active=True,
                                    actor=None)
        request = services.CheckoutRequest(plan_id=0, billing_name=buyer.name,
                                           provider="mollie", locale="nl_BE")
        placed = services.place_single_copy_order(offer, 1, address(), request, buyer=buyer)
        payment_id = placed.order.payments[-1].id
        ref = placed.order.payments[-1].provider_ref
        db.session.commit()
        db.session.remove()
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    with_mollie.trigger_chargeback(ref)
    with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.order.state == OrderState.PAID
    assert [c.reopened_order for c in payment.chargebacks] == [False]
    assert "payments_chargeback" in templates(outbox)
    assert "payments_chargeback_customer" not in templates(outbox)
