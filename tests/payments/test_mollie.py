"""Mollie payments over HTTP: the real mollie-api-python against the fake Mollie API
(tests/fakes/mollie.py), webhooks posted to our endpoint as Mollie posts them (`id=tr_…`)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from magazine.db import db
from magazine.models import AuditEvent, OutboxMail
from magazine.roles import Role
from subscriptions import payments
from subscriptions.models import Chargeback, Mandate, MandateState, Order, Payment, ProviderEvent
from subscriptions.providers.base import ChargeOutcome
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.conftest import log_in
from tests.payments.conftest import count, read_payment


def test_order_with_mollie_sends_the_buyer_to_mollie_s_page(app, with_mollie, buyer_order):
    order_id, payment_id, _ = buyer_order("mollie")

    payment = read_payment(app, payment_id)
    assert payment.provider_ref.startswith("tr_")
    assert payment.checkout_url == f"{with_mollie.url}/checkout/{payment.provider_ref}"
    sent = with_mollie.payment(payment.provider_ref)
    assert sent["amount"] == {"currency": "EUR", "value": "65.00"}
    assert sent["method"] == ["bancontact", "ideal", "kbc", "belfius", "creditcard"]
    assert sent["metadata"] == {"payment_id": payment_id, "order_id": order_id}
    assert sent["webhookUrl"] == "http://localhost/webhooks/mollie"
    assert sent["redirectUrl"] == f"http://localhost/payments/{payment_id}"
    assert sent["sequenceType"] == "oneoff"
    [create] = [c for c in with_mollie.calls if c.path == "/v2/payments"]
    assert create.idempotency_key == f"order-{order_id}-payment-{payment_id}"


def test_duplicate_mollie_webhook_confirms_payment_once(app, client, with_mollie, buyer_order):
    _order_id, payment_id, _email = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid", method="bancontact")

    answers = [with_mollie.send_webhook(ref, via=client) for _ in range(3)]

    assert answers == [200, 200, 200]
    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID and payment.method == "bancontact"
    assert payment.order.state == OrderState.PAID
    assert [s.state for s in payment.order.subscriptions] == [SubscriptionState.ACTIVE]
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1
    assert count(app, sa.select(ProviderEvent)) == 1
    assert count(app, sa.select(OutboxMail).where(
        OutboxMail.template == "subscriptions_payment_received")) == 1


def test_mollie_webhook_trusts_only_the_id(app, client, with_mollie, buyer_order):
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref

    # Still open at Mollie: whatever the body says, nothing is paid.
    answer = client.post("/webhooks/mollie", data={"id": ref, "status": "paid"})
    unknown = client.post("/webhooks/mollie", data={"id": "tr_doesnotexist"})
    garbage = client.post("/webhooks/mollie", data={"id": "<script>"})

    assert (answer.status_code, unknown.status_code, garbage.status_code) == (200, 200, 200)
    assert read_payment(app, payment_id).state == PaymentState.OPEN


def test_return_page_shows_paid_without_waiting_for_the_webhook(app, with_mollie, buyer_order):
    _, payment_id, email = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    browser = app.test_client()
    log_in(browser, email)

    page = browser.get(f"/payments/{payment_id}")
    status = browser.get(f"/payments/{payment_id}/status.json").get_json()

    assert page.status_code == 200
    assert "Bedankt, je betaling is binnen." in page.text or "payment is received" in page.text
    assert status == {"state": "paid", "order_state": "paid", "done": True}
    # The webhook that comes later finds it done.
    assert with_mollie.send_webhook(ref, via=app.test_client()) == 200
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_pending_payment_says_we_wait_for_the_bank_and_polls(app, with_mollie, buyer_order):
    _, payment_id, email = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "pending")
    browser = app.test_client()
    log_in(browser, email)

    page = browser.get(f"/payments/{payment_id}")

    assert read_payment(app, payment_id).state == PaymentState.PENDING
    assert "js/payment-status.js" in page.text
    assert f"/payments/{payment_id}/status.json" in page.text
    assert f'href="/payments/{payment_id}"' in page.text  # the no-JS refresh link


def test_someone_else_s_payment_is_a_404(app, login_as, with_mollie, buyer_order):
    _, payment_id, _ = buyer_order("mollie")
    stranger = login_as(Role.SUBSCRIBER)

    assert stranger.get(f"/payments/{payment_id}").status_code == 404
    assert stranger.get(f"/payments/{payment_id}/status.json").status_code == 404
    assert stranger.post(f"/payments/{payment_id}/retry").status_code == 404


def test_mollie_down_at_checkout_keeps_the_order_with_a_retry(app, with_mollie, buyer_order):
    with_mollie.fail_next(1, status=503)
    _order_id, payment_id, email = buyer_order("mollie")
    browser = app.test_client()
    log_in(browser, email)

    payment = read_payment(app, payment_id)
    page = browser.get(f"/payments/{payment_id}")

    assert payment.state == PaymentState.OPEN and payment.provider_ref is None
    assert payment.order.state == OrderState.AWAITING_PAYMENT
    assert page.status_code == 200 and "Traceback" not in page.text
    assert "niet" in page.text or "does not answer" in page.text
    assert with_mollie.payments_created == 0

    retried = browser.post(f"/payments/{payment_id}/retry")

    payment = read_payment(app, payment_id)
    assert retried.status_code == 302
    assert retried.headers["Location"] == f"/payments/{payment_id}/go"
    go = browser.get(retried.headers["Location"])
    checkout = f"{with_mollie.url}/checkout/{payment.provider_ref}"
    assert f'content="0;url={checkout}"' in go.text and f'href="{checkout}"' in go.text
    assert with_mollie.payments_created == 1


def test_retry_after_a_timeout_that_mollie_carried_out_creates_one_payment(
        app, with_mollie, buyer_order):
    with_mollie.hang_next(1, seconds=2, after_processing=True)
    _, payment_id, email = buyer_order("mollie")
    browser = app.test_client()
    log_in(browser, email)
    assert read_payment(app, payment_id).provider_ref is None

    browser.post(f"/payments/{payment_id}/retry")

    assert with_mollie.payments_created == 1
    assert read_payment(app, payment_id).provider_ref == next(iter(with_mollie.payments))


def test_failed_payment_can_be_paid_again_with_a_new_attempt(app, with_mollie, buyer_order):
    order_id, payment_id, email = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "canceled")
    browser = app.test_client()
    log_in(browser, email)

    browser.get(f"/payments/{payment_id}")
    again = browser.post(f"/payments/{payment_id}/retry")

    assert read_payment(app, payment_id).state == PaymentState.CANCELLED
    assert with_mollie.payments_created == 2
    with app.app_context():
        latest = db.session.scalars(sa.select(Payment).where(
            Payment.order_id == order_id).order_by(Payment.id)).all()[-1]
        assert latest.id != payment_id and latest.state == PaymentState.OPEN
        assert again.headers["Location"] == f"/payments/{latest.id}/go"
        assert latest.checkout_url in browser.get(again.headers["Location"]).text


def test_first_payment_saves_the_mandate_shown_and_removable_on_the_account(
        app, with_mollie, buyer_order):
    _, payment_id, email = buyer_order("mollie", save_method=True)
    payment = read_payment(app, payment_id)
    sent = with_mollie.payment(payment.provider_ref)
    assert sent["sequenceType"] == "first" and sent["customerId"] == payment.customer_ref
    with_mollie.set_status(payment.provider_ref, "paid", method="bancontact")
    with_mollie.send_webhook(payment.provider_ref, via=app.test_client())
    browser = app.test_client()
    log_in(browser, email)

    account = browser.get("/account")

    with app.app_context():
        mandate = db.session.scalar(sa.select(Mandate))
        assert (mandate.provider, mandate.method, mandate.state) == (
            "mollie", "directdebit", MandateState.VALID)
        assert mandate.label == "IBAN •••• 6769"
        mandate_id, mandate_ref = mandate.id, mandate.mandate_ref
    assert "IBAN •••• 6769" in account.text

    removed = browser.post(f"/account/payment-methods/{mandate_id}/remove")

    assert removed.status_code == 302
    assert with_mollie.mandates[mandate_ref].status == "invalid"
    with app.app_context():
        assert db.session.get(Mandate, mandate_id).state == MandateState.REVOKED
    assert "IBAN •••• 6769" not in browser.get("/account").text


def test_renewal_charge_retried_after_a_timeout_charges_once(app, with_mollie, buyer_order):
    """The renewals job's call: the same key after a timeout that Mollie carried out finds
    the same recurring payment (never a second one)."""
    _, payment_id, _ = buyer_order("mollie", save_method=True)
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    renewal_order_id, _, _ = buyer_order("bank_transfer")
    key = "subscription-1-term-2-attempt-1"

    with app.app_context():
        mandate = db.session.scalar(sa.select(Mandate))
        order = db.session.get(Order, renewal_order_id)
        with_mollie.hang_next(1, seconds=2, after_processing=True)
        first = payments.charge_mandate(order, mandate, idempotency_key=key)
        db.session.commit()
        again = payments.charge_mandate(order, mandate, idempotency_key=key)
        db.session.commit()
        charged = db.session.scalar(sa.select(Payment).where(Payment.idempotency_key == key))
        assert charged.state == PaymentState.PENDING

    assert first.outcome == ChargeOutcome.FAILED_RETRYABLE
    assert again.outcome == ChargeOutcome.PENDING
    assert with_mollie.payments_created == 2  # the first payment and one renewal
    recurring = [c for c in with_mollie.calls if c.path == "/v2/payments" and c.status == 201]
    assert {c.idempotency_key for c in recurring[1:]} == {key}


def test_revoked_mandate_needs_the_customer(app, with_mollie, buyer_order):
    _, payment_id, _ = buyer_order("mollie", save_method=True)
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    renewal_order_id, _, _ = buyer_order("bank_transfer")

    with app.app_context():
        mandate = db.session.scalar(sa.select(Mandate))
        with_mollie.invalidate_mandate(mandate.mandate_ref)  # revoked at the bank
        result = payments.charge_mandate(db.session.get(Order, renewal_order_id), mandate,
                                         idempotency_key="subscription-1-term-2-attempt-1")
        db.session.commit()

    assert result.outcome == ChargeOutcome.FAILED_NEEDS_CUSTOMER
    assert "mandate" in result.reason.lower()


def test_coordinator_refunds_part_then_the_rest_with_credit_notes(app, login_as, with_mollie,
                                                                  buyer_order):
    order_id, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    coordinator = login_as(Role.COORDINATOR)
    url = f"/business/subscriptions/payments/{payment_id}/refund"

    partial = coordinator.post(url, data={"amount": "15.00", "reason": "Adres fout"})
    too_much = coordinator.post(url, data={"amount": "50.01", "reason": "Te veel"})
    rest = coordinator.post(url, data={"amount": "50.00", "reason": "Opzegging"})
    page = coordinator.get(f"/business/subscriptions/orders/{order_id}")

    assert partial.status_code == rest.status_code == too_much.status_code == 302
    payment = read_payment(app, payment_id)
    assert [r.amount_cents for r in payment.refunds] == [1500, 5000]
    notes = payment.order.invoice.credit_notes
    assert [n.total_cents for n in notes] == [1500, 5000]
    assert [n.reason for n in notes] == ["Adres fout", "Opzegging"]
    assert payment.refundable_cents == 0
    assert {r.provider_ref for r in payment.refunds} == set(with_mollie.refunds)
    assert page.status_code == 200 and notes[0].number in page.text
    # The refund webhook that follows records nothing more.
    with_mollie.send_webhook(ref, via=app.test_client())
    assert len(read_payment(app, payment_id).refunds) == 2


def test_refund_larger_than_what_is_left_is_refused_with_a_message(app, login_as, with_mollie,
                                                                   buyer_order):
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    coordinator = login_as(Role.COORDINATOR)

    answer = coordinator.post(f"/business/subscriptions/payments/{payment_id}/refund",
                              data={"amount": "65.01", "reason": "Te veel"},
                              follow_redirects=True)

    assert "65,00" in answer.text and read_payment(app, payment_id).refunds == []
    assert with_mollie.refunds == {}


def test_refund_and_chargeback_made_at_mollie_are_recorded_once(app, with_mollie, buyer_order,
                                                                outbox):
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    client = with_mollie.client()
    client.payments.get(ref).refunds.create({"amount": {"currency": "EUR", "value": "5.00"}},
                                            idempotency_key="dashboard-1")
    with_mollie.trigger_chargeback(ref, 1000)

    for _ in range(2):
        with_mollie.send_webhook(ref, via=app.test_client())

    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID
    assert [r.amount_cents for r in payment.refunds] == [500]
    assert [c.amount_cents for c in payment.chargebacks] == [1000]
    assert [n.total_cents for n in payment.order.invoice.credit_notes] == [500]
    assert count(app, sa.select(Chargeback)) == 1
    assert len([m for m in outbox() if m.template == "payments_chargeback"]) == 1
    assert len([m for m in outbox() if m.template == "payments_refunded"]) == 1


def test_reconcile_job_repairs_a_lost_webhook(app, runner, with_mollie, buyer_order):
    _, paid_id, _ = buyer_order("mollie")
    _, pending_id, _ = buyer_order("mollie")
    with_mollie.set_status(read_payment(app, paid_id).provider_ref, "paid")
    with_mollie.set_status(read_payment(app, pending_id).provider_ref, "pending")

    first = runner.invoke(args=["jobs", "run", "reconcile-payments"])
    again = runner.invoke(args=["jobs", "run", "reconcile-payments"])

    assert first.exit_code == 0, first.output
    assert "2 checked, 2 changed" in first.output
    assert "2 checked, 0 changed" in again.output  # the paid one is re-read once a day
    assert read_payment(app, paid_id).state == PaymentState.PAID
    assert read_payment(app, pending_id).state == PaymentState.PENDING
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_only_providers_with_a_key_appear_at_checkout(app, client, monkeypatch, mollie_fake):
    from tests.subscriptions.factories import make_plan

    with app.app_context():
        make_plan(code="jaar")
    without = client.get("/checkout?plan=jaar").text
    monkeypatch.setitem(app.config, "MOLLIE_API_KEY", "test_x")
    with_key = client.get("/checkout?plan=jaar").text

    assert 'value="mollie"' not in without and 'value="stripe"' not in without
    assert 'value="mollie"' in with_key and 'value="stripe"' not in with_key


def test_a_refusing_provider_shows_the_payment_page_not_an_error(app, monkeypatch, with_mollie,
                                                                  buyer_order):
    _, payment_id, email = buyer_order("mollie")
    monkeypatch.setitem(app.config, "MOLLIE_API_KEY", "test_a_key_mollie_does_not_know_xxxx")
    browser = app.test_client()
    log_in(browser, email)

    page = browser.get(f"/payments/{payment_id}")
    retry = browser.post(f"/payments/{payment_id}/retry", follow_redirects=True)

    assert page.status_code == 200 and retry.status_code == 200
    assert read_payment(app, payment_id).state == PaymentState.OPEN


def test_refund_refused_by_mollie_is_shown_and_changes_nothing(app, login_as, with_mollie,
                                                               buyer_order):
    """Mollie knows of a dashboard refund we have not heard of yet: it refuses the rest."""
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    with_mollie.client().payments.get(ref).refunds.create(
        {"amount": {"currency": "EUR", "value": "60.00"}}, idempotency_key="dashboard-2")
    coordinator = login_as(Role.COORDINATOR)

    answer = coordinator.post(f"/business/subscriptions/payments/{payment_id}/refund",
                              data={"amount": "65,00", "reason": "Opzegging"},
                              follow_redirects=True)

    assert answer.status_code == 200 and "5.00" in answer.text  # Mollie's own explanation
    payment = read_payment(app, payment_id)
    assert payment.refunds == [] and payment.order.invoice.credit_notes == []


def test_refund_form_sent_twice_refunds_once(app, login_as, with_mollie, buyer_order):
    order_id, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    coordinator = login_as(Role.COORDINATOR)
    page = coordinator.get(f"/business/subscriptions/orders/{order_id}").text
    key = re.search(r'name="request_key" type="hidden" value="([0-9a-f]+)"', page).group(1)
    form = {"amount": "10,00", "reason": "Dubbel verzonden", "request_key": key}

    for _ in range(2):
        coordinator.post(f"/business/subscriptions/payments/{payment_id}/refund", data=form)

    assert len(with_mollie.refunds) == 1
    assert [r.amount_cents for r in read_payment(app, payment_id).refunds] == [1000]


def test_expired_order_cancels_the_open_mollie_payment(app, runner, with_mollie, buyer_order):
    from datetime import timedelta

    from magazine.clock import shifted

    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref

    with shifted(timedelta(days=40)):
        result = runner.invoke(args=["jobs", "run", "expire-orders"])

    assert result.exit_code == 0, result.output
    assert read_payment(app, payment_id).state == PaymentState.EXPIRED
    assert with_mollie.payment(ref)["status"] == "canceled"


def test_unpaid_order_page_links_to_the_online_payment(app, with_mollie, buyer_order):
    order_id, payment_id, email = buyer_order("mollie")
    browser = app.test_client()
    log_in(browser, email)

    page = browser.get(f"/account/orders/{order_id}")

    assert page.status_code == 200
    assert f'href="/payments/{payment_id}"' in page.text


def test_reconcile_picks_up_a_dashboard_refund_whose_webhook_was_lost_once_a_day(
        app, runner, with_mollie, buyer_order):
    _, payment_id, _ = buyer_order("mollie")
    ref = read_payment(app, payment_id).provider_ref
    with_mollie.set_status(ref, "paid")
    with_mollie.send_webhook(ref, via=app.test_client())
    with_mollie.client().payments.get(ref).refunds.create(
        {"amount": {"currency": "EUR", "value": "7.50"}}, idempotency_key="dashboard-3")

    first = runner.invoke(args=["jobs", "run", "reconcile-payments"])
    calls = len(with_mollie.calls)
    again = runner.invoke(args=["jobs", "run", "reconcile-payments"])

    assert "1 checked, 1 changed" in first.output, first.output
    assert "0 checked" in again.output and len(with_mollie.calls) == calls
    payment = read_payment(app, payment_id)
    assert [r.amount_cents for r in payment.refunds] == [750]
    assert [n.total_cents for n in payment.order.invoice.credit_notes] == [750]
