"""Renewals: reminders keyed to issues, automatic renewal charges with retries, renewal
orders paid by transfer, grace and lapse.

The life of a term's end (a subscription counts in issues; each dispatch uses one):
- one issue left, and again RENEWAL_REMINDER_DAYS before the next issue's cut-off: a
  reminder — with auto-renew on a saved mandate, a notice of the coming charge; otherwise a
  renewal order with its invoice, bank details and structured communication, and a pay link.
  A gift's giver is told that the gift ends and offered to renew it;
- the term's last issue dispatched (none left): the mandate is charged (`renewals` job), one
  `RenewalCharge` row per attempt, unique by (subscription, term, attempt), its idempotency
  key made of the same three. Failed: the next attempt after RENEWAL_RETRY_DAYS (1, 3, 7),
  a mail with a pay link each time; a hard decline, a revoked mandate or "authentication
  required" go to the customer at once;
- not renewed (charge failed or pending, or the order unpaid): `graced` (`lapse` job); it
  still receives GRACE_ISSUES issue(s). A renewal paid later adds the new term minus the
  grace issues used. Grace used up and GRACE_DAYS passed: `lapsed`, and the subscriber is
  told. Gifts, complimentary subscriptions and those with auto-renew off simply end.

Every piece of work is its own transaction and happens once: charges by their claimed row,
reminders and mails by their keys, state moves by conditional updates, paid renewals by
`RenewalOrder.applied_at`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload, lazyload, selectinload

from editorial.models import Issue, next_issue_for_changes
from magazine import audit
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db, dialect_name, insert_ignoring_duplicates, write_transaction
from magazine.jobruns import claim_key, owner_id, release_orphans
from magazine.mail import Mail, queue_mail, queue_mails
from magazine.models import User
from magazine.urls import external_url
from subscriptions import payments, pricing, services
from subscriptions.models import (
    ChargeStatus,
    Mandate,
    MandateState,
    Order,
    Payment,
    Plan,
    RenewalCharge,
    RenewalOrder,
    Subscription,
    zone_for_country,
)
from subscriptions.providers import get_provider
from subscriptions.providers.base import ChargeOutcome, ChargeResult, ProviderError
from subscriptions.states import OrderState, PaymentState, SubscriptionState

log = logging.getLogger(__name__)

RENEWING_STATES = (SubscriptionState.ACTIVE, SubscriptionState.GRACED)
# A charge the provider did not answer is asked again, with the same key, after this long.
UNANSWERED_RETRY = timedelta(hours=1)


def charge_key(subscription_id: int, term: int, attempt: int) -> str:
    """The idempotency key of a renewal charge: what is paid for, and which attempt."""
    return f"renewal-{subscription_id}-{term}-{attempt}"


def _renews(subscription: Subscription) -> bool:
    """Whether this subscription renews by itself (gifts and complimentary ones end)."""
    return (subscription.auto_renew and not subscription.complimentary
            and not subscription.is_gift)


def _mandate(subscription: Subscription) -> Mandate | None:
    if subscription.subscriber_id is None:
        return None
    return db.session.scalar(
        sa.select(Mandate).where(Mandate.user_id == subscription.subscriber_id,
                                 Mandate.state == MandateState.VALID)
        .order_by(Mandate.id.desc()).limit(1))


def _locale(subscription: Subscription) -> str:
    if subscription.subscriber is not None:
        return subscription.subscriber.locale
    return subscription.order.locale if subscription.order else "nl_BE"


def summary_line(job: str, counts: list[tuple[int, str]],
                 extra: list[tuple[int, str]] = ()) -> str:
    """A job's one-line summary: `job: 3 charged, 0 failed (retry)`, every count in
    `counts` shown, those in `extra` only when not zero."""
    parts = [f"{n} {label}" for n, label in counts]
    parts += [f"{n} {label}" for n, label in extra if n]
    return f"{job}: " + ", ".join(parts)


# ---------------------------------------------------------------- renewal orders

def _current_addresses(subscription: Subscription):
    groups: dict[int, object] = {}
    for row in subscription.addresses:
        if row.group_no not in groups or row.id > groups[row.group_no].id:
            groups[row.group_no] = row
    return [groups[key] for key in sorted(groups)]


def renewal_lines(subscription: Subscription, plan: Plan,
                  locale: str) -> list[pricing.PricedLine]:
    """The next term priced as at checkout: the plan's (volume) price for the copies, and
    shipping per copy for each address outside the free zone."""
    texts = services._line_texts(plan, locale)
    copies = subscription.copies
    unit = pricing.unit_price_for_copies(plan.price_cents, plan.band_tuples(), copies)
    lines = [pricing.price_line("subscription", texts["subscription"], copies, unit,
                                plan.vat_rate_bp)]
    shipping: dict[int, int] = {}
    for address in _current_addresses(subscription) if plan.includes_print else []:
        per_copy = plan.shipping_cents(zone_for_country(address.country))
        if per_copy:
            shipping[per_copy] = shipping.get(per_copy, 0) + address.copies
    for per_copy, count in sorted(shipping.items()):
        lines.append(pricing.price_line("shipping", texts["shipping"], count, per_copy,
                                        plan.vat_rate_bp))
    return lines


def renewal_order_for(subscription: Subscription, *, provider_name: str) -> RenewalOrder:
    """The order for the subscription's next term, made once (unique per subscription and
    term): billed as the first order was, priced now, in the plan chosen for the next
    term. A bank transfer gets its payment, invoice and structured communication at once;
    a mandate's order gets its invoice when the charge is paid."""
    return renewal_orders_for([(subscription, provider_name)])[0]


