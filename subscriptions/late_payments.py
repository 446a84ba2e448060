"""Renewals paid too late: the money came in after the subscription lapsed (or ended), so
`renewals.apply_renewal` could not add the term. Each such payment waits for the
coordinator (`/business/subscriptions/late-payments`), who either starts a new
subscription from the next issue, paid by that renewal order, or pays it back through the
provider. One function per state change; each claims the row by a conditional update in
the transaction that does the work, so two clicks (or two coordinators) settle it once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from flask_babel import gettext as _

from editorial.models import next_issue_for_changes
from magazine import audit
from magazine.clock import now_utc
from magazine.db import db, insert_ignoring_duplicates
from magazine.errors import DomainError
from magazine.mail import queue_mail
from magazine.models import User
from magazine.urls import external_url
from subscriptions import services
from subscriptions.fulfilment_models import (
    LATE_PAYMENT_TRANSITIONS,
    LatePaymentState,
    LateRenewalPayment,
)
from subscriptions.models import (
    DeliveryAddress,
    Payment,
    Refund,
    RenewalOrder,
    Subscription,
)
from subscriptions.states import PaymentState, SubscriptionState


def record_late_payment(renewal: RenewalOrder) -> None:
    """Put a paid renewal order that could not be applied on the coordinator's list (once
    per renewal order)."""
    db.session.execute(
        insert_ignoring_duplicates(LateRenewalPayment)
        .values(renewal_order_id=renewal.id, subscription_id=renewal.subscription_id,
                state=LatePaymentState.WAITING, created_at=now_utc())
        .on_conflict_do_nothing(index_elements=["renewal_order_id"])
    )


def waiting() -> Sequence[LateRenewalPayment]:
    return db.session.scalars(
        sa.select(LateRenewalPayment)
        .where(LateRenewalPayment.state == LatePaymentState.WAITING)
        .order_by(LateRenewalPayment.created_at, LateRenewalPayment.id)).all()


def settled(limit: int = 50) -> Sequence[LateRenewalPayment]:
    return db.session.scalars(
        sa.select(LateRenewalPayment)
        .where(LateRenewalPayment.state != LatePaymentState.WAITING)
        .order_by(LateRenewalPayment.settled_at.desc(), LateRenewalPayment.id.desc())
        .limit(limit)).all()


def paid_payment(late: LateRenewalPayment) -> Payment | None:
    """The payment that paid the renewal order (the one to refund)."""
    return db.session.scalar(
        sa.select(Payment).where(Payment.order_id == late.renewal.order_id,
                                 Payment.state == PaymentState.PAID)
        .order_by(Payment.id.desc()).limit(1))


def _settle(late: LateRenewalPayment, to: LatePaymentState, *, actor: User) -> None:
    """Claim the move `waiting → to` for this transaction (a second one fails here)."""
    services._require_coordinator(actor)
    if to not in LATE_PAYMENT_TRANSITIONS[late.state]:
        raise DomainError(_("This payment was settled already."))
    claimed = db.session.execute(
        sa.update(LateRenewalPayment)
        .where(LateRenewalPayment.id == late.id,
               LateRenewalPayment.state == LatePaymentState.WAITING)
        .values(state=to, settled_by_id=actor.id, settled_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise DomainError(_("This payment was settled already."))
    db.session.refresh(late)


def restart_subscription(late: LateRenewalPayment, *, actor: User) -> Subscription:
    """waiting → restarted: a new subscription of the renewal's plan, from the next issue
    whose cut-off has not passed, with the old one's copies, addresses and auto-renew,
    paid by the renewal order (its invoice is issued if it was not yet). The subscriber is
    mailed."""
    _settle(late, LatePaymentState.RESTARTED, actor=actor)
    old = late.subscription
    renewal = late.renewal
    plan = renewal.plan
    first = next_issue_for_changes(services.today_brussels())
    subscription = Subscription(
        subscriber_id=old.subscriber_id, plan_id=plan.id, order_id=renewal.order_id,
        copies=old.copies, issues_granted=plan.issues_per_term,
        issues_remaining=plan.issues_per_term, first_issue_id=first.id if first else None,
        auto_renew=old.auto_renew, state=SubscriptionState.PENDING_PAYMENT,
    )
    if plan.includes_print:
        for group_no in sorted({row.group_no for row in old.addresses}):
            row = services.address_for_issue(old, group_no, first)
            subscription.addresses.append(DeliveryAddress(
                group_no=row.group_no, copies=row.copies, name=row.name,
                organisation=row.organisation, street=row.street, postcode=row.postcode,
                city=row.city, country=row.country))
    db.session.add(subscription)
    db.session.flush()
    services.move_subscription(subscription, SubscriptionState.ACTIVE, actor=actor,
                               reason="late renewal payment")
    subscription.activated_at = now_utc()
    late.new_subscription_id = subscription.id
    invoice = services.issue_invoice(renewal.order, actor=actor)
    audit.record("renewal.late_restarted", "subscription", old.id, actor=actor,
                 order=renewal.order_id, new_subscription=subscription.id,
                 first_issue=first.code if first else None)
    user = subscription.subscriber
    if user is not None:
        queue_mail(user.email, "renewals_restarted", key=f"late-restarted:{late.id}",
                   locale=user.locale, name=user.name, plan_name=plan.name(user.locale),
                   issues=subscription.issues_remaining, first_issue=first, invoice=invoice,
                   account_url=external_url("core.account"))
    return subscription


def refund_late_payment(late: LateRenewalPayment, *, actor: User, reason: str) -> Refund:
    """waiting → refunded: the whole payment paid back through its provider
    (`payments.refund_payment`: a credit note if it was invoiced, a mail to the buyer).
    A provider that refuses leaves it waiting (the transaction is rolled back)."""
    from subscriptions import payments

    _settle(late, LatePaymentState.REFUNDED, actor=actor)
    payment = paid_payment(late)
    if payment is None or payment.refundable_cents <= 0:
        raise DomainError(_("Nothing is left to refund on this order."))
    refund = payments.refund_payment(payment, payment.refundable_cents, reason=reason,
                                     actor=actor, request_key=f"late-renewal-{late.id}")
    late.refund_id = refund.id
    audit.record("renewal.late_refunded", "subscription", late.subscription_id, actor=actor,
                 order=late.renewal.order_id, refund=refund.id,
                 amount_cents=refund.amount_cents)
    return refund
