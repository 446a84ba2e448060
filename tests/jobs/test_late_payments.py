"""A renewal paid after its subscription lapsed: on the coordinator's list, then a new
subscription from the next issue or a refund, each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from magazine.clock import frozen
from magazine.db import db, write_transaction
from magazine.roles import Role
from subscriptions import renewals, services
from subscriptions.fulfilment_models import (
    LATE_PAYMENT_TRANSITIONS,
    LatePaymentState,
    LateRenewalPayment,
)
from subscriptions.models import CreditNote, Refund, RenewalOrder, Subscription
from subscriptions.states import SubscriptionState as S
from tests.factories import make_user
from tests.jobs.factories import make_subscription

GRACED_AT = datetime(2026, 12, 1, 6, tzinfo=UTC)
LAPSED_AT = GRACED_AT + timedelta(days=31)
PAID_AT = datetime(2027, 2, 1, 9, tzinfo=UTC)  # after 3.2's cut-off: 3.3 is next


def lapsed_with_a_late_payment(w) -> tuple[Subscription, RenewalOrder]:
    user = make_user(name="Laura Laat", email="laura@example.org")
    sub = make_subscription(w.print_plan, user, state=S.GRACED, remaining=0, grace_used=1,
                            graced_at=GRACED_AT, copies=2,
                            addresses=[{"street": "Stationsstraat 4", "copies": 2}])
    with frozen(GRACED_AT), write_transaction():
        renewal = renewals.renewal_order_for(db.session.get(Subscription, sub.id),
                                             provider_name="bank_transfer")
    renewal_id = renewal.id
    with frozen(LAPSED_AT):
        assert renewals.run_lapse().lapsed == 1
    with frozen(PAID_AT):
        renewal = db.session.get(RenewalOrder, renewal_id)
        services.record_bank_transfer(renewal.order, actor=db.session.get(
            type(w.coordinator), w.coordinator.id))
        db.session.commit()
        assert renewals.run_renewals().applied == 0
        assert renewals.run_renewals().applied == 0
    return sub, db.session.get(RenewalOrder, renewal_id)


def test_the_late_payment_states_are_a_table():
    expected = {
        LatePaymentState.WAITING: {LatePaymentState.RESTARTED, LatePaymentState.REFUNDED},
        LatePaymentState.RESTARTED: set(),
        LatePaymentState.REFUNDED: set(),
    }
    assert expected == LATE_PAYMENT_TRANSITIONS


def test_a_late_payment_waits_and_starts_a_new_subscription_from_the_next_issue_once(
        world, login_as, outbox):
    old, renewal = lapsed_with_a_late_payment(world)
    [late] = db.session.scalars(sa.select(LateRenewalPayment)).all()
    assert (late.state, late.renewal_order_id) == (LatePaymentState.WAITING, renewal.id)
    assert db.session.get(Subscription, old.id).state == S.LAPSED

    office = login_as(Role.COORDINATOR)
    with frozen(PAID_AT):
        page = office.get("/business/subscriptions/late-payments/")
        assert f'id="late-{late.id}"' in page.text and renewal.order.reference in page.text
        first = office.post(f"/business/subscriptions/late-payments/{late.id}/restart")
        second = office.post(f"/business/subscriptions/late-payments/{late.id}/restart")
        refund = office.post(f"/business/subscriptions/late-payments/{late.id}/refund",
                             data={"reason": "te laat"})
    assert first.status_code == second.status_code == refund.status_code == 302
    db.session.expire_all()
    late = db.session.get(LateRenewalPayment, late.id)
    new = late.new_subscription
    assert late.state == LatePaymentState.RESTARTED and late.settled_by_id is not None
    assert (new.state, new.first_issue_id, new.issues_remaining, new.copies, new.order_id) \
        == (S.ACTIVE, world.next_issue.id, 5, 2, renewal.order_id)
    assert [(a.street, a.copies) for a in new.addresses] == [("Stationsstraat 4", 2)]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0
    assert len([m for m in outbox("laura@example.org")
                if m.template == "renewals_restarted"]) == 1
    page = office.get("/business/subscriptions/late-payments/")
    assert 'id="late-none"' in page.text and 'id="late-settled"' in page.text


def test_a_late_payment_is_refunded_through_its_provider_once(world, login_as):
    _old, renewal = lapsed_with_a_late_payment(world)
    late_id = db.session.scalar(sa.select(LateRenewalPayment.id))
    office = login_as(Role.COORDINATOR)
    with frozen(PAID_AT):
        office.post(f"/business/subscriptions/late-payments/{late_id}/refund",
                    data={"reason": "Betaald na het einde van het abonnement"})
        office.post(f"/business/subscriptions/late-payments/{late_id}/refund",
                    data={"reason": "nog eens"})
        office.post(f"/business/subscriptions/late-payments/{late_id}/restart")
    db.session.expire_all()
    late = db.session.get(LateRenewalPayment, late_id)
    assert late.state == LatePaymentState.REFUNDED and late.new_subscription_id is None
    [refund] = db.session.scalars(sa.select(Refund)).all()
    assert late.refund_id == refund.id and refund.amount_cents == renewal.order.total_cents
    [note] = db.session.scalars(sa.select(CreditNote)).all()
    assert note.total_cents == renewal.order.total_cents
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 1