def renewal_orders_for(wanted: list[tuple[Subscription, str]]) -> list[RenewalOrder]:
    """`renewal_order_for` for many (subscription, provider name) at once: the existing
    ones found with one statement, the new orders, their lines, renewal orders and
    payments flushed together. In the same order as `wanted`."""
    terms = {subscription.id: subscription.term + 1 for subscription, _name in wanted}
    found = {}
    if terms:
        for renewal in db.session.scalars(sa.select(RenewalOrder).where(
                RenewalOrder.subscription_id.in_(sorted(terms)))):
            if renewal.term == terms[renewal.subscription_id]:
                found[renewal.subscription_id] = renewal
    new = [(subscription, provider_name) for subscription, provider_name in wanted
           if subscription.id not in found]
    specs = []
    for subscription, provider_name in new:
        plan = subscription.next_plan or subscription.plan
        first = subscription.order
        user = subscription.subscriber
        locale = _locale(subscription)
        request = services.CheckoutRequest(
            plan_id=plan.id, copies=subscription.copies, locale=locale,
            provider=provider_name,
            billing_name=first.billing_name if first else user.name,
            billing_organisation=first.billing_organisation if first else "",
            billing_po_reference=first.billing_po_reference if first else "",
            billing_street=first.billing_street if first else "",
            billing_postcode=first.billing_postcode if first else "",
            billing_city=first.billing_city if first else "",
            billing_country=first.billing_country if first else "BE",
        )
        specs.append(services.NewOrder(
            request, user, provider_name, first.billing_vat_number if first else "",
            renewal_lines(subscription, plan, locale), plan.id))
    orders = services._new_orders(specs) if specs else []
    offline = []
    for (subscription, provider_name), spec, order in zip(new, specs, orders, strict=True):
        first = subscription.order
        if first is not None and first.billing_email:
            order.billing_email = first.billing_email
        renewal = RenewalOrder(subscription_id=subscription.id, term=subscription.term + 1,
                               plan_id=spec.plan_id, order_id=order.id)
        renewal.order = order
        db.session.add(renewal)
        found[subscription.id] = renewal
        if not get_provider(provider_name).online:
            db.session.add(Payment(order_id=order.id, provider=provider_name,
                                   amount_cents=order.total_cents))
            offline.append(order)
    if offline:
        db.session.flush()
        services.issue_invoices(offline, actor=None)
    if new:
        db.session.flush()
    for (subscription, _name), order in zip(new, orders, strict=True):
        audit.record("renewal.order", "subscription", subscription.id, actor=None,
                     order=order.id, term=subscription.term + 1, total_cents=order.total_cents)
    return [found[subscription.id] for subscription, _name in wanted]


def apply_renewal(renewal_id: int) -> bool:
    """A paid renewal order becomes the new term, once (claimed by `applied_at`): the term
    number grows, the issues of the new plan are added minus the grace issues already
    received, a graced subscription is active again; the invoice is issued (if it was not
    yet) and the subscriber is mailed. Returns False if it was applied before or cannot be
    (the subscription lapsed meanwhile: the payment goes on the coordinator's list of late
    payments, subscriptions.late_payments)."""
    return renewal_id in apply_renewals([renewal_id])


