"""Renewal charges in batches: claimed, prepared and recorded together (one transaction for
the preparation of a batch, one for its outcomes), the provider called once per charge with
no transaction open; a charge that cannot be prepared or recorded with the others loses
none of them. Counted at the provider and in the database, never timed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from magazine.clock import frozen
from magazine.db import db
from magazine.models import AuditEvent, OutboxMail
from subscriptions import renewals, services
from subscriptions.models import ChargeStatus, Invoice, Payment, RenewalCharge, Subscription
from subscriptions.providers.base import ChargeOutcome, ChargeResult
from subscriptions.states import PaymentState
from tests.factories import make_user
from tests.jobs.factories import make_subscription

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def one_batch(app, monkeypatch):
    """One thread, batches of 50: every due charge in the same batch."""
    monkeypatch.setitem(app.config, "RENEWAL_CONCURRENCY", 1)
    monkeypatch.setitem(app.config, "RENEWAL_BATCH_SIZE", 50)


def due_subscribers(world, mandate_for, count: int) -> list[Subscription]:
    subs = []
    for _ in range(count):
        user = make_user()
        mandate_for(user)
        subs.append(make_subscription(world.print_plan, user, remaining=0))
    return subs


def mail_counts(template: str) -> Counter:
    return Counter(db.session.scalars(sa.select(OutboxMail.to_address).where(
        OutboxMail.template == template)))


def statuses() -> Counter:
    db.session.expire_all()
    return Counter(c.status for c in db.session.scalars(sa.select(RenewalCharge)))


def invoice_sequences() -> list[int]:
    return sorted(db.session.scalars(sa.select(Invoice.sequence)))


def test_a_batch_with_every_outcome_records_each_once(world, testpay, mandate_for,
                                                      one_batch, monkeypatch):
    subs = due_subscribers(world, mandate_for, 7)
    keys = [f"renewal-{s.id}-2-1" for s in subs]
    testpay.script = [ChargeOutcome.PAID, ChargeOutcome.FAILED_RETRYABLE,
                      ChargeOutcome.FAILED_NEEDS_CUSTOMER, ChargeOutcome.PENDING,
                      ChargeOutcome.PAID, ChargeOutcome.PAID, ChargeOutcome.PAID]
    charge = testpay.charge_mandate
    lost = []  # the sixth call: carried out at the provider, its answer lost

    def answer(payment, *, mandate_ref, idempotency_key):
        result = charge(payment, mandate_ref=mandate_ref, idempotency_key=idempotency_key)
        if len(testpay.calls) == 6:
            lost.append(idempotency_key)
            return ChargeResult(None, PaymentState.OPEN, ChargeOutcome.FAILED_RETRYABLE,
                                "testpay did not answer")
        return result

    monkeypatch.setattr(testpay, "charge_mandate", answer)
    with frozen(NOW):
        result = renewals.run_renewals()
    assert result.summary() == (
        "renewals: 3 charged, 1 failed (retry), 1 need the customer, 1 pending at the bank, "
        "1 unanswered (same charge again in an hour)")
    calls = list(testpay.calls)
    assert sorted(calls) == sorted(keys)  # the charges in one batch, each called once
    assert statuses() == {ChargeStatus.PAID: 3, ChargeStatus.FAILED: 1,
                          ChargeStatus.NEEDS_CUSTOMER: 1, ChargeStatus.PENDING: 1,
                          ChargeStatus.DUE: 2}  # the unanswered one and attempt 2
    assert invoice_sequences() == [1, 2, 3]
    email_of = {key: sub.subscriber.email for key, sub in zip(keys, subs, strict=True)}
    renewed = mail_counts("renewals_renewed")
    assert sorted(renewed) == sorted(email_of[calls[i]] for i in (0, 4, 6))
    assert set(renewed.values()) == {1}
    assert sum(mail_counts("subscriptions_payment_received").values()) == 3
    assert sum(mail_counts("renewals_charge_failed").values()) == 1
    assert sum(mail_counts("renewals_needs_customer").values()) == 1
    # The unanswered charge, an hour later: the same key, answered with the first charge.
    with frozen(NOW + timedelta(hours=1, minutes=1)):
        later = renewals.run_renewals()
    assert later.charged == 1 and testpay.calls[7:] == lost == [calls[5]]
    assert list(testpay.paid_keys()) == [calls[i] for i in (0, 4, 5, 6)]
    assert invoice_sequences() == [1, 2, 3, 4]
    terms = Counter(s.term for s in db.session.scalars(sa.select(Subscription)))
    assert terms == {2: 4, 1: 3}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment).where(
        Payment.state == PaymentState.PAID)) == 4


def test_a_charge_that_cannot_be_recorded_loses_none_of_the_others(
        world, testpay, mandate_for, one_batch, monkeypatch):
    subs = due_subscribers(world, mandate_for, 5)
    broken = subs[2].subscriber.email
    queue_mails = renewals.queue_mails

    def failing(mails):
        if any(mail.to_address == broken for mail in mails):
            raise RuntimeError("the mail of this one cannot be made")
        return queue_mails(mails)

    monkeypatch.setattr(renewals, "queue_mails", failing)
    with frozen(NOW):
        result = renewals.run_renewals()
    assert result.charged == 4
    assert len(testpay.calls) == 5  # each charged once, the batch recorded one by one
    db.session.expire_all()
    charge = db.session.scalar(sa.select(RenewalCharge).where(
        RenewalCharge.subscription_id == subs[2].id))
    # Back in the queue with its payment, so the retry sends the same key.
    assert charge.status == ChargeStatus.DUE and charge.payment_id is not None
    assert charge.due_at == NOW + renewals.UNANSWERED_RETRY
    assert invoice_sequences() == [1, 2, 3, 4]
    assert sum(mail_counts("renewals_renewed").values()) == 4
    monkeypatch.setattr(renewals, "queue_mails", queue_mails)
    with frozen(NOW + timedelta(hours=2)):
        assert renewals.run_renewals().charged == 1
    key = f"renewal-{subs[2].id}-2-1"
    assert testpay.calls.count(key) == 2 and len(list(testpay.paid_keys())) == 5
    assert invoice_sequences() == [1, 2, 3, 4, 5]
    renewed = mail_counts("renewals_renewed")
    assert len(renewed) == 5 and set(renewed.values()) == {1}
    assert statuses() == {ChargeStatus.PAID: 5}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "payment.charged")) == 5


def test_a_charge_that_cannot_be_prepared_loses_none_of_the_others(
        world, testpay, mandate_for, one_batch, monkeypatch):
    subs = due_subscribers(world, mandate_for, 4)
    lines = renewals.renewal_lines

    def failing(subscription, plan, locale):
        if subscription.id == subs[1].id:
            raise RuntimeError("this one cannot be priced")
        return lines(subscription, plan, locale)

    monkeypatch.setattr(renewals, "renewal_lines", failing)
    with frozen(NOW):
        result = renewals.run_renewals()
    assert result.charged == 3
    assert sorted(testpay.calls) == sorted(f"renewal-{s.id}-2-1" for i, s in enumerate(subs)
                                           if i != 1)
    assert statuses() == {ChargeStatus.PAID: 3, ChargeStatus.DUE: 1}
    assert invoice_sequences() == [1, 2, 3]
    monkeypatch.setattr(renewals, "renewal_lines", lines)
    with frozen(NOW + timedelta(hours=2)):
        assert renewals.run_renewals().charged == 1
    assert statuses() == {ChargeStatus.PAID: 4}
    assert len(testpay.calls) == 4 and invoice_sequences() == [1, 2, 3, 4]


def test_a_call_that_breaks_is_asked_again_and_the_others_go_on(
        world, testpay, mandate_for, one_batch, monkeypatch):
    subs = due_subscribers(world, mandate_for, 3)
    broken = f"renewal-{subs[1].id}-2-1"
    charge = testpay.charge_mandate

    def answer(payment, *, mandate_ref, idempotency_key):
        result = charge(payment, mandate_ref=mandate_ref, idempotency_key=idempotency_key)
        if idempotency_key == broken and testpay.calls.count(broken) == 1:
            raise RuntimeError("the connection broke after sending")
        return result

    monkeypatch.setattr(testpay, "charge_mandate", answer)
    with frozen(NOW):
        result = renewals.run_renewals()
    assert (result.charged, result.unanswered) == (2, 1)
    assert statuses() == {ChargeStatus.PAID: 2, ChargeStatus.DUE: 1}
    with frozen(NOW + timedelta(hours=1, minutes=1)):
        assert renewals.run_renewals().charged == 1
    assert testpay.calls.count(broken) == 2 and len(list(testpay.paid_keys())) == 3
    assert statuses() == {ChargeStatus.PAID: 3}
    assert invoice_sequences() == [1, 2, 3]


def test_a_batch_takes_far_fewer_statements_than_charges_one_by_one(
        world, testpay, mandate_for, app, monkeypatch):
    """The point of the batches, counted (not timed): 20 renewals in one batch against
    the same 20 one at a time."""
    monkeypatch.setitem(app.config, "RENEWAL_CONCURRENCY", 1)
    counts = {}
    for size, start in ((1, NOW), (20, NOW + timedelta(days=400))):
        monkeypatch.setitem(app.config, "RENEWAL_BATCH_SIZE", size)
        due_subscribers(world, mandate_for, 20)
        statements = []

        def count(*args, statements=statements):
            statements.append(1)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            with frozen(start):
                assert renewals.run_renewals().charged == 20
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        counts[size] = len(statements)
    assert counts[20] * 2 < counts[1], counts


def test_a_state_is_written_once_per_move(world, testpay, mandate_for, one_batch):
    """`services._move`: the conditional UPDATE, and no second UPDATE of the same state by
    the unit of work."""
    sub = due_subscribers(world, mandate_for, 1)[0]
    with frozen(NOW):
        renewals.run_renewals()
    seen = []

    def watch(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", watch)
    try:
        services.move_subscription(db.session.get(Subscription, sub.id),
                                   services.SubscriptionState.CANCELLED, actor=None)
        db.session.flush()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", watch)
    assert len(seen) == 1 and "subscriptions" in seen[0]
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Subscription, sub.id).state == services.SubscriptionState.CANCELLED


def test_renewal_batch_size_is_a_setting_from_1_to_500(tmp_path):
    from magazine.config import ConfigError, load_settings

    assert load_settings(tmp_path, {"APP_ENV": "test"})["RENEWAL_BATCH_SIZE"] == 100
    assert load_settings(tmp_path, {"APP_ENV": "test", "RENEWAL_BATCH_SIZE": "1"})[
        "RENEWAL_BATCH_SIZE"] == 1
    with pytest.raises(ConfigError, match="RENEWAL_BATCH_SIZE"):
        load_settings(tmp_path, {"APP_ENV": "test", "RENEWAL_BATCH_SIZE": "0"})
