"""Online payments (Stripe, Mollie): starting and retrying a payment, applying what the
provider reports, refunds and chargebacks, saved methods (mandates), and off-session charges
for the renewals job.

Every provider answer is applied by `apply_provider_payment`, the one place that moves an
online payment: under a row lock on the order and then the payment (the same order every
path takes them, so no deadlocks), returning early when nothing is new. Webhooks, the
browser's return page and the reconcile job all call it, so duplicates, events out of order
(a refund reported before the success) and their races change nothing twice. Refunds,
chargebacks and mandates are recorded once by their provider id (unique constraints).

A chargeback of what paid an order reopens it and suspends its subscription until it is
paid again or the chargeback is reversed; money for an order that no longer wants it is paid
back automatically (see `_paid_after_close`). Replacement methods are recorded as setups
(`MethodSetup`) and saved once by `finish_setup`, from the return page, the webhook or the
reconcile job.

Provider calls happen before the lock where possible; a provider that is down raises
`ProviderUnavailable`, which callers turn into "try again" (the payment stays visible).
Services flush; the view or job commits.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from magazine import audit
from magazine.clock import now_utc
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.mail import queue_mail
from magazine.models import User
from magazine.urls import external_url
from subscriptions import services
from subscriptions.models import (
    Chargeback,
    Mandate,
    MandateState,
    MethodSetup,
    Order,
    Payment,
    ProviderEvent,
    Refund,
)
from subscriptions.providers import PROVIDERS, get_provider
from subscriptions.providers.base import (
    ChargeOutcome,
    ChargeResult,
    ProviderError,
    ProviderMoney,
    ProviderPayment,
    ProviderRefused,
    ProviderUnavailable,
    SavedMethod,
)
from subscriptions.states import OrderState, PaymentState, SubscriptionState

log = logging.getLogger(__name__)

OPEN_STATES = (PaymentState.OPEN, PaymentState.PENDING)
ENDED_STATES = (PaymentState.FAILED, PaymentState.CANCELLED, PaymentState.EXPIRED)
# `payment.last_error` of money that arrived for an order that no longer wanted it: paid
# back automatically through the provider (SURPLUS), done (SURPLUS_REFUNDED).
SURPLUS = "paid_after_close"
SURPLUS_REFUNDED = "paid_after_close_refunded"
# A chargeback the provider reports as undone: Stripe dispute won / funds reinstated,
# Mollie `reversedAt`.
REVERSED_STATUSES = frozenset({"won", "reversed", "funds_reinstated"})


def is_surplus(payment: Payment) -> bool:
    return payment.last_error in (SURPLUS, SURPLUS_REFUNDED)


def online_provider_names() -> list[str]:
    return [name for name, provider in PROVIDERS.items() if provider.online]


def provider_available(name: str) -> bool:
    """Its key is set (a payment made while it was, e.g. demo data, may outlive it)."""
    return get_provider(name).is_available(current_app)


def is_online(payment: Payment) -> bool:
    return payment.provider in online_provider_names()


def return_url(payment: Payment) -> str:
    return external_url("payments.payment_return", payment_id=payment.id)


# ---------------------------------------------------------------- starting a payment

def open_online_payment(order: Order, provider, *, buyer: User, save_method: bool):
    """The payment of a new order at an online provider, and its invoice. When the provider
    does not answer, the order is placed all the same: the buyer lands on the payment page,
    which says so and offers to try again."""
    payment = _new_attempt(order, provider.name, save_method=save_method)
    invoice = services.issue_invoice(order, actor=buyer)
    # The same confirmation as a bank transfer's (the template says how this order is paid):
    # the buyer has the order, its invoice and a way back to pay even if they leave the
    # provider's page.
    services._mail_order_confirmation(order, invoice)
    started = start_online_payment(payment)
    return services.PlacedOrder(order, go_url(payment) if started else return_url(payment))


def go_url(payment: Payment) -> str:
    """Our page that sends the browser on to the provider. A form's answer cannot redirect
    to another site under our Content-Security-Policy (`form-action 'self'` also covers the
    redirects after a POST), so the POST lands here and this page moves on."""
    return external_url("payments.payment_go", payment_id=payment.id)


def _new_attempt(order: Order, provider_name: str, *, save_method: bool) -> Payment:
    payment = Payment(order_id=order.id, provider=provider_name,
                      amount_cents=order.total_cents, save_method=save_method)
    db.session.add(payment)
    db.session.flush()
    # Derived from what it pays for: the order and this attempt. A retry after a timeout
    # sends the same key, and the provider answers with the payment it made the first time.
    payment.idempotency_key = f"order-{order.id}-payment-{payment.id}"
    db.session.flush()
    return payment


def start_online_payment(payment: Payment) -> bool:
    """Open the payment at its provider; True when the buyer can go and pay. On failure the
    reason is kept on the payment (for the coordinator) and the buyer gets a retry."""
    provider = get_provider(payment.provider)
    try:
        start = provider.start_payment(payment, return_url=return_url(payment))
    except ProviderUnavailable as error:
        log.warning("payment %s: %s", payment.id, error)
        payment.last_error = "unavailable"
        audit.record("payment.start_failed", "payment", payment.id, actor=None,
                     error=str(error)[:300])
        db.session.flush()
        return False
    except ProviderRefused as error:
        log.error("payment %s refused by %s: %s", payment.id, payment.provider, error)
        payment.last_error = str(error)[:300]
        audit.record("payment.start_refused", "payment", payment.id, actor=None,
                     error=str(error)[:300])
        db.session.flush()
        return False
    payment.provider_ref = start.provider_ref
    payment.checkout_url = start.redirect_url
    payment.last_error = ""
    db.session.flush()
    audit.record("payment.started", "payment", payment.id, actor=None,
                 provider=payment.provider, provider_ref=payment.provider_ref)
    return True


def retry_online_payment(payment: Payment, *, actor: User) -> str | None:
    """The buyer wants to pay (again): where to send them, or None with nothing to do.

    Not started (the provider was down): start it again, with the same key. Still open:
    back to the provider's page. Failed, cancelled or expired while the order still awaits
    payment: a new attempt (a new key: it is another payment)."""
    order = payment.order
    if order.user_id != actor.id and not services.is_coordinator(actor):
        raise PermissionDenied(_("This is not your order."))
    if order.state != OrderState.AWAITING_PAYMENT:
        return None
    if not provider_available(payment.provider):
        raise DomainError(_("Paying online this way is not possible at the moment. You can "
                            "pay by bank transfer with the details on your order page."))
    if payment.state in OPEN_STATES and payment.provider_ref:
        try:
            sync_payment(payment)
        except ProviderError as error:
            log.warning("payment %s not refreshed before a retry: %s", payment.id, error)
            raise DomainError(_("The payment service does not answer at the moment. Try again "
                                "in a few minutes; your order is kept.")) from error
        if payment.state == PaymentState.OPEN and payment.checkout_url:
            return payment.checkout_url
        if payment.state in OPEN_STATES or order.state != OrderState.AWAITING_PAYMENT:
            return None
    if payment.state == PaymentState.OPEN and not payment.provider_ref:
        attempt = payment
    else:
        attempt = _new_attempt(order, payment.provider, save_method=payment.save_method)
    if not start_online_payment(attempt):
        raise DomainError(_("The payment service does not answer at the moment. Try again "
                            "in a few minutes; your order is kept."))
    return attempt.checkout_url


def cancel_at_provider(payment: Payment) -> None:
    """Close an open online payment at its provider (the order was cancelled or expired).
    Best effort: a payment the provider will not cancel (Mollie keeps some open payments
    until they expire) is paid back automatically if it is paid after all
    (`_paid_after_close`)."""
    provider = get_provider(payment.provider)
    if not provider.online or not provider.is_available(current_app):
        return
    try:
        provider.cancel_payment(payment)
    except ProviderError as error:
        log.info("payment %s not cancelled at %s: %s", payment.id, payment.provider, error)


def latest_payment(order: Order) -> Payment | None:
    return order.payments[-1] if order.payments else None


# ---------------------------------------------------------------- applying provider news

def sync_payment(payment: Payment) -> Payment:
    """Re-read the payment at its provider and apply what it says."""
    snapshot = get_provider(payment.provider).fetch_payment(payment)
    return apply_provider_payment(payment.id, snapshot)


def _locked(payment_id: int, order_id: int | None = None) -> tuple[Order, Payment]:
    """The payment's order and then the payment, read again under their locks (in that
    order, as every path takes them). `order_id` when the caller knows it already."""
    if order_id is None:
        order_id = db.session.scalar(sa.select(Payment.order_id)
                                     .where(Payment.id == payment_id))
    if order_id is None:
        raise DomainError(_("This payment does not exist."))
    order = services._locked_order(order_id)
    payment = db.session.scalar(
        sa.select(Payment).where(Payment.id == payment_id).with_for_update()
        .execution_options(populate_existing=True))
    return order, payment


def _locked_many(pairs: Sequence[tuple[int, int]]) -> dict[int, tuple[Order, Payment]]:
    """`_locked` for many (payment id, order id) pairs: every order, then every payment,
    each set in ascending id order (as every path takes them), four statements in all; the
    orders with their payments, the payments' chargebacks and the orders' subscriptions and
    invoices (what recording a payment reads). By payment id."""
    orders = {order.id: order for order in services._locked_orders(
        [order_id for _payment_id, order_id in pairs],
        options=(selectinload(Order.payments), selectinload(Order.subscriptions),
                 selectinload(Order.invoice)))}
    ids = sorted({payment_id for payment_id, _order_id in pairs})
    found = {payment.id: payment for payment in db.session.scalars(
        sa.select(Payment).where(Payment.id.in_(ids)).order_by(Payment.id)
        .with_for_update(of=Payment).options(selectinload(Payment.chargebacks))
        .execution_options(populate_existing=True))}
    return {payment_id: (orders[order_id], found[payment_id])
            for payment_id, order_id in pairs}


def changes_nothing(payment: Payment, snapshot: ProviderPayment) -> bool:
    """Applying `snapshot` to `payment` (as just read, without the lock) cannot change
    anything: the same state, no refund, chargeback or saved method, nothing to add to the
    payment. Safe without the lock because `apply_provider_payment` only moves a payment
    forwards: whatever a concurrent writer moved it to since, the same snapshot would change
    nothing there either. Lets a repeated notification (a `succeeded` for a paid payment)
    skip the locks."""
    return (snapshot.state == payment.state
            and not (snapshot.refunds or snapshot.chargebacks or snapshot.saved_method)
            and (not snapshot.intent_ref or snapshot.intent_ref == payment.intent_ref)
            and (not snapshot.method or snapshot.method[:32] == payment.method)
            and not (payment.state == PaymentState.PAID and payment.last_error == SURPLUS))


def apply_provider_payment(payment_id: int, snapshot: ProviderPayment) -> Payment:
    """Bring our payment to what the provider reports, once (see the module docstring)."""
    order, payment = _locked(payment_id)
    return _apply_locked_all([(order, payment, snapshot)])[0]


def _apply_locked_all(items: Sequence[tuple[Order, Payment, ProviderPayment]], *,
                      flush: bool = True) -> list[Payment]:
    """`apply_provider_payment` once the orders and payments are locked, for many (order,
    payment, snapshot), one payment per order: the payments that pay their orders recorded
    together (`services.record_payments`). `flush=False`: the caller flushes."""
    paying = []
    for order, payment, snapshot in items:
        if snapshot.intent_ref and payment.intent_ref != snapshot.intent_ref:
            payment.intent_ref = snapshot.intent_ref
        if snapshot.method and payment.method != snapshot.method[:32]:
            payment.method = snapshot.method[:32]
        target = snapshot.state
        if target == PaymentState.PAID and payment.state != PaymentState.PAID:
            # A failed payment paid after all (a card retried on the same page) still pays
            # an order that waits for it.
            if order.state == OrderState.AWAITING_PAYMENT:
                paying.append((order, payment, snapshot))
            else:
                _paid_after_close(order, payment)
        elif target == PaymentState.PENDING and payment.state == PaymentState.OPEN:
            services.move_payment(payment, PaymentState.PENDING, actor=None)
        elif target in ENDED_STATES and payment.state in OPEN_STATES:
            payment.last_error = snapshot.failure_reason[:300]
            services.move_payment(payment, target, actor=None,
                                  reason=snapshot.failure_reason)
    if paying:
        services.record_payments(
            [services.PaymentReceived(order, payment.provider, payment=payment,
                                      provider_ref=payment.provider_ref,
                                      note=snapshot.method)
             for order, payment, snapshot in paying], actor=None, locked=True)
        for order, payment, _snapshot in paying:
            if any(c.reopened_order for p in order.payments for c in p.chargebacks):
                # Paid again after a chargeback: the first "payment received" mail had the
                # order's key; this one is about this payment.
                queue_mail(order.billing_email, "subscriptions_payment_received",
                           key=f"order-paid:{order.id}:payment-{payment.id}",
                           locale=order.locale, order=order,
                           account_url=external_url("core.account"))
    for order, payment, snapshot in items:
        if payment.state == PaymentState.PAID:
            if payment.last_error == SURPLUS:
                _refund_surplus(payment)  # again, if the provider did not answer last time
            for refund in snapshot.refunds:
                _record_refund(payment, refund, actor=None)
            for chargeback in snapshot.chargebacks:
                _record_chargeback(payment, chargeback)
        if (snapshot.saved_method and payment.save_method and order.user_id
                and payment.state in (PaymentState.PAID, PaymentState.PENDING)):
            _save_mandate(order.user_id, payment.provider, snapshot.saved_method,
                          payment_id=payment.id)
    if flush:
        db.session.flush()
    return [payment for _order, payment, _snapshot in items]


def _paid_after_close(order: Order, payment: Payment) -> None:
    """Money arrived for an order that was paid by another payment, expired or cancelled.

    We never keep it silently, and we do not fulfil it either: an expired or cancelled
    order has its invoice credited and its subscription ended (terminal states), and an
    order paid twice needs nothing more. So the payment is recorded as paid (the money did
    arrive: the figures show it in and out) and paid back in full through its provider at
    once, without a credit note (its money was never the invoice's). The buyer is mailed,
    the audit log and the order's page in the back office show it."""
    if payment.state != PaymentState.PAID:
        payment.paid_at = now_utc()
        payment.received_on = services.today_brussels()
        services.move_payment(payment, PaymentState.PAID, actor=None,
                              reason="paid after the order was closed")
    if is_surplus(payment):
        return
    payment.last_error = SURPLUS
    log.warning("payment %s paid at %s after order %s was %s: paying it back", payment.id,
                payment.provider, order.id, order.state.value)
    audit.record("payment.paid_after_close", "payment", payment.id, actor=None,
                 order=order.id, order_state=order.state.value)
    db.session.flush()
    _refund_surplus(payment)


def _refund_surplus(payment: Payment) -> Refund | None:
    """Pay back, through the provider, what is left of a payment its order did not want.
    The key is derived from the payment, so a second try (the next webhook, the reconcile
    job) is the same refund at the provider, recorded once by its id. Called under the
    order's lock."""
    amount = payment.refundable_cents
    if amount <= 0:
        payment.last_error = SURPLUS_REFUNDED
        return None
    order = payment.order
    with force_locale(order.locale):
        text = _("Paid after order %(ref)s was closed or paid: paid back automatically",
                 ref=order.reference)
    try:
        result = get_provider(payment.provider).refund(
            payment, amount, reason=text, idempotency_key=f"surplus-payment-{payment.id}")
    except ProviderError as error:
        # Kept as SURPLUS: the next webhook or the reconcile job tries again.
        log.warning("payment %s: automatic refund failed: %s", payment.id, error)
        audit.record("payment.surplus_refund_failed", "payment", payment.id, actor=None,
                     error=str(error)[:300])
        return None
    refund = _record_refund(payment, ProviderMoney(result.provider_ref or "",
                                                   result.amount_cents),
                            actor=None, reason=text, mail="payments_surplus_refunded")
    payment.last_error = SURPLUS_REFUNDED
    audit.record("payment.surplus_refunded", "payment", payment.id, actor=None,
                 amount_cents=result.amount_cents, provider_ref=result.provider_ref)
    db.session.flush()
    return refund


_RECORD_EVENT: dict[tuple[str, bool], sa.Insert] = {}


def record_event_statement(dialect: str, *, durable: bool = True):
    """`INSERT … ON CONFLICT DO NOTHING RETURNING id` on the table, built once per dialect
    with bound parameters (the ORM's insert of literal values cost more CPU than the
    database did, per webhook). The Stripe webhook's short path runs it on the driver.

    `durable=False` is for an event that changes nothing (the short path, run on its own
    outside a transaction): on PostgreSQL the statement turns `synchronous_commit` off for
    its own transaction, so the commit does not wait for the WAL to reach the disk. A
    server crash in the next fraction of a second can forget that record, never a change
    to a payment (the documented per-transaction trade-off; SQLite runs with
    `synchronous=NORMAL`, the same bargain, for everything)."""
    key = (dialect, durable)
    statement = _RECORD_EVENT.get(key)
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = ProviderEvent.__table__
        names = ("provider", "event_ref", "kind", "payment_id", "received_at")
        values = [sa.bindparam(name, type_=table.c[name].type) for name in names]
        if durable or dialect != "postgresql":
            statement = insert(table).values(dict(zip(names, values, strict=True)))
        else:
            # set_config(…, is_local => true): for this statement's own transaction only.
            setting = sa.select(sa.literal_column(
                "set_config('synchronous_commit', 'off', true)").label("setting")).subquery()
            statement = insert(table).from_select(
                names, sa.select(*values).select_from(setting))
        statement = _RECORD_EVENT[key] = (
            statement.on_conflict_do_nothing(index_elements=["provider", "event_ref"])
            .returning(table.c.id))
    return statement


def record_event(provider: str, event_ref: str, kind: str, payment_id: int | None) -> bool:
    """Record a provider's notification once; False when it was recorded before. A racing
    duplicate waits on the unique key until the first one commits, then finds it."""
    statement = record_event_statement(db.session.get_bind().dialect.name)
    inserted = db.session.execute(statement, {
        "provider": provider, "event_ref": event_ref[:160], "kind": kind[:80],
        "payment_id": payment_id, "received_at": now_utc()}).scalar()
    return inserted is not None


# ---------------------------------------------------------------- refunds and chargebacks

def _record_refund(payment: Payment, money: ProviderMoney, *, actor: User | None,
                   reason: str = "", mail: str = "payments_refunded") -> Refund | None:
    """Record a refund once by its provider id, credit the invoice for it (not for money
    the order never wanted: a surplus payment) and tell the buyer. Called with the order
    locked."""
    if money.provider_ref and db.session.scalar(sa.select(Refund.id).where(
            Refund.provider == payment.provider, Refund.provider_ref == money.provider_ref)):
        return None
    order = payment.order
    # Through the relationship: a payment whose refunds were read already counts this one
    # too (`refunded_cents`, `refundable_cents`).
    refund = Refund(payment=payment, provider=payment.provider,
                    provider_ref=money.provider_ref or None, amount_cents=money.amount_cents,
                    reason=(reason or money.reason or "")[:300])
    db.session.add(refund)
    db.session.flush()
    invoice = order.invoice
    if invoice is not None and not is_surplus(payment):
        left = invoice.total_cents - sum(note.total_cents for note in invoice.credit_notes)
        amount = min(money.amount_cents, left)
        if amount > 0:
            with force_locale(order.locale):
                text = _("Refund of payment %(ref)s", ref=order.reference)
            note = services.issue_credit_note(invoice, amount_cents=amount,
                                              reason=(refund.reason or text)[:300],
                                              actor=actor)
            refund.credit_note_id = note.id
    audit.record("payment.refunded", "payment", payment.id, actor=actor,
                 amount_cents=money.amount_cents, provider_ref=money.provider_ref)
    queue_mail(order.billing_email, mail, key=f"refund:{refund.id}",
               locale=order.locale, order=order, refund=refund,
               order_url=external_url("subscriptions.order_detail", order_id=order.id))
    db.session.flush()
    return refund


def _record_chargeback(payment: Payment, money: ProviderMoney) -> Chargeback | None:
    """Record a chargeback once by its provider id (called under the order's lock). A
    chargeback of what paid the order reopens the order and suspends its subscriptions
    (`_suspend_for_chargeback`); one the provider reports as reversed is undone once
    (`_reverse_chargeback`). Returns the chargeback when it is new."""
    chargeback = db.session.scalar(sa.select(Chargeback).where(
        Chargeback.provider == payment.provider,
        Chargeback.provider_ref == money.provider_ref))
    new = chargeback is None
    reversed_now = money.status in REVERSED_STATUSES
    if new:
        # Through the relationship: a payment whose chargebacks were read already (paid and
        # charged back in one report) counts this one in `refundable_cents`.
        chargeback = Chargeback(payment=payment, provider=payment.provider,
                                provider_ref=money.provider_ref,
                                amount_cents=money.amount_cents, reason=money.reason[:300])
        db.session.add(chargeback)
        db.session.flush()
        audit.record("payment.charged_back", "payment", payment.id, actor=None,
                     amount_cents=money.amount_cents, provider_ref=money.provider_ref,
                     reason=money.reason)
        if not reversed_now:
            _suspend_for_chargeback(payment, chargeback)
        queue_mail(current_app.config["PUBLISHER_EMAIL"], "payments_chargeback",
                   key=f"chargeback:{chargeback.id}", locale="nl_BE", order=payment.order,
                   chargeback=chargeback,
                   order_url=external_url("subscriptions_office.order",
                                          order_id=payment.order_id))
    if reversed_now:
        _reverse_chargeback(chargeback)
    return chargeback if new else None


def _suspend_for_chargeback(payment: Payment, chargeback: Chargeback) -> None:
    """The bank took back what paid the order: the order is owed again (a new due date, a
    pay link mailed to the buyer), and the subscriptions it started go back to pending
    payment, so no issues are sent until it is paid again or the chargeback is reversed.

    Left alone (the coordinator sees the chargeback and its mail): a partial chargeback,
    the chargeback of money we paid back anyway (a surplus payment), and orders that started
    no subscription: a renewal's (its subscription was started by another order; the
    renewals job owns its terms) or single copies already sent."""
    order = payment.order
    if is_surplus(payment) or order.state != OrderState.PAID or payment.refundable_cents > 0 \
            or not order.subscriptions:
        return
    services.move_order(order, OrderState.AWAITING_PAYMENT, actor=None,
                        reason="chargeback", chargeback=chargeback.provider_ref)
    order.paid_at = None
    order.reminder_sent_at = None
    order.expires_at = now_utc() + timedelta(days=current_app.config["ORDER_PAYMENT_DAYS"])
    for subscription in order.subscriptions:
        if subscription.state in (SubscriptionState.ACTIVE, SubscriptionState.CANCELLED):
            services.move_subscription(subscription, SubscriptionState.PENDING_PAYMENT,
                                       actor=None, reason="chargeback",
                                       chargeback=chargeback.provider_ref)
    chargeback.reopened_order = True
    queue_mail(order.billing_email, "payments_chargeback_customer",
               key=f"chargeback-customer:{chargeback.id}", locale=order.locale,
               order=order, chargeback=chargeback,
               due_date=order.expires_at,
               order_url=external_url("subscriptions.order_detail", order_id=order.id))
    db.session.flush()


def _reverse_chargeback(chargeback: Chargeback) -> Chargeback | None:
    """The chargeback was undone (dispute won, funds reinstated, Mollie `reversedAt`): a
    reversal row gives the money back to the figures (once: unique per chargeback), and an
    order it reopened is paid again and its subscriptions run again. Had the buyer paid a
    second time meanwhile, that second payment is paid back (the money is there twice)."""
    if chargeback.is_reversal or db.session.scalar(sa.select(Chargeback.id).where(
            Chargeback.reversal_of_id == chargeback.id)):
        return None
    payment = chargeback.payment
    reversal = Chargeback(payment=payment, provider=chargeback.provider,
                          provider_ref=f"{chargeback.provider_ref}:reversed"[:100],
                          amount_cents=-chargeback.amount_cents, reason="reversed",
                          reversal_of_id=chargeback.id)
    db.session.add(reversal)
    db.session.flush()
    audit.record("payment.chargeback_reversed", "payment", payment.id, actor=None,
                 amount_cents=chargeback.amount_cents, provider_ref=chargeback.provider_ref)
    order = payment.order
    if not chargeback.reopened_order:
        return reversal
    if order.state == OrderState.AWAITING_PAYMENT:
        for other in order.payments:
            if other is not payment and other.state in OPEN_STATES:
                if other.state == PaymentState.OPEN and other.provider_ref:
                    cancel_at_provider(other)
                services.move_payment(other, PaymentState.CANCELLED, actor=None,
                                      reason="chargeback reversed")
        services.move_order(order, OrderState.PAID, actor=None, reason="chargeback reversed")
        order.paid_at = payment.paid_at
        for subscription in order.subscriptions:
            if subscription.state == SubscriptionState.PENDING_PAYMENT:
                services.activate_subscription(subscription, actor=None)
                if not (subscription.auto_renew or subscription.is_gift
                        or subscription.complimentary):
                    services.move_subscription(subscription, SubscriptionState.CANCELLED,
                                               actor=None, reason="auto-renew off")
    elif order.state == OrderState.PAID:
        for other in order.payments:
            if other is not payment and other.state == PaymentState.PAID \
                    and not is_surplus(other):
                other.last_error = SURPLUS
                audit.record("payment.paid_after_close", "payment", other.id, actor=None,
                             order=order.id, order_state="paid twice (chargeback reversed)")
                _refund_surplus(other)
    else:
        # Expired or cancelled meanwhile: the money came back for a closed order.
        payment.last_error = SURPLUS
        _refund_surplus(payment)
    queue_mail(order.billing_email, "payments_chargeback_reversed",
               key=f"chargeback-reversed:{chargeback.id}", locale=order.locale, order=order,
               chargeback=chargeback,
               order_url=external_url("subscriptions.order_detail", order_id=order.id))
    db.session.flush()
    return reversal


def record_chargeback(payment_id: int, money: ProviderMoney) -> Chargeback | None:
    """A chargeback reported in a verified event (Stripe disputes), under the lock."""
    payment = _locked(payment_id)[1]
    return _record_chargeback(payment, money)


def refund_payment(payment: Payment, amount_cents: int, *, reason: str,
                   actor: User, request_key: str = "") -> Refund:
    """The coordinator pays back (part of) a paid payment through its provider, and a credit
    note is issued. The provider call carries a key derived from the payment and the form
    that asked for it (`request_key`, made when the form was shown; without one: the number
    of refunds and the amount), so a form sent twice, or again after a timeout, is the same
    refund at the provider, recorded once by its id."""
    services._require_coordinator(actor)
    payment = _locked(payment.id)[1]
    if payment.state != PaymentState.PAID:
        raise DomainError(_("Only a paid payment can be refunded."))
    if amount_cents <= 0:
        raise DomainError(_("Refund an amount above zero."), field="amount")
    if amount_cents > payment.refundable_cents:
        raise DomainError(_("At most %(amount)s is left to refund on this payment.",
                            amount=_money(payment.refundable_cents)), field="amount")
    if not reason.strip():
        raise DomainError(_("Say why (it is printed on the credit note)."), field="reason")
    provider = get_provider(payment.provider)
    key = (f"refund-payment-{payment.id}-{request_key}" if request_key
           else f"refund-payment-{payment.id}-{len(payment.refunds) + 1}-{amount_cents}")
    try:
        if provider.online:
            result = provider.refund(payment, amount_cents, reason=reason, idempotency_key=key)
        else:
            result = provider.refund(payment, amount_cents, reason=reason)
    except ProviderUnavailable as error:
        log.warning("refund of payment %s: %s", payment.id, error)
        raise DomainError(_("The payment service does not answer. Nothing was refunded; try "
                            "again in a moment.")) from error
    except ProviderError as error:
        raise DomainError(_("The payment service refused the refund: %(reason)s",
                            reason=str(error)[:200]), field="amount") from error
    refund = _record_refund(payment, ProviderMoney(result.provider_ref or "",
                                                   result.amount_cents),
                            actor=actor, reason=reason.strip())
    if refund is None:  # the provider's webhook was quicker and recorded it already
        refund = db.session.scalar(sa.select(Refund).where(
            Refund.provider == payment.provider, Refund.provider_ref == result.provider_ref))
    return refund


def _money(cents: int) -> str:
    from magazine.i18n import money

    return money(cents)


# ---------------------------------------------------------------- saved methods

def _save_mandate(user_id: int, provider: str, saved: SavedMethod, *,
                  payment_id: int | None = None) -> Mandate:
    """Keep the saved method once by its provider id; it replaces the subscriber's earlier
    ones (revoked at their provider, so nothing can charge them any more)."""
    existing = db.session.scalar(sa.select(Mandate).where(
        Mandate.provider == provider, Mandate.mandate_ref == saved.mandate_ref))
    if existing is not None:
        return existing
    for older in valid_mandates(user_id):
        _end_mandate(older, MandateState.REPLACED, actor=None)
    mandate = Mandate(user_id=user_id, provider=provider,
                      customer_ref=saved.customer_ref, mandate_ref=saved.mandate_ref,
                      method=saved.method[:32], label=saved.label[:100],
                      payment_id=payment_id)
    db.session.add(mandate)
    db.session.flush()
    audit.record("mandate.saved", "mandate", mandate.id, actor=None, provider=mandate.provider,
                 label=mandate.label)
    return mandate


def _end_mandate(mandate: Mandate, to: MandateState, *, actor: User | None,
                 strict: bool = False) -> None:
    try:
        get_provider(mandate.provider).revoke_mandate(customer_ref=mandate.customer_ref,
                                                      mandate_ref=mandate.mandate_ref)
    except ProviderError as error:
        if strict:
            raise
        log.warning("mandate %s not revoked at %s: %s", mandate.id, mandate.provider, error)
    mandate.state = to
    mandate.ended_at = now_utc()
    audit.record(f"mandate.{to.value}", "mandate", mandate.id, actor=actor)


def valid_mandates(user_id: int) -> Sequence[Mandate]:
    return db.session.scalars(sa.select(Mandate).where(
        Mandate.user_id == user_id, Mandate.state == MandateState.VALID)
        .order_by(Mandate.id)).all()


def mandate_of(user: User) -> Mandate | None:
    """The method automatic renewals charge: the newest valid one."""
    found = valid_mandates(user.id)
    return found[-1] if found else None


def remove_mandate(mandate: Mandate, *, actor: User) -> None:
    """The subscriber removes a saved method: it is revoked at the provider first, so it
    cannot be charged any more; renewals then come as a payment link."""
    if mandate.user_id != actor.id and not services.is_coordinator(actor):
        raise PermissionDenied(_("This is not your payment method."))
    if mandate.state != MandateState.VALID:
        return
    try:
        _end_mandate(mandate, MandateState.REVOKED, actor=actor, strict=True)
    except ProviderUnavailable as error:
        raise DomainError(_("The payment service does not answer. Your payment method is "
                            "still saved; try again in a moment.")) from error
    db.session.flush()


def start_method_replacement(user: User, provider_name: str) -> tuple[str, str]:
    """A new saved method without a renewal to pay: Stripe Checkout in setup mode, or a
    Mollie verification payment (paid back when the mandate is made). Returns the provider's
    page and its reference (the view keeps it in the person's session, so the way back can
    only save a method for the person who started it)."""
    provider = get_provider(provider_name) if provider_name in online_provider_names() \
        else None
    if provider is None or not provider.is_available(current_app):
        raise DomainError(_("Choose one of the payment methods."), field="provider")
    same = [m for m in valid_mandates(user.id) if m.provider == provider_name]
    try:
        reference, url, _customer = provider.start_setup(
            email=user.email, name=user.name,
            customer_ref=same[-1].customer_ref if same else None,
            key=f"setup-user-{user.id}-{secrets.token_hex(8)}",
            return_url=external_url("payments.method_return"),
            cancel_url=external_url("core.account"),
            metadata={"user_id": user.id})
    except ProviderError as error:
        log.warning("method replacement for user %s: %s", user.id, error)
        raise DomainError(_("The payment service does not answer at the moment. Try again "
                            "in a few minutes.")) from error
    # Kept, so the webhook and the reconcile job can save the method too (not only the
    # browser's return, which may never come).
    db.session.add(MethodSetup(user_id=user.id, provider=provider_name, reference=reference))
    db.session.flush()
    audit.record("mandate.setup_started", "user", user.id, actor=user,
                 provider=provider_name, reference=reference)
    return url, reference


def finish_method_replacement(user: User, provider_name: str, reference: str) -> Mandate | None:
    """Back from the provider: save the new method (once) if the setup went through."""
    if provider_name not in online_provider_names():
        return None
    setup = setup_by_reference(provider_name, reference)
    if setup is None or setup.user_id != user.id:
        return None
    try:
        return finish_setup(setup.id)
    except ProviderUnavailable as error:
        raise DomainError(_("The payment service does not answer at the moment. Try again "
                            "in a few minutes.")) from error
    except ProviderError:
        return None


def setup_by_reference(provider_name: str, reference: str) -> MethodSetup | None:
    return db.session.scalar(sa.select(MethodSetup).where(
        MethodSetup.provider == provider_name, MethodSetup.reference == reference))


SETUP_DAYS = 2  # an unfinished setup older than this is given up


def finish_setup(setup_id: int) -> Mandate | None:
    """Save the method of a replacement setup once it went through: from the browser's
    return, the provider's webhook or the reconcile job, whichever comes first (the row is
    locked, so the others find it done). Mollie's verification payment is then paid back:
    it bought nothing, so it has no invoice, and keeping two cents would need one.
    Raises ProviderError when the provider cannot be asked."""
    provider_name = db.session.scalar(sa.select(MethodSetup.provider)
                                      .where(MethodSetup.id == setup_id))
    provider = get_provider(provider_name)
    reference = db.session.scalar(sa.select(MethodSetup.reference)
                                  .where(MethodSetup.id == setup_id))
    saved = provider.fetch_setup(reference)  # asked before the lock
    ended = saved is None and provider.setup_ended(reference)
    # The lock: a no-op write (SQLite's write lock) and SELECT … FOR UPDATE (PostgreSQL).
    db.session.execute(sa.update(MethodSetup).where(MethodSetup.id == setup_id)
                       .values(state=MethodSetup.state)
                       .execution_options(synchronize_session=False))
    setup = db.session.scalar(sa.select(MethodSetup).where(MethodSetup.id == setup_id)
                              .with_for_update().execution_options(populate_existing=True))
    mandate = db.session.get(Mandate, setup.mandate_id) if setup.mandate_id else None
    if setup.state == "open" and saved is not None:
        mandate = _save_mandate(setup.user_id, provider_name, saved)
        setup.state, setup.mandate_id, setup.finished_at = "saved", mandate.id, now_utc()
        audit.record("mandate.setup_finished", "user", setup.user_id, actor=None,
                     provider=provider_name, reference=reference, mandate=mandate.id)
    elif setup.state == "open" and (ended or setup.created_at
                                    < now_utc() - timedelta(days=SETUP_DAYS)):
        setup.state, setup.finished_at = "ended", now_utc()
    if setup.state == "saved" and not setup.refund_ref and hasattr(provider, "refund_setup"):
        try:
            setup.refund_ref = provider.refund_setup(reference)
            audit.record("mandate.verification_refunded", "user", setup.user_id, actor=None,
                         provider=provider_name, reference=reference,
                         refund=setup.refund_ref)
        except ProviderError as error:  # the reconcile job tries again
            log.warning("verification payment %s not paid back yet: %s", reference, error)
    db.session.flush()
    return mandate


def setups_to_reconcile(limit: int = 1000) -> list[int]:
    """Setups still open, and Mollie verification payments not paid back yet."""
    return list(db.session.scalars(
        sa.select(MethodSetup.id).where(
            MethodSetup.provider.in_(online_provider_names()),
            sa.or_(MethodSetup.state == "open",
                   sa.and_(MethodSetup.state == "saved", MethodSetup.provider == "mollie",
                           MethodSetup.refund_ref.is_(None))))
        .order_by(MethodSetup.id).limit(limit)))


# ---------------------------------------------------------------- off-session charges

def charge_mandate(order: Order, mandate: Mandate, *, idempotency_key: str) -> ChargeResult:
    """Charge a saved method for an order, in the caller's transaction.

    The key comes from what is paid for (subscription + term + attempt): calling again with
    the same key, after a timeout or a crash, reuses the same payment row and the provider
    answers with the same charge. Returns paid / pending / failed-retryable /
    failed-needs-customer with the reason. The renewals job uses the three steps below
    itself, so that the provider call is made with no transaction open."""
    payment = mandate_payment(order, mandate, idempotency_key=idempotency_key)
    known = known_charge_outcome(payment, mandate)
    if known is not None:
        return known
    result = call_charge(payment, mandate.mandate_ref, idempotency_key=idempotency_key)
    record_charge(payment.id, result, order_id=order.id)
    return result


def mandate_payment(order: Order, mandate: Mandate, *, idempotency_key: str,
                    payment_id: int | None = None) -> Payment:
    """The payment of an off-session charge: the one made before for the same key (a retry
    after a timeout or a crash: the provider answers it with the first charge), or a new
    one. `payment_id` when the caller knows which row that is."""
    if payment_id is not None:
        payment = db.session.get(Payment, payment_id)
    else:
        payment = db.session.scalar(sa.select(Payment).where(
            Payment.idempotency_key == idempotency_key))
    if payment is None:
        payment = new_mandate_payment(order, mandate, idempotency_key=idempotency_key)
    return payment


def new_mandate_payment(order: Order, mandate: Mandate, *, idempotency_key: str) -> Payment:
    """A new payment for an off-session charge (its key is unique: a second one fails)."""
    return new_mandate_payments([(order, mandate, idempotency_key)])[0]


def new_mandate_payments(charges: Sequence[tuple[Order, Mandate, str]]) -> list[Payment]:
    """`new_mandate_payment` for many (order, mandate, idempotency key) at once: one
    flush."""
    made = []
    for order, mandate, idempotency_key in charges:
        payment = Payment(order_id=order.id, provider=mandate.provider,
                          amount_cents=order.total_cents, customer_ref=mandate.customer_ref,
                          method=mandate.method, idempotency_key=idempotency_key)
        db.session.add(payment)
        made.append(payment)
    db.session.flush()
    return made


def known_charge_outcome(payment: Payment, mandate: Mandate) -> ChargeResult | None:
    """What a charge comes to without asking the provider: its key was answered before (the
    payment is paid, pending or ended), or the mandate may no longer be charged. None: ask
    the provider."""
    if payment.state == PaymentState.PAID:
        return ChargeResult(payment.provider_ref, PaymentState.PAID, ChargeOutcome.PAID)
    if payment.state == PaymentState.PENDING:
        return ChargeResult(payment.provider_ref, PaymentState.PENDING, ChargeOutcome.PENDING)
    if payment.state in ENDED_STATES:
        return ChargeResult(payment.provider_ref, payment.state,
                            ChargeOutcome.FAILED_NEEDS_CUSTOMER, payment.last_error)
    if mandate.state != MandateState.VALID:
        return ChargeResult(None, PaymentState.FAILED, ChargeOutcome.FAILED_NEEDS_CUSTOMER,
                            "mandate revoked")
    return None


def call_charge(payment: Payment, mandate_ref: str, *, idempotency_key: str) -> ChargeResult:
    """The provider call of a charge. It reads the payment and writes nothing, so it may be
    made with no transaction open (a detached payment will do). May raise ProviderError."""
    return get_provider(payment.provider).charge_mandate(
        payment, mandate_ref=mandate_ref, idempotency_key=idempotency_key)


def record_charge(payment_id: int, result: ChargeResult, *,
                  order_id: int | None = None) -> Order:
    """Apply what the provider answered to a charge, under the order's and the payment's
    locks. A charge it did not answer stays open (it may have happened: the same key is
    tried again later). Returns the order (as locked and changed here)."""
    if order_id is None:
        order_id = db.session.scalar(sa.select(Payment.order_id)
                                     .where(Payment.id == payment_id))
    return record_charges([(payment_id, order_id, result)])[0]


def record_charges(charges: Sequence[tuple[int, int, ChargeResult]]) -> list[Order]:
    """`record_charge` for many (payment id, order id, answer) at once, in the caller's
    transaction: all orders and payments locked first (`_locked_many`), then each answer
    applied as `apply_provider_payment` applies a provider's news. Returns the orders, in
    the same order."""
    locked = _locked_many([(payment_id, order_id) for payment_id, order_id, _r in charges])
    orders, applying = [], []
    # One flush at the end: the rows of every charge inserted and updated together (the
    # mails' key lookups would otherwise flush after each charge).
    with db.session.no_autoflush:
        for payment_id, _order_id, result in charges:
            order, payment = locked[payment_id]
            orders.append(order)
            if result.provider_ref:
                payment.provider_ref = result.provider_ref
                if result.provider_ref.startswith("pi_"):
                    payment.intent_ref = result.provider_ref
            if (result.outcome == ChargeOutcome.FAILED_RETRYABLE
                    and result.state == PaymentState.OPEN):
                payment.last_error = result.reason[:300]
                continue
            applying.append((order, payment, ProviderPayment(
                result.state, failure_reason=result.reason), result))
        _apply_locked_all([item[:3] for item in applying], flush=False)
        for _order, payment, _snapshot, result in applying:
            audit.record("payment.charged", "payment", payment.id, actor=None,
                         outcome=result.outcome.value, reason=result.reason)
    db.session.flush()
    return orders


# ---------------------------------------------------------------- reconcile

RECHECK_PAID_DAYS = 90


def paid_to_recheck(limit: int = 5000) -> list[int]:
    """Paid online payments of the last RECHECK_PAID_DAYS days: a refund or chargeback made
    in the provider's dashboard may have been reported by a webhook that never arrived."""
    since = now_utc() - timedelta(days=RECHECK_PAID_DAYS)
    return list(db.session.scalars(
        sa.select(Payment.id).where(Payment.provider.in_(online_provider_names()),
                                    Payment.state == PaymentState.PAID,
                                    Payment.paid_at >= since,
                                    Payment.provider_ref.is_not(None))
        .order_by(Payment.id).limit(limit)))


def payments_to_reconcile(limit: int = 5000) -> list[int]:
    """Online payments the provider may have moved without us hearing of it."""
    return list(db.session.scalars(
        sa.select(Payment.id).where(Payment.provider.in_(online_provider_names()),
                                    Payment.state.in_(OPEN_STATES),
                                    Payment.provider_ref.is_not(None))
        .order_by(Payment.id).limit(limit)))
