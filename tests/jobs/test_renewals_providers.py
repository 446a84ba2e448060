"""The renewals job charging saved mandates off-session through the payments interface,
against the providers' stand-ins over HTTP (nothing patched): Stripe (localstripe, with
its test cards) and Mollie (the fake Mollie of tests/fakes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from magazine.clock import frozen
from magazine.db import db
from magazine.models import OutboxMail
from subscriptions import renewals
from subscriptions.models import (
    ChargeStatus,
    Mandate,
    Payment,
    RenewalCharge,
    Subscription,
)
from subscriptions.states import OrderState, PaymentState
from subscriptions.states import SubscriptionState as S
from tests.factories import make_user
from tests.fakes import mollie as fake_mollie
from tests.fakes.localstripe import API_KEY as STRIPE_KEY
from tests.jobs.factories import make_subscription

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def with_stripe(app, localstripe, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", STRIPE_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe.url)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 2)
    return localstripe


@pytest.fixture
def with_mollie(app, mollie_fake, monkeypatch):
    monkeypatch.setitem(app.config, "MOLLIE_API_KEY", fake_mollie.API_KEY)
    monkeypatch.setitem(app.config, "MOLLIE_API_ENDPOINT", mollie_fake.url)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 2)
    return mollie_fake


def stripe_subscriber(world, localstripe, card: str) -> Subscription:
    """A subscriber whose term is used up, with `card` saved at Stripe as their mandate."""
    user = make_user()
    client = localstripe.client()
    customer = client.v1.customers.create(params={"email": user.email})
    method = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    db.session.add(Mandate(user_id=user.id, provider="stripe", customer_ref=customer.id,
                           mandate_ref=method.id, method="card",
                           label=f"Visa •••• {card[-4:]}"))
    db.session.commit()
    return make_subscription(world.print_plan, user, remaining=0)


def intents_of(localstripe, subscription: Subscription) -> list:
    customer = db.session.scalar(sa.select(Mandate.customer_ref).where(
        Mandate.user_id == subscription.subscriber_id))
    return [intent for intent in localstripe.client().v1.payment_intents.list().data
            if intent.customer == customer]


def charges(subscription: Subscription) -> list[tuple[int, ChargeStatus, str]]:
    db.session.expire_all()
    return [(c.attempt, c.status, c.reason) for c in db.session.scalars(
        sa.select(RenewalCharge).where(RenewalCharge.subscription_id == subscription.id)
        .order_by(RenewalCharge.attempt))]


def mails(template: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMail).where(
        OutboxMail.template == template))


def test_a_saved_card_is_charged_off_session_at_stripe_once(world, with_stripe):
    sub = stripe_subscriber(world, with_stripe, "4242424242424242")
    with frozen(NOW):
        first = renewals.run_renewals()
        second = renewals.run_renewals()
    assert (first.charged, second.charged) == (1, 0)
    [intent] = intents_of(with_stripe, sub)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 6500, "eur")
    payment = db.session.scalar(sa.select(Payment).where(Payment.provider == "stripe"))
    assert payment.idempotency_key == f"renewal-{sub.id}-2-1"
    assert payment.state == PaymentState.PAID and payment.intent_ref == intent.id
    sub = db.session.get(Subscription, sub.id)
    assert (sub.term, sub.issues_remaining, sub.state) == (2, 5, S.ACTIVE)
    assert payment.order.state == OrderState.PAID and payment.order.invoice is not None
    assert mails("renewals_renewed") == 1


def test_a_declined_card_at_stripe_is_retried_on_the_schedule_with_a_pay_link(world,
                                                                           with_stripe):
    # 4000000000000341 attaches but every charge is declined (`card_declined`, Stripe's
    # generic decline): a soft decline, so the next attempt waits for the retry schedule
    # and the subscriber gets a mail with a pay link meanwhile.
    sub = stripe_subscriber(world, with_stripe, "4000000000000341")
    with frozen(NOW):
        result = renewals.run_renewals()
        again = renewals.run_renewals()
    assert (result.retry, result.needs_customer, again.retry) == (1, 0, 0)
    assert [(a, s) for a, s, _ in charges(sub)] == [(1, ChargeStatus.FAILED),
                                                    (2, ChargeStatus.DUE)]
    assert charges(sub)[0][2] == "card_declined"
    assert mails("renewals_charge_failed") == 1
    with frozen(NOW + timedelta(days=1, hours=1)):
        second = renewals.run_renewals()
    assert second.retry == 1 and mails("renewals_charge_failed") == 2
    assert [(a, s) for a, s, _ in charges(sub)][:2] == [(1, ChargeStatus.FAILED),
                                                        (2, ChargeStatus.FAILED)]
    assert len(intents_of(with_stripe, sub)) <= 2
    assert db.session.get(Subscription, sub.id).term == 1


def test_stripe_not_answering_is_retried_with_the_same_key_and_charges_once(world,
                                                                          with_stripe):
    sub = stripe_subscriber(world, with_stripe, "4242424242424242")
    with_stripe.fail_next(1, status=500)
    with frozen(NOW):
        first = renewals.run_renewals()
    assert (first.charged, first.unanswered) == (0, 1)
    assert charges(sub)[0][:2] == (1, ChargeStatus.DUE)
    with frozen(NOW + timedelta(hours=2)):
        assert renewals.run_renewals().charged == 1
    assert [intent.status for intent in intents_of(with_stripe, sub)] == ["succeeded"]
    assert charges(sub) == [(1, ChargeStatus.PAID, "")]
    assert db.session.get(Subscription, sub.id).term == 2


def test_a_card_needing_authentication_goes_to_the_customer(world, with_stripe):
    sub = stripe_subscriber(world, with_stripe, "4000002500003155")
    with frozen(NOW):
        result = renewals.run_renewals()
        again = renewals.run_renewals()
    assert (result.needs_customer, result.retry, again.needs_customer) == (1, 0, 0)
    assert charges(sub) == [(1, ChargeStatus.NEEDS_CUSTOMER, "authentication_required")]
    assert mails("renewals_needs_customer") == 1
    sub = db.session.get(Subscription, sub.id)
    assert sub.term == 1 and sub.state == S.ACTIVE


def mollie_subscriber(world, mollie_fake) -> Subscription:
    """A subscriber whose term is used up, with a SEPA direct-debit mandate at Mollie."""
    user = make_user()
    now = datetime.now(UTC)
    with mollie_fake._lock:
        mollie_fake.customers[f"cst_{user.id}"] = fake_mollie.Customer(
            f"cst_{user.id}", now, user.name, None, None, None)
        mollie_fake.mandates[f"mdt_{user.id}"] = fake_mollie.Mandate(
            f"mdt_{user.id}", f"cst_{user.id}", now, "directdebit",
            {"consumerName": user.name, "consumerAccount": "BE71096123456769"})
    db.session.add(Mandate(user_id=user.id, provider="mollie", customer_ref=f"cst_{user.id}",
                           mandate_ref=f"mdt_{user.id}", method="directdebit",
                           label="IBAN •••• 6769"))
    db.session.commit()
    return make_subscription(world.print_plan, user, remaining=0)


def test_a_direct_debit_at_mollie_is_pending_then_paid_by_the_webhook_once(world,
                                                                        with_mollie, client):
    sub = mollie_subscriber(world, with_mollie)
    with frozen(NOW):
        first = renewals.run_renewals()
    assert (first.pending, first.charged) == (1, 0)
    [payment] = with_mollie.payments.values()
    assert payment.sequence_type == "recurring" and payment.mandate_id == f"mdt_{sub.subscriber_id}"
    with_mollie.set_status(payment.id, "paid")
    assert [with_mollie.send_webhook(payment.id, via=client) for _ in range(2)] == [200, 200]
    with frozen(NOW + timedelta(days=3)):
        assert renewals.run_renewals().applied in (0, 1)  # the webhook may apply it first
        assert renewals.run_renewals().applied == 0
    sub = db.session.get(Subscription, sub.id)
    db.session.refresh(sub)
    assert (sub.term, sub.issues_remaining) == (2, 5)
    assert with_mollie.payments_created == 1
    assert mails("renewals_renewed") == 1


def test_a_direct_debit_that_fails_at_the_bank_is_retried_on_the_schedule(world,
                                                                         with_mollie, client):
    sub = mollie_subscriber(world, with_mollie)
    with frozen(NOW):
        assert renewals.run_renewals().pending == 1
    [first] = with_mollie.payments.values()
    with_mollie.set_status(first.id, "failed")
    assert with_mollie.send_webhook(first.id, via=client) == 200
    with frozen(NOW + timedelta(hours=6)):
        result = renewals.run_renewals()
        assert renewals.run_renewals().retry == 0
    assert result.retry == 1 and mails("renewals_charge_failed") == 1
    assert [(a, s) for a, s, _ in charges(sub)] == [(1, ChargeStatus.FAILED),
                                                    (2, ChargeStatus.DUE)]
    with frozen(NOW + timedelta(days=1, hours=7)):
        assert renewals.run_renewals().pending == 1
    assert with_mollie.payments_created == 2
    [second] = [p for p in with_mollie.payments.values() if p.id != first.id]
    with_mollie.set_status(second.id, "paid")
    with_mollie.send_webhook(second.id, via=client)
    with frozen(NOW + timedelta(days=2)):
        renewals.run_renewals()
    assert [(a, s) for a, s, _ in charges(sub)] == [(1, ChargeStatus.FAILED),
                                                    (2, ChargeStatus.PAID)]
    assert db.session.get(Subscription, sub.id).term == 2


def test_charges_at_mollie_side_by_side_are_each_made_once(world, with_mollie, app,
                                                          monkeypatch):
    monkeypatch.setitem(app.config, "RENEWAL_CONCURRENCY", 3)
    with_mollie.recurring_status = "paid"
    subs = [mollie_subscriber(world, with_mollie) for _ in range(6)]
    with frozen(NOW):
        assert renewals.run_renewals().charged == 6
        assert renewals.run_renewals().charged == 0
    assert with_mollie.payments_created == 6
    assert sorted(p.customer_id for p in with_mollie.payments.values()) == sorted(
        f"cst_{s.subscriber_id}" for s in subs)
    db.session.expire_all()
    assert {s.term for s in db.session.scalars(sa.select(Subscription))} == {2}
    assert mails("renewals_renewed") == 6