def apply_renewals(renewal_ids: list[int]) -> set[int]:
    """`apply_renewal` for many renewal orders at once, in the caller's transaction: one
    claim, one read, the invoices numbered together, one flush. The ids applied."""
    ids = sorted(set(renewal_ids))
    if not ids:
        return set()
    claimed = db.session.execute(
        sa.update(RenewalOrder)
        .where(RenewalOrder.id.in_(ids) if len(ids) > 1 else RenewalOrder.id == ids[0],
               RenewalOrder.applied_at.is_(None))
        .values(applied_at=now_utc())
        .returning(RenewalOrder.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    if not claimed:
        return set()
    # The renewal orders with their plans, the subscriptions as they are now and their
    # subscribers, in one statement (no roles, price bands or addresses: not needed here).
    rows = db.session.execute(
        sa.select(RenewalOrder, Subscription)
        .join(Subscription, Subscription.id == RenewalOrder.subscription_id)
        .where(RenewalOrder.id.in_(sorted(claimed)))
        .order_by(RenewalOrder.id)
        .options(joinedload(RenewalOrder.plan).lazyload(Plan.price_bands),
                 joinedload(Subscription.plan).lazyload(Plan.price_bands),
                 joinedload(Subscription.subscriber).lazyload(User.role_rows),
                 lazyload(Subscription.addresses))
        .execution_options(populate_existing=True)).all()
    applying = []
    for renewal, subscription in rows:
        if subscription.term != renewal.term - 1 or subscription.state not in (
                SubscriptionState.ACTIVE, SubscriptionState.GRACED,
                SubscriptionState.CANCELLED):
            audit.record("renewal.not_applied", "subscription", subscription.id, actor=None,
                         order=renewal.order_id, state=subscription.state.value,
                         term=subscription.term)
            from subscriptions import late_payments

            late_payments.record_late_payment(renewal)
            log.warning("renewal order %s paid for subscription %s in %s (term %s): not "
                        "applied", renewal.order_id, subscription.id,
                        subscription.state.value, subscription.term)
            continue
        applying.append((renewal, subscription))
    if not applying:
        return set()
    # The orders (most are in the session already, locked by the payment's recording) with
    # their invoices, in one statement.
    orders = {order.id: order for order in db.session.scalars(
        sa.select(Order).where(Order.id.in_(sorted(r.order_id for r, _s in applying)))
        .options(lazyload(Order.lines), selectinload(Order.invoice)))}
    with db.session.no_autoflush:  # one flush for all, in issue_invoices
        reactivated = []
        for renewal, subscription in applying:
            plan = renewal.plan
            added = max(plan.issues_per_term - subscription.grace_issues_used, 0)
            grace_counted = subscription.grace_issues_used
            subscription.term = renewal.term
            subscription.plan_id = plan.id
            subscription.next_plan_id = None
            subscription.issues_granted += plan.issues_per_term
            subscription.issues_remaining += added
            subscription.grace_issues_used = 0
            subscription.graced_at = None
            if subscription.state != SubscriptionState.ACTIVE:
                reactivated.append(subscription)
            audit.record("subscription.renewed", "subscription", subscription.id, actor=None,
                         term=renewal.term, issues=added, grace_counted=grace_counted,
                         order=renewal.order_id)
        if reactivated:
            services.move_subscriptions(reactivated, SubscriptionState.ACTIVE, actor=None,
                                        reason="renewed")
        invoices = services.issue_invoices([orders[r.order_id] for r, _s in applying],
                                           actor=None)
        account_url = external_url("core.account")
        queue_mails([
            Mail(user.email, "renewals_renewed", f"renewed:{subscription.id}:{renewal.term}",
                 user.locale, {"name": user.name, "subscription": subscription,
                               "plan_name": renewal.plan.name(user.locale),
                               "issues": subscription.issues_remaining, "invoice": invoice,
                               "order": orders[renewal.order_id],
                               "account_url": account_url})
            for (renewal, subscription), invoice in zip(applying, invoices, strict=True)
            if (user := subscription.subscriber) is not None])
    db.session.flush()
    return {renewal.id for renewal, _s in applying}


def apply_paid_renewals() -> int:
    """Renewal orders that were paid (by a charge, a webhook, the coordinator recording a
    transfer or a bank statement) and not yet turned into a term: each in its own
    transaction."""
    ids = db.session.scalars(
        sa.select(RenewalOrder.id).join(Order, Order.id == RenewalOrder.order_id)
        .where(RenewalOrder.applied_at.is_(None), Order.state == OrderState.PAID)
        .order_by(RenewalOrder.id)).all()
    db.session.rollback()
    applied = 0
    for renewal_id in ids:
        with write_transaction():
            applied += apply_renewal(renewal_id)
    return applied


# ---------------------------------------------------------------- reminders

@dataclass
class RemindersResult:
    charge_notices: int = 0
    pay_reminders: int = 0
    gift_reminders: int = 0
    failed: int = 0

    def summary(self) -> str:
        return summary_line("renewal-reminders", [
            (self.charge_notices, "charge notices"), (self.pay_reminders, "renewal links"),
            (self.gift_reminders, "gift reminders")], [(self.failed, "failed")])


def _reminder_due(subscription: Subscription, today: date,
                  next_issue: Issue | None) -> str | None:
    """Which reminder this subscription is due for today, if any."""
    if subscription.issues_remaining == 1 and subscription.state == SubscriptionState.ACTIVE:
        moment = "last-issue"
    else:
        moment = None
    days = current_app.config["RENEWAL_REMINDER_DAYS"]
    if (next_issue is not None and subscription.issues_remaining <= 1
            and 0 <= (next_issue.dispatch_cutoff - today).days <= days
            and (moment is None or claimed_before(subscription, "last-issue"))):
        moment = "before-cutoff"
    return moment


def claimed_before(subscription: Subscription, moment: str) -> bool:
    from magazine.models import JobClaim

    key = f"renewal-reminder:{subscription.id}:{subscription.term}:{moment}"
    return db.session.get(JobClaim, key) is not None


def remind_subscription(subscription: Subscription, moment: str, result: RemindersResult,
                        next_issue: Issue | None) -> None:
    """One reminder, once per subscription, term and moment (its work key)."""
    if not claim_key(f"renewal-reminder:{subscription.id}:{subscription.term}:{moment}",
                     "renewal-reminders"):
        return
    user = subscription.subscriber
    if user is None:
        return
    locale = user.locale
    common = {"name": user.name, "subscription": subscription, "next_issue": next_issue,
              "plan_name": (subscription.next_plan or subscription.plan).name(locale),
              "account_url": external_url("core.account")}
    key = f"renewal-reminder:{subscription.id}:{subscription.term}:{moment}"
    if subscription.is_gift:
        queue_mail(user.email, "renewals_gift_ending", key=key, locale=locale,
                   recipient=subscription.gift_recipient_name,
                   plans_url=external_url("subscriptions.plans"), **common)
        result.gift_reminders += 1
        return
    mandate = _mandate(subscription)
    if mandate is not None:
        plan = subscription.next_plan or subscription.plan
        amount = pricing.totals(renewal_lines(subscription, plan, locale)).gross_cents
        queue_mail(user.email, "renewals_charge_notice", key=key, locale=locale,
                   amount_cents=amount, mandate=mandate, **common)
        result.charge_notices += 1
        return
    renewal = renewal_order_for(subscription, provider_name="bank_transfer")
    order = renewal.order
    config = current_app.config
    queue_mail(user.email, "renewals_pay_reminder", key=key, locale=locale, order=order,
               invoice=order.invoice, iban=config["BANK_IBAN"], bic=config["BANK_BIC"],
               beneficiary=config["PUBLISHER_NAME"],
               order_url=external_url("subscriptions.order_detail", order_id=order.id),
               **common)
    result.pay_reminders += 1


def send_reminders(progress=None) -> RemindersResult:
    result = RemindersResult()
    today = now_utc().astimezone(BRUSSELS).date()
    ids = db.session.scalars(
        sa.select(Subscription.id).where(
            Subscription.state.in_(RENEWING_STATES), Subscription.issues_remaining <= 1,
            Subscription.complimentary.is_(False),
            sa.or_(Subscription.auto_renew.is_(True), Subscription.gift_recipient_email != ""),
        ).order_by(Subscription.id)).all()
    db.session.rollback()
    if progress:
        progress.start(len(ids))
    for subscription_id in ids:
        if progress:
            progress.advance(1)
        try:
            with write_transaction():
                subscription = db.session.get(Subscription, subscription_id)
                next_issue = next_issue_for_changes(today)
                if subscription.state == SubscriptionState.GRACED:
                    continue  # the grace mail speaks for itself
                moment = _reminder_due(subscription, today, next_issue)
                if moment is not None:
                    remind_subscription(subscription, moment, result, next_issue)
        except Exception:
            result.failed += 1
            log.exception("renewal-reminders: subscription %s failed", subscription_id)
    return result


# ---------------------------------------------------------------- charges

@dataclass
class RenewalsResult:
    charged: int = 0
    retry: int = 0
    needs_customer: int = 0
    pending: int = 0
    skipped: int = 0
    applied: int = 0
    released: int = 0
    unanswered: int = 0

    def add(self, other: RenewalsResult) -> None:
        """Count `other`'s outcomes in with these."""
        for name in ("charged", "retry", "needs_customer", "pending", "skipped", "applied",
                     "released", "unanswered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        return summary_line("renewals", [
            (self.charged, "charged"), (self.retry, "failed (retry)"),
            (self.needs_customer, "need the customer")], [
            (self.pending, "pending at the bank"),
            (self.unanswered, "unanswered (same charge again in an hour)"),
            (self.applied, "paid renewals applied"),
            (self.skipped, "no longer due"), (self.released, "taken back from a dead run")])


def schedule_first_attempts() -> None:
    """A first charge attempt for every renewing subscription whose term is used up and
    that has a valid mandate: set-based, unique by (subscription, term, attempt)."""
    now = now_utc()
    next_term = Subscription.term + 1
    has_mandate = sa.exists(sa.select(Mandate.id).where(
        Mandate.user_id == Subscription.subscriber_id, Mandate.state == MandateState.VALID))
    key = (sa.literal("renewal-") + sa.cast(Subscription.id, sa.String) + sa.literal("-")
           + sa.cast(next_term, sa.String) + sa.literal("-1"))
    due = (
        sa.select(Subscription.id, next_term, sa.literal(1), key,
                  sa.literal(ChargeStatus.DUE.value),
                  sa.literal(now, type_=RenewalCharge.due_at.type), sa.literal(""),
                  sa.literal(now, type_=RenewalCharge.created_at.type))
        .where(Subscription.state.in_(RENEWING_STATES), Subscription.issues_remaining == 0,
               Subscription.auto_renew.is_(True), Subscription.complimentary.is_(False),
               Subscription.gift_recipient_email == "", has_mandate)
    )
    with write_transaction():
        db.session.execute(
            insert_ignoring_duplicates(RenewalCharge)
            .from_select(["subscription_id", "term", "attempt", "idempotency_key", "status",
                          "due_at", "reason", "created_at"], due)
            .on_conflict_do_nothing()
        )


def _finish(charge: RenewalCharge, status: ChargeStatus, reason: str = "") -> None:
    charge.status = status
    charge.reason = reason[:300]
    charge.finished_at = now_utc()


def _pay_link_mail(subscription: Subscription, order: Order, template: str, key: str,
                   **extra) -> None:
    user = subscription.subscriber
    if user is None:
        return
    queue_mail(user.email, template, key=key, locale=user.locale, name=user.name,
               subscription=subscription, order=order,
               order_url=external_url("subscriptions.order_detail", order_id=order.id),
               **extra)


@dataclass(frozen=True)
class _Prepared:
    """A claimed charge whose renewal order and payment are committed: what its provider
    call and the recording of the answer need."""

    charge_id: int
    renewal_id: int
    order_id: int
    payment_id: int
    mandate_ref: str
    # The answer when the provider need not be asked (its key was answered before, or the
    # mandate may no longer be charged).
    known: ChargeResult | None


# The charges with their subscriptions, subscribers and first orders in one statement (the
# subscribers' roles and the first orders' lines are not needed), the delivery addresses
# (for a printed plan's shipping lines) in one more.
_CHARGE_WITH_SUBSCRIPTION = (
    joinedload(RenewalCharge.subscription).options(
        joinedload(Subscription.subscriber).lazyload(User.role_rows),
        joinedload(Subscription.order).lazyload(Order.lines),
        selectinload(Subscription.addresses)),
)


def _mandates_of(subscriptions: list[Subscription]) -> dict[int, Mandate]:
    """`_mandate` for many subscriptions: the newest valid mandate by subscriber, one
    statement."""
    users = sorted({s.subscriber_id for s in subscriptions if s.subscriber_id is not None})
    if not users:
        return {}
    newest: dict[int, Mandate] = {}
    for mandate in db.session.scalars(
            sa.select(Mandate).where(Mandate.user_id.in_(users),
                                     Mandate.state == MandateState.VALID)
            .order_by(Mandate.id)):
        newest[mandate.user_id] = mandate
    return newest


def _prepare_charges(charge_ids: list[int], result: RenewalsResult) -> list[_Prepared]:
    """Everything before the provider calls of claimed charges, committed on its own (one
    transaction for the batch): the renewal orders and the payment rows carrying the
    idempotency keys. After a crash the retry finds the same payment and sends the provider
    the very same request (same key, same body), which the provider answers with the first
    charge instead of refusing the key or charging again. Returns the charges to call or
    record (those with nothing to charge are finished here)."""
    charges = db.session.scalars(
        sa.select(RenewalCharge).where(RenewalCharge.id.in_(charge_ids))
        .order_by(RenewalCharge.id).options(*_CHARGE_WITH_SUBSCRIPTION)).unique().all()
    due = []
    for charge in charges:
        subscription = charge.subscription
        if (subscription.term >= charge.term or subscription.state not in RENEWING_STATES
                or not _renews(subscription)):
            _finish(charge, ChargeStatus.SKIPPED, "no longer due")
            result.skipped += 1
        else:
            due.append(charge)
    mandates = _mandates_of([charge.subscription for charge in due])
    wanted = []
    for charge in due:
        mandate = mandates.get(charge.subscription.subscriber_id)
        wanted.append((charge.subscription,
                       mandate.provider if mandate else "bank_transfer"))
    renewals_ = renewal_orders_for(wanted)
    paid_otherwise, to_pay = [], []
    for charge, renewal in zip(due, renewals_, strict=True):
        subscription = charge.subscription
        mandate = mandates.get(subscription.subscriber_id)
        order = renewal.order
        # charge.order_id is set with payment_id (one UPDATE of the charge).
        charge.order_id = order.id
        if order.state == OrderState.PAID:
            _finish(charge, ChargeStatus.PAID, "paid otherwise")
            paid_otherwise.append(renewal.id)
        elif mandate is None or order.state != OrderState.AWAITING_PAYMENT:
            _finish(charge, ChargeStatus.NEEDS_CUSTOMER, "no valid mandate")
            _pay_link_mail(subscription, order, "renewals_needs_customer",
                           f"renewal-needs-customer:{subscription.id}:{charge.term}")
            result.needs_customer += 1
        else:
            to_pay.append((charge, renewal, order, mandate))
    if paid_otherwise:
        result.applied += len(apply_renewals(paid_otherwise))
    # The payments are made in the transaction that sets `payment_id`, and their keys are
    # unique: none exists yet for a charge without one.
    new = [(charge, renewal, order, mandate) for charge, renewal, order, mandate in to_pay
           if charge.payment_id is None]
    made = dict(zip([charge.id for charge, *_rest in new], payments.new_mandate_payments(
        [(order, mandate, charge.idempotency_key) for charge, _r, order, mandate in new]),
        strict=True)) if new else {}
    prepared = []
    for charge, renewal, order, mandate in to_pay:
        payment = made.get(charge.id) or payments.mandate_payment(
            order, mandate, idempotency_key=charge.idempotency_key,
            payment_id=charge.payment_id)
        charge.payment_id = payment.id
        prepared.append(_Prepared(charge.id, renewal.id, order.id, payment.id,
                                  mandate.mandate_ref,
                                  payments.known_charge_outcome(payment, mandate)))
    return prepared


def _payments_for_call(payment_ids: list[int]) -> dict[int, Payment]:
    """The payments as the provider calls read them (their orders' numbers included),
    detached, and the read transaction ended: the calls hold no transaction and no lock (on
    SQLite the write lock stays free for the other charges while the provider answers)."""
    found = db.session.scalars(
        sa.select(Payment).where(Payment.id.in_(payment_ids))
        .options(joinedload(Payment.order).lazyload(Order.lines))).all()
    for payment in found:
        db.session.expunge(payment.order)
        db.session.expunge(payment)
    db.session.rollback()
    return {payment.id: payment for payment in found}


def charge_renewals(charge_ids: list[int], result: RenewalsResult) -> None:
    """Charge claimed attempts and record what came of them: the preparation of all in one
    transaction, the provider calls with none open, their outcomes together in the next.
    A batch whose preparation fails is charged one by one; an outcome that cannot be
    recorded with the others is recorded on its own (see `_record_outcomes`)."""
    part = RenewalsResult()
    try:
        with write_transaction():
            prepared = _prepare_charges(charge_ids, part)
    except Exception:
        if len(charge_ids) == 1:
            raise
        log.exception("renewals: charges %s not prepared together: one by one", charge_ids)
        for charge_id in charge_ids:
            _charge_alone(charge_id, result)
        return
    result.add(part)
    fetched = _payments_for_call([p.payment_id for p in prepared if p.known is None])
    outcomes = []
    for one in prepared:
        called = one.known is None
        if called:
            payment = fetched[one.payment_id]
            try:
                outcome = payments.call_charge(payment, one.mandate_ref,
                                               idempotency_key=payment.idempotency_key)
            except ProviderError as error:
                called = False  # nothing to record on the payment: it stays as it is
                outcome = ChargeResult(None, PaymentState.FAILED,
                                       ChargeOutcome.FAILED_NEEDS_CUSTOMER, str(error))
            except Exception as error:
                # Not an answer of the provider, and the charge may have happened: this
                # one is asked again in an hour with its key, the batch's others go on.
                log.exception("renewals: charge %s not sent", one.charge_id)
                called = False
                outcome = ChargeResult(None, PaymentState.OPEN,
                                       ChargeOutcome.FAILED_RETRYABLE, f"not sent: {error}")
        else:
            outcome = one.known
        outcomes.append((one, outcome, called))
    _record_outcomes(outcomes, result)


def _charge_alone(charge_id: int, result: RenewalsResult) -> None:
    try:
        charge_renewals([charge_id], result)
    except Exception:
        log.exception("renewals: charge %s failed", charge_id)
        _back_in_queue([charge_id])


def _back_in_queue(charge_ids: list[int]) -> None:
    """Claimed charges whose work failed: due again in an hour (the same key: no double
    charge)."""
    with write_transaction():
        db.session.execute(
            sa.update(RenewalCharge)
            .where(RenewalCharge.id.in_(charge_ids),
                   RenewalCharge.status == ChargeStatus.CHARGING)
            .values(status=ChargeStatus.DUE, due_at=now_utc() + UNANSWERED_RETRY)
            .execution_options(synchronize_session=False))


def _record_outcomes(outcomes: list[tuple[_Prepared, ChargeResult, bool]],
                     result: RenewalsResult) -> None:
    """Record the answers of a batch in one transaction. If that fails, nothing of it is
    kept and each is recorded in a transaction of its own, so one charge's failure loses
    none of the others; one that fails alone goes back in the queue (`_back_in_queue`)."""
    part = RenewalsResult()
    try:
        with write_transaction():
            _record_batch(outcomes, part)
    except Exception:
        if len(outcomes) == 1:
            raise
        log.exception("renewals: outcomes of charges %s not recorded together: one by one",
                      [one.charge_id for one, _o, _c in outcomes])
        for item in outcomes:
            try:
                _record_outcomes([item], result)
            except Exception:
                log.exception("renewals: charge %s failed", item[0].charge_id)
                _back_in_queue([item[0].charge_id])
        return
    result.add(part)


def _record_batch(outcomes: list[tuple[_Prepared, ChargeResult, bool]],
                  result: RenewalsResult) -> None:
    """What the charges came to, for the renewals: paid (the term is added), pending at
    the bank, unanswered (the same key again later) or failed. The payments first
    (`payments.record_charges`), then the charges, then the renewals."""
    called = [(one.payment_id, one.order_id, outcome)
              for one, outcome, was_called in outcomes if was_called]
    # The orders, held here while the outcomes are recorded: the session keeps only weak
    # references, and applying the renewals needs them again.
    orders = payments.record_charges(called) if called else []
    by_outcome: dict[str, list[_Prepared]] = {"paid": [], "pending": [], "unanswered": [],
                                             "failed": []}
    for one, outcome, _was_called in outcomes:
        if outcome.outcome == ChargeOutcome.PAID:
            by_outcome["paid"].append(one)
        elif outcome.outcome == ChargeOutcome.PENDING:
            by_outcome["pending"].append(one)
        elif (outcome.outcome == ChargeOutcome.FAILED_RETRYABLE
              and outcome.state == PaymentState.OPEN):
            # The provider did not answer: the charge may have happened. The same attempt
            # (the same key) is tried again later, so the provider answers with that charge;
            # the next attempt's new key could charge a second time.
            db.session.execute(
                sa.update(RenewalCharge).where(RenewalCharge.id == one.charge_id)
                .values(status=ChargeStatus.DUE, due_at=now_utc() + UNANSWERED_RETRY,
                        claimed_by=None, reason=outcome.reason[:300])
                .execution_options(synchronize_session=False))
            result.unanswered += 1
        else:
            by_outcome["failed"].append(one)
    if by_outcome["paid"]:
        _finish_claimed([one.charge_id for one in by_outcome["paid"]], ChargeStatus.PAID)
        apply_renewals([one.renewal_id for one in by_outcome["paid"]])
        result.charged += len(by_outcome["paid"])
    if by_outcome["pending"]:
        _finish_claimed([one.charge_id for one in by_outcome["pending"]],
                        ChargeStatus.PENDING)
        result.pending += len(by_outcome["pending"])
    if by_outcome["failed"]:
        reasons = {one.charge_id: (outcome.reason, outcome.outcome)
                   for one, outcome, _c in outcomes}
        charges = db.session.scalars(
            sa.select(RenewalCharge)
            .where(RenewalCharge.id.in_([one.charge_id for one in by_outcome["failed"]]))
            .order_by(RenewalCharge.id).options(*_CHARGE_WITH_SUBSCRIPTION)).unique().all()
        for charge in charges:
            reason, outcome = reasons[charge.id]
            _charge_failed(charge, db.session.get(Order, charge.order_id), reason, result,
                           retryable=outcome == ChargeOutcome.FAILED_RETRYABLE)
    del orders


def _finish_claimed(charge_ids: list[int], status: ChargeStatus, reason: str = "") -> None:
    """`_finish` without loading the charges: one UPDATE."""
    db.session.execute(
        sa.update(RenewalCharge).where(RenewalCharge.id.in_(charge_ids))
        .values(status=status, reason=reason[:300], finished_at=now_utc())
        .execution_options(synchronize_session=False))


def _charge_failed(charge: RenewalCharge, order: Order, reason: str,
                   result: RenewalsResult, *, retryable: bool) -> None:
    """A failed attempt: the next one after RENEWAL_RETRY_DAYS (a mail with a pay link),
    or, when it cannot succeed by itself or the retries are used up, the customer."""
    retry_days = current_app.config["RENEWAL_RETRY_DAYS"]
    subscription = charge.subscription
    if retryable and charge.attempt <= len(retry_days):
        _finish(charge, ChargeStatus.FAILED, reason)
        next_at = now_utc() + timedelta(days=retry_days[charge.attempt - 1])
        db.session.add(RenewalCharge(
            subscription_id=subscription.id, term=charge.term, attempt=charge.attempt + 1,
            idempotency_key=charge_key(subscription.id, charge.term, charge.attempt + 1),
            status=ChargeStatus.DUE, due_at=next_at))
        _pay_link_mail(subscription, order, "renewals_charge_failed",
                       f"renewal-failed:{subscription.id}:{charge.term}:{charge.attempt}",
                       retry_on=next_at.astimezone(BRUSSELS).date())
        result.retry += 1
    else:
        _finish(charge, ChargeStatus.NEEDS_CUSTOMER, reason)
        _pay_link_mail(subscription, order, "renewals_needs_customer",
                       f"renewal-needs-customer:{subscription.id}:{charge.term}")
        result.needs_customer += 1


def settle_pending_charges(result: RenewalsResult) -> None:
    """Direct debits the bank answered after the charge (a webhook or the reconcile job
    recorded the payment): a paid one is done (its order is applied as paid), a failed one
    is retried on the schedule like a declined card — at the bank it is mostly a balance
    too low that day. Each in its own transaction, claimed by a conditional update."""
    ended = (PaymentState.PAID, PaymentState.FAILED, PaymentState.CANCELLED,
             PaymentState.EXPIRED)
    rows = db.session.execute(
        sa.select(RenewalCharge.id, Payment.state, Payment.last_error)
        .join(Payment, Payment.id == RenewalCharge.payment_id)
        .where(RenewalCharge.status == ChargeStatus.PENDING, Payment.state.in_(ended))
        .order_by(RenewalCharge.id)).all()
    db.session.rollback()
    for charge_id, state, error in rows:
        with write_transaction():
            claimed = db.session.execute(
                sa.update(RenewalCharge)
                .where(RenewalCharge.id == charge_id,
                       RenewalCharge.status == ChargeStatus.PENDING)
                .values(status=ChargeStatus.FAILED)
                .execution_options(synchronize_session=False)).rowcount
            if claimed != 1:
                continue
            charge = db.session.get(RenewalCharge, charge_id, populate_existing=True)
            if state == PaymentState.PAID:
                _finish(charge, ChargeStatus.PAID)
            else:
                _charge_failed(charge, db.session.get(Order, charge.order_id),
                               error or f"direct debit {state.value}", result,
                               retryable=True)


def run_renewals(progress=None) -> RenewalsResult:
    """The `renewals` job: charges left by a dead run taken back, paid renewals applied,
    direct debits the bank answered settled, first attempts scheduled, and every due charge
    made, in batches of up to RENEWAL_BATCH_SIZE by RENEWAL_CONCURRENCY threads at a time
    (see `_charge_due`)."""
    result = RenewalsResult()
    result.released = release_orphans(
        RenewalCharge, RenewalCharge.status == ChargeStatus.CHARGING,
        {"status": ChargeStatus.DUE, "claimed_by": None})
    result.applied += apply_paid_renewals()
    settle_pending_charges(result)
    schedule_first_attempts()
    now = now_utc()
    due = sa.and_(RenewalCharge.status == ChargeStatus.DUE, RenewalCharge.due_at <= now)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(RenewalCharge)
                              .where(due))
    db.session.rollback()
    if progress:
        progress.start(count)
    config = current_app.config
    workers = min(config["RENEWAL_CONCURRENCY"], count)
    # Batches no bigger than each thread's share, so a small run still has every thread
    # charging.
    size = max(1, min(config["RENEWAL_BATCH_SIZE"], -(-count // max(workers, 1))))
    if workers <= 1:
        _charge_due(due, size, result, progress.advance if progress else None)
        return result
    app = current_app._get_current_object()
    lock = threading.Lock()

    def advance(n: int) -> None:
        if progress:
            with lock:  # the job's progress and heartbeat are not made for threads
                progress.advance(n)

    def work(part: RenewalsResult) -> None:
        # A thread of its own has an app context of its own, so a session (and a database
        # connection) of its own.
        with app.app_context():
            _charge_due(due, size, part, advance)

    parts = [RenewalsResult() for _ in range(workers)]
    with ThreadPoolExecutor(workers, thread_name_prefix="renewals") as pool:
        done = [pool.submit(work, part) for part in parts]
    for future in done:
        future.result()  # a worker's own failure (not a charge's) fails the run
    for part in parts:
        result.add(part)
    return result


def _claim_charges(due: sa.ColumnElement[bool], size: int) -> list[int]:
    """Claim up to `size` due charges for this process and commit (as
    magazine.jobruns.claim_next does for one row: PostgreSQL skips rows another process
    has locked, SQLite claims under its write lock): their ids in order, [] when none is
    due. A batch left by a process that died is handed back by `release_orphans`."""
    values = {"status": ChargeStatus.CHARGING, "claimed_by": owner_id(),
              "claimed_at": now_utc()}
    while True:
        with write_transaction():
            select = (sa.select(RenewalCharge.id).where(due).order_by(RenewalCharge.id)
                      .limit(size))
            if dialect_name() == "postgresql":
                select = select.with_for_update(skip_locked=True)
            ids = db.session.scalars(select).all()
            if not ids:
                return []
            taken = db.session.execute(
                sa.update(RenewalCharge).where(RenewalCharge.id.in_(ids), due)
                .values(**values).returning(RenewalCharge.id)
                .execution_options(synchronize_session=False)).scalars().all()
        if taken:
            return sorted(taken)


def _charge_due(due: sa.ColumnElement[bool], size: int, result: RenewalsResult,
                advance) -> None:
    """Claim due charges `size` at a time and charge each batch (`charge_renewals`) until
    none is due. Several of these run side by side (threads here, or other processes):
    each charge is its own claimed row with its own key, and the provider calls are made
    with no transaction open, so while one thread waits for the provider the others
    prepare and record their batches."""
    while charge_ids := _claim_charges(due, size):
        if advance:
            advance(len(charge_ids))
        try:
            charge_renewals(charge_ids, result)
        except Exception:
            log.exception("renewals: charges %s failed", charge_ids)
            # Back in the queue in an hour (the same keys: no double charge).
            _back_in_queue(charge_ids)


# ---------------------------------------------------------------- grace and lapse

@dataclass
class LapseResult:
    graced: int = 0
    ended: int = 0
    lapsed: int = 0
    applied: int = 0

    def summary(self) -> str:
        return summary_line("lapse", [
            (self.graced, "graced"), (self.lapsed, "lapsed"),
            (self.ended, "ended without renewal")], [(self.applied, "paid renewals applied")])


def _move_once(subscription_id: int, expected: SubscriptionState,
               work) -> bool:
    """Move one subscription in its own transaction if it is still in `expected`."""
    try:
        with write_transaction():
            subscription = db.session.get(Subscription, subscription_id)
            if subscription.state != expected:
                return False
            work(subscription)
    except services.StaleState:
        return False
    return True


def run_lapse(progress=None) -> LapseResult:
    result = LapseResult()
    result.applied = apply_paid_renewals()
    config = current_app.config
    now = now_utc()
    next_term = Subscription.term + 1
    in_flight = sa.exists(sa.select(RenewalCharge.id).where(
        RenewalCharge.subscription_id == Subscription.id, RenewalCharge.term == next_term,
        RenewalCharge.status.in_([ChargeStatus.DUE, ChargeStatus.CHARGING])))
    used_up = db.session.execute(
        sa.select(Subscription.id, Subscription.auto_renew, Subscription.complimentary,
                  Subscription.gift_recipient_email)
        .where(Subscription.state == SubscriptionState.ACTIVE,
               Subscription.issues_remaining == 0, ~in_flight)
        .order_by(Subscription.id)).all()
    to_lapse = db.session.scalars(
        sa.select(Subscription.id).where(
            Subscription.state == SubscriptionState.GRACED,
            Subscription.grace_issues_used >= config["GRACE_ISSUES"],
            Subscription.graced_at <= now - timedelta(days=config["GRACE_DAYS"]))
        .order_by(Subscription.id)).all()
    db.session.rollback()
    if progress:
        progress.start(len(used_up) + len(to_lapse))

    def grace(subscription: Subscription) -> None:
        services.move_subscription(subscription, SubscriptionState.GRACED, actor=None,
                                   reason="term used up, renewal not paid")
        subscription.graced_at = now_utc()
        subscription.grace_issues_used = 0
        user = subscription.subscriber
        if user is not None:
            mandate = _mandate(subscription)
            renewal = renewal_order_for(
                subscription, provider_name=mandate.provider if mandate else "bank_transfer")
            _pay_link_mail(subscription, renewal.order, "renewals_graced",
                           f"graced:{subscription.id}:{subscription.term}",
                           grace_issues=config["GRACE_ISSUES"])

    def end(subscription: Subscription) -> None:
        services.move_subscription(subscription, SubscriptionState.CANCELLED, actor=None,
                                   reason="ended")

    def lapse(subscription: Subscription) -> None:
        services.move_subscription(subscription, SubscriptionState.LAPSED, actor=None,
                                   reason="grace passed without payment")
        user = subscription.subscriber
        if user is not None:
            queue_mail(user.email, "renewals_lapsed",
                       key=f"lapsed:{subscription.id}:{subscription.term}",
                       locale=user.locale, name=user.name, subscription=subscription,
                       plans_url=external_url("subscriptions.plans"))

    for row in used_up:
        if progress:
            progress.advance(1)
        renewing = row.auto_renew and not row.complimentary and not row.gift_recipient_email
        if _move_once(row.id, SubscriptionState.ACTIVE, grace if renewing else end):
            if renewing:
                result.graced += 1
            else:
                result.ended += 1
    for subscription_id in to_lapse:
        if progress:
            progress.advance(1)
        if _move_once(subscription_id, SubscriptionState.GRACED, lapse):
            result.lapsed += 1
    return result
