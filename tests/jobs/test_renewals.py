"""Renewals with the clock under control: charges and their retries, needing the
customer, renewal orders by transfer, reminders, grace and lapse, and idempotence."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from magazine.clock import frozen
from magazine.db import db
from magazine.jobs import Progress
from magazine.models import OutboxMail
from subscriptions import dispatch, renewals, services
from subscriptions.jobs import lapse_job, renewal_reminders_job, renewals_job
from subscriptions.models import (
    ChargeStatus,
    Invoice,
    Mandate,
    MandateState,
    Order,
    RenewalCharge,
    RenewalOrder,
    Subscription,
)
from subscriptions.providers.base import ChargeOutcome
from subscriptions.states import OrderState
from subscriptions.states import SubscriptionState as S
from tests.factories import make_user
from tests.jobs.factories import make_subscription

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def fresh(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get(Subscription, subscription.id)


def mails(template: str) -> list[OutboxMail]:
    return list(db.session.scalars(sa.select(OutboxMail).where(
        OutboxMail.template == template).order_by(OutboxMail.id)))


def test_a_used_up_term_on_a_mandate_is_charged_once_and_renewed(world, testpay,
                                                                  mandate_for):
    user = make_user()
    mandate_for(user)
    sub = make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        result = renewals.run_renewals()
        assert result.summary() == "renewals: 1 charged, 0 failed (retry), 0 need the customer"
        again = renewals.run_renewals()
    assert again.summary() == "renewals: 0 charged, 0 failed (retry), 0 need the customer"
    assert list(testpay.paid_keys()) == [f"renewal-{sub.id}-2-1"]
    sub = fresh(sub)
    assert (sub.term, sub.issues_remaining, sub.issues_granted, sub.state) == (2, 5, 10,
                                                                              S.ACTIVE)
    renewal = db.session.scalar(sa.select(RenewalOrder))
    assert renewal.order.state == OrderState.PAID and renewal.order.invoice is not None
    assert renewal.order.total_cents == 6500
    assert len(mails("renewals_renewed")) == 1


def test_failed_charges_retry_on_days_1_3_7_then_need_the_customer(world, testpay,
                                                                   mandate_for):
    testpay.default = ChargeOutcome.FAILED_RETRYABLE
    user = make_user()
    mandate_for(user)
    sub = make_subscription(world.print_plan, user, remaining=0)
    summaries = []
    for day in (0, 1, 4, 11):
        with frozen(NOW + timedelta(days=day)):
            summaries.append(renewals.run_renewals().summary())
            # Between the attempts nothing is due.
            assert "0 failed" in renewals.run_renewals().summary()
    assert summaries == ["renewals: 0 charged, 1 failed (retry), 0 need the customer"] * 3 + [
        "renewals: 0 charged, 0 failed (retry), 1 need the customer"]
    attempts = db.session.scalars(sa.select(RenewalCharge).order_by(RenewalCharge.attempt))
    assert [(c.attempt, c.status, c.due_at - NOW) for c in attempts] == [
        (1, ChargeStatus.FAILED, timedelta(0)),
        (2, ChargeStatus.FAILED, timedelta(days=1)),
        (3, ChargeStatus.FAILED, timedelta(days=4)),
        (4, ChargeStatus.NEEDS_CUSTOMER, timedelta(days=11)),
    ]
    assert testpay.calls == [f"renewal-{sub.id}-2-{n}" for n in (1, 2, 3, 4)]
    assert len(mails("renewals_charge_failed")) == 3
    needs = mails("renewals_needs_customer")
    assert len(needs) == 1 and "/account/orders/" in needs[0].body_text
    assert fresh(sub).term == 1


def test_the_retry_days_are_a_setting(world, testpay, mandate_for, app, monkeypatch):
    monkeypatch.setitem(app.config, "RENEWAL_RETRY_DAYS", (2, 5))
    testpay.default = ChargeOutcome.FAILED_RETRYABLE
    user = make_user()
    mandate_for(user)
    make_subscription(world.print_plan, user, remaining=0)
    for day in (0, 1, 2, 6, 7):
        with frozen(NOW + timedelta(days=day)):
            renewals.run_renewals()
    attempts = db.session.scalars(sa.select(RenewalCharge).order_by(RenewalCharge.attempt))
    assert [(c.attempt, c.status, c.due_at - NOW) for c in attempts] == [
        (1, ChargeStatus.FAILED, timedelta(0)),
        (2, ChargeStatus.FAILED, timedelta(days=2)),
        (3, ChargeStatus.NEEDS_CUSTOMER, timedelta(days=7)),
    ]


def test_an_unanswered_charge_is_asked_again_with_the_same_key(world, testpay, mandate_for):
    testpay.unanswered = 1  # carried out at the provider, but the answer is lost
    user = make_user()
    mandate_for(user)
    sub = make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        first = renewals.run_renewals()
        assert renewals.run_renewals().charged == 0  # not due again yet
    assert first.summary() == ("renewals: 0 charged, 0 failed (retry), 0 need the customer, "
                               "1 unanswered (same charge again in an hour)")
    assert len(mails("renewals_charge_failed")) == 0
    with frozen(NOW + timedelta(hours=1, minutes=1)):
        assert renewals.run_renewals().charged == 1
    key = f"renewal-{sub.id}-2-1"
    assert testpay.calls == [key, key] and list(testpay.paid_keys()) == [key]
    assert [(c.attempt, c.status) for c in db.session.scalars(sa.select(RenewalCharge))] == [
        (1, ChargeStatus.PAID)]
    assert fresh(sub).term == 2


def test_a_hard_decline_goes_to_the_customer_at_once(world, testpay, mandate_for):
    testpay.script = [ChargeOutcome.FAILED_NEEDS_CUSTOMER]
    user = make_user()
    mandate_for(user)
    make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        assert renewals.run_renewals().needs_customer == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RenewalCharge)) == 1


def test_a_revoked_mandate_is_not_charged(world, testpay, mandate_for):
    user = make_user()
    mandate = mandate_for(user)
    mandate.state = MandateState.REVOKED
    db.session.commit()
    make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        result = renewals.run_renewals()
    assert result.charged == 0 and testpay.calls == []


def test_the_summary_line_counts_each_outcome(world, testpay, mandate_for):
    testpay.script = [ChargeOutcome.PAID, ChargeOutcome.FAILED_RETRYABLE,
                      ChargeOutcome.FAILED_NEEDS_CUSTOMER]
    for _ in range(3):
        user = make_user()
        mandate_for(user)
        make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        assert renewals_job(Progress()).summary() == (
            "renewals: 1 charged, 1 failed (retry), 1 need the customer")
        assert "already done" in renewals_job(Progress()).summary()


def test_reminders_announce_a_charge_or_bring_a_renewal_order(world, testpay, mandate_for):
    on_mandate = make_user(email="mandaat@example.org")
    mandate_for(on_mandate)
    by_transfer = make_user(email="overschrijving@example.org")
    giver = make_user(email="gever@example.org")
    a = make_subscription(world.print_plan, on_mandate, remaining=1)
    b = make_subscription(world.print_plan, by_transfer, remaining=1)
    make_subscription(world.print_plan, giver, remaining=1, auto_renew=False,
                      gift_recipient_name="Mia", gift_recipient_email="mia@example.org")
    make_subscription(world.print_plan, make_user(), remaining=2)  # not yet
    make_subscription(world.print_plan, make_user(), remaining=1, complimentary=True,
                      auto_renew=False)
    early = datetime(2026, 11, 1, 7, tzinfo=UTC)  # the cut-off (10 Jan) is far away
    with frozen(early):
        result = renewals.send_reminders()
        assert result.summary() == ("renewal-reminders: 1 charge notices, 1 renewal links, "
                                    "1 gift reminders")
        assert renewals.send_reminders().summary() == (
            "renewal-reminders: 0 charge notices, 0 renewal links, 0 gift reminders")
    notice = mails("renewals_charge_notice")
    assert [m.to_address for m in notice] == ["mandaat@example.org"]
    assert "65,00" in notice[0].body_text and "6769" in notice[0].body_text
    pay = mails("renewals_pay_reminder")[0]
    order = db.session.scalar(sa.select(RenewalOrder).where(
        RenewalOrder.subscription_id == b.id)).order
    assert order.formatted_communication in pay.body_text and order.invoice is not None
    assert mails("renewals_gift_ending")[0].to_address == "gever@example.org"
    # Fourteen days before the cut-off of the next issue: the second reminder, once.
    with frozen(datetime(2026, 12, 28, 7, tzinfo=UTC)):
        assert renewals.send_reminders().charge_notices == 1
        assert renewal_reminders_job(Progress()).summary().startswith(
            "renewal-reminders: 0 charge notices, 0 renewal links")
    assert len(mails("renewals_pay_reminder")) == 2  # the same order, mailed again
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RenewalOrder)) == 1
    assert a.id


def test_a_renewal_paid_by_transfer_is_applied_once(world):
    user = make_user()
    sub = make_subscription(world.print_plan, user, remaining=1)
    with frozen(NOW):
        renewals.send_reminders()
        order = db.session.scalar(sa.select(Order).join(
            RenewalOrder, RenewalOrder.order_id == Order.id))
        coordinator = db.session.get(type(world.coordinator), world.coordinator.id)
        services.record_bank_transfer(order, actor=coordinator)
        db.session.commit()
        assert renewals.run_renewals().applied == 1
        assert renewals.run_renewals().applied == 0
    sub = fresh(sub)
    assert (sub.term, sub.issues_remaining) == (2, 6)


def test_grace_then_the_grace_issue_then_a_late_payment_counts_it(world, testpay,
                                                                  mandate_for):
    testpay.default = ChargeOutcome.FAILED_NEEDS_CUSTOMER
    user = make_user()
    mandate_for(user)
    sub = make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        renewals.run_renewals()
        assert renewals.run_lapse().summary() == "lapse: 1 graced, 0 lapsed, 0 ended " \
                                                 "without renewal"
        assert renewals.run_lapse().graced == 0
    assert fresh(sub).state == S.GRACED
    assert len(mails("renewals_graced")) == 1
    with frozen(datetime(2027, 1, 11, 6, tzinfo=UTC)):
        dispatch.dispatch_issue(world.issue)  # the grace issue
    sub = fresh(sub)
    assert (sub.issues_remaining, sub.grace_issues_used) == (0, 1)
    testpay.default = ChargeOutcome.PAID
    order = db.session.scalar(sa.select(RenewalOrder)).order
    with frozen(datetime(2027, 1, 20, 6, tzinfo=UTC)):
        services.record_manual_payment(order, actor=db.session.get(
            type(world.coordinator), world.coordinator.id), note="cash")
        db.session.commit()
        assert lapse_job(Progress()).summary().endswith("1 paid renewals applied")
    sub = fresh(sub)
    assert (sub.state, sub.term, sub.issues_remaining, sub.grace_issues_used) == (
        S.ACTIVE, 2, 4, 0)


def test_grace_passes_into_lapse_after_the_grace_issue_and_the_grace_days(world):
    user = make_user()
    graced_at = datetime(2027, 1, 1, tzinfo=UTC)
    waiting = make_subscription(world.print_plan, user, state=S.GRACED, remaining=0,
                                grace_used=0, graced_at=graced_at)
    done = make_subscription(world.print_plan, make_user(), state=S.GRACED, remaining=0,
                             grace_used=1, graced_at=graced_at)
    with frozen(graced_at + timedelta(days=29)):
        assert renewals.run_lapse().lapsed == 0
    with frozen(graced_at + timedelta(days=30)):
        assert renewals.run_lapse().lapsed == 1
        assert renewals.run_lapse().lapsed == 0
    assert fresh(done).state == S.LAPSED and fresh(waiting).state == S.GRACED
    assert len(mails("renewals_lapsed")) == 1


def test_gifts_complimentary_and_cancelled_end_without_grace(world):
    gift = make_subscription(world.print_plan, make_user(), remaining=0, auto_renew=False,
                             gift_recipient_name="Mia", gift_recipient_email="mia@example.org")
    partner = make_subscription(world.print_plan, make_user(), remaining=0, auto_renew=False,
                                complimentary=True)
    with frozen(NOW):
        result = renewals.run_lapse()
    assert (result.graced, result.ended) == (0, 2)
    assert fresh(gift).state == S.CANCELLED and fresh(partner).state == S.CANCELLED


def test_a_charge_left_by_a_dead_process_is_charged_again_with_the_same_key(
        world, testpay, mandate_for):
    """A scheduler died after the provider charged and before it recorded it: the next
    run takes the row back and charges with the same key, which the provider answers with
    the first charge."""
    user = make_user()
    mandate_for(user)
    sub = make_subscription(world.print_plan, user, remaining=0)
    with frozen(NOW):
        renewals.schedule_first_attempts()
        charge = db.session.scalar(sa.select(RenewalCharge))
        testpay.charge_mandate(None, mandate_ref="m", idempotency_key=charge.idempotency_key)
        charge.status, charge.claimed_by, charge.claimed_at = (
            ChargeStatus.CHARGING, "this-host-is-gone:1", NOW - timedelta(hours=1))
        db.session.commit()
        result = renewals.run_renewals()
    assert result.released == 1 and result.charged == 1
    assert list(testpay.paid_keys()) == [f"renewal-{sub.id}-2-1"]
    assert testpay.calls == [f"renewal-{sub.id}-2-1"] * 2
    assert fresh(sub).term == 2
    assert db.session.scalar(sa.select(Mandate.state)) == MandateState.VALID


def test_charges_made_side_by_side_are_each_made_once_with_gapless_invoices(
        world, testpay, mandate_for, app, monkeypatch):
    """RENEWAL_CONCURRENCY threads charge at once: each charge once, by its own key, in
    its own thread and session, with no transaction open while the provider answers."""
    monkeypatch.setitem(app.config, "RENEWAL_CONCURRENCY", 4)
    testpay.script = [ChargeOutcome.PAID] * 9 + [ChargeOutcome.FAILED_RETRYABLE,
                                                 ChargeOutcome.FAILED_NEEDS_CUSTOMER,
                                                 ChargeOutcome.PENDING]
    subs = []
    for _ in range(12):
        user = make_user()
        mandate_for(user)
        subs.append(make_subscription(world.print_plan, user, remaining=0))
    threads, open_transactions = set(), []
    charge = testpay.charge_mandate

    def watched(payment, **kwargs):
        threads.add(threading.current_thread().name)
        open_transactions.append(db.session().in_transaction())
        time.sleep(0.02)  # a provider that takes a moment: the calls overlap
        return charge(payment, **kwargs)

    monkeypatch.setattr(testpay, "charge_mandate", watched)
    with frozen(NOW):
        result = renewals.run_renewals()
        again = renewals.run_renewals()
    assert result.summary() == ("renewals: 9 charged, 1 failed (retry), 1 need the customer, "
                                "1 pending at the bank")
    assert again.summary() == "renewals: 0 charged, 0 failed (retry), 0 need the customer"
    assert sorted(testpay.calls) == sorted(f"renewal-{s.id}-2-1" for s in subs)
    assert len(threads) > 1 and all(name.startswith("renewals") for name in threads)
    assert open_transactions == [False] * 12
    db.session.expire_all()
    assert sorted(db.session.scalars(sa.select(Invoice.sequence))) == list(range(1, 10))
    assert sum(s.term == 2 for s in db.session.scalars(sa.select(Subscription))) == 9
    assert len(mails("renewals_renewed")) == 9
    statuses = sorted(c.status.value for c in db.session.scalars(sa.select(RenewalCharge)))
    assert statuses == sorted(["paid"] * 9 + ["failed", "due", "needs_customer",
                                              "pending"])


def test_renewal_concurrency_is_a_setting_from_1_to_8(tmp_path):
    from magazine.config import ConfigError, load_settings

    assert load_settings(tmp_path, {"APP_ENV": "test"})["RENEWAL_CONCURRENCY"] == 4
    assert load_settings(tmp_path, {"APP_ENV": "test", "RENEWAL_CONCURRENCY": "1"})[
        "RENEWAL_CONCURRENCY"] == 1
    with pytest.raises(ConfigError, match="RENEWAL_CONCURRENCY"):
        load_settings(tmp_path, {"APP_ENV": "test", "RENEWAL_CONCURRENCY": "0"})
