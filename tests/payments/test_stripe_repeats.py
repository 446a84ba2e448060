"""Stripe events that change nothing (a `succeeded` for a payment already paid: Stripe sends
them again and again) take the short path — the payment read as a row, the event recorded
on a connection of its own — and still count once each, also when they race."""

from __future__ import annotations

import random
import threading
import time

import sqlalchemy as sa

from magazine.clock import now_utc
from magazine.db import db
from magazine.models import AuditEvent, OutboxMail
from subscriptions.models import ProviderEvent
from subscriptions.states import OrderState, PaymentState
from tests.payments.conftest import count, read_payment
from tests.payments.test_stripe import intent_event, post_signed


def test_repeated_success_of_a_paid_payment_is_recorded_once_and_changes_nothing(
        app, with_stripe, buyer_order):
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    assert post_signed(app, intent_event("evt_first", payment_id, "succeeded",
                                         created=now)).text == "applied"
    mails = count(app, sa.select(OutboxMail))
    with_stripe.fail_next(10)  # Stripe is not asked

    answers = [post_signed(app, intent_event(event_id, payment_id, "succeeded",
                                             created=now + 1)).text
               for event_id in ("evt_again", "evt_again", "evt_once_more")]
    with_stripe.reset()

    assert answers == ["applied", "duplicate", "applied"]
    assert count(app, sa.select(ProviderEvent)) == 3
    assert count(app, sa.select(ProviderEvent).where(
        ProviderEvent.event_ref == "evt_again", ProviderEvent.payment_id == payment_id)) == 1
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1
    assert count(app, sa.select(OutboxMail)) == mails
    payment = read_payment(app, payment_id)
    assert (payment.state, payment.intent_ref) == (PaymentState.PAID, "pi_signed_1")
    assert payment.order.state == OrderState.PAID
    with app.app_context():
        # Recorded on the driver: the same row as the session would write.
        recorded = db.session.scalars(sa.select(ProviderEvent).where(
            ProviderEvent.event_ref == "evt_again")).one()
        assert (recorded.provider, recorded.kind, recorded.payment_id) == (
            "stripe", "payment_intent.succeeded", payment_id)
        assert abs((now_utc() - recorded.received_at).total_seconds()) < 60
        assert db.session.scalar(sa.select(ProviderEvent.id).where(
            ProviderEvent.received_at <= now_utc(),
            ProviderEvent.event_ref == "evt_again")) == recorded.id
        db.session.remove()


def test_first_success_after_a_processing_takes_the_full_path(app, with_stripe, buyer_order):
    """A pending payment's success is not a repeat: the order is paid, once."""
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    with_stripe.fail_next(10)

    answers = [post_signed(app, intent_event(event_id, payment_id, status, created=now)).text
               for event_id, status in (("evt_p", "processing"), ("evt_p2", "processing"),
                                        ("evt_s", "succeeded"), ("evt_s2", "succeeded"))]
    with_stripe.reset()

    assert answers == ["applied"] * 4
    payment = read_payment(app, payment_id)
    assert payment.state == PaymentState.PAID and payment.order.state == OrderState.PAID
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_racing_repeats_are_each_recorded_once(app, with_stripe, buyer_order):
    """8 threads post the same 6 repeats of a success in their own order: each event is
    answered `applied` once and `duplicate` every other time, none fails."""
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    post_signed(app, intent_event("evt_paid", payment_id, "succeeded", created=now))
    events = [intent_event(f"evt_race_{n}", payment_id, "succeeded", created=now + 1)
              for n in range(6)]
    answers: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def deliver(seed: int) -> None:
        mine = list(events)
        random.Random(seed).shuffle(mine)
        start.wait()
        for event in mine:
            response = post_signed(app, event)
            with lock:
                answers.append((event["id"], response.status_code, response.text))

    with_stripe.fail_next(100)
    threads = [threading.Thread(target=deliver, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with_stripe.reset()

    assert len(answers) == 48 and {status for _, status, _ in answers} == {200}
    for event in events:
        texts = sorted(text for event_id, _, text in answers if event_id == event["id"])
        assert texts == ["applied"] + ["duplicate"] * 7, (event["id"], texts)
    assert count(app, sa.select(ProviderEvent)) == 7
    assert count(app, sa.select(AuditEvent).where(AuditEvent.action == "payment.paid")) == 1


def test_a_repeat_does_not_wait_for_the_disk_and_leaves_the_connection_as_it_was(
        app, with_stripe, buyer_order):
    """The short path's record skips the WAL flush for its own transaction only
    (PostgreSQL); the pooled connections it used are back to synchronous commits, inside
    transactions (SQLite: nothing to check but the record)."""
    _, payment_id, _ = buyer_order("stripe")
    now = int(time.time())
    assert post_signed(app, intent_event("evt_paid", payment_id, "succeeded",
                                         created=now)).text == "applied"
    with_stripe.fail_next(10)
    for number in range(4):
        assert post_signed(app, intent_event(f"evt_repeat_{number}", payment_id, "succeeded",
                                             created=now + 1)).text == "applied"
    with_stripe.reset()
    assert count(app, sa.select(ProviderEvent).where(
        ProviderEvent.event_ref.like("evt_repeat_%"))) == 4
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return
        from subscriptions.payments import record_event_statement

        for _ in range(3):  # every pooled connection
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
                assert not connection.connection.dbapi_connection.autocommit
        with db.engine.connect() as connection:
            assert connection.execute(record_event_statement("postgresql", durable=False), {
                "provider": "stripe", "event_ref": "evt_probe", "kind": "probe",
                "payment_id": payment_id, "received_at": now_utc()}).scalar() is not None
            # Within the statement's transaction only.
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            connection.rollback()
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
