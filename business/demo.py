"""Two years of business history for the demo, after the subscriptions demo.

The subscriptions demo makes a few hundred subscribers of the last year. This adds the year
before: subscribers who started 13–24 months ago, of whom most renewed a year later (a
renewal order, its payment and invoice; some organisations with more or fewer copies) and
the rest lapsed; a few refunds and chargebacks; and then the monthly roll-up rows for every
month since the first subscriber and the totals of every finished month, as the
`business-rollup` job would have written them.
Invoice numbers are given again in date order per year afterwards, so they stay gapless.

Before the subscriptions demo (`load_past_issues`): the issues of the two years before the
editorial demo's, five a year, dispatched — so the subscriptions demo counts the issues its
subscribers used. After it: each dispatched issue's locked list (dispatch, entries and
address lines, as `lock_mailing_list` leaves them) for the subscriptions counted in the
month of its cut-off that had started by then.

Seed data, inserted in bulk (a loop over generated rows is fine here, unlike in the
figures); loading twice adds nothing.
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from business.jobs import close_months, roll_up_month
from business.models import SubscriptionMonth
from business.months import month_no, month_start_utc
from editorial import services as editorial_services
from editorial.models import Issue, IssueState
from magazine.auth.services import hash_password
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.models import AuditEvent, User, UserRole
from magazine.roles import Role
from subscriptions import demo as subscriptions_demo
from subscriptions import models as sub_models
from subscriptions import services
from subscriptions.models import (
    DeliveryAddress,
    Dispatch,
    DispatchEntry,
    DispatchLine,
    DocumentCounter,
    Invoice,
    Order,
    Payment,
    Plan,
    Refund,
    RenewalOrder,
    Subscription,
)
from subscriptions.states import OrderState, PaymentState, SubscriptionState

HISTORY_SUBSCRIBERS = 160
PROVIDERS = ["bank_transfer"] * 6 + ["stripe"] * 3 + ["mollie"] * 2
Chargeback = getattr(sub_models, "Chargeback", None)
_placeholders = itertools.count(10**9)


def _month_of(moment: datetime) -> int:
    return month_no(moment.astimezone(BRUSSELS).date())


PAST_THEMES = ["Spelen met water en zand", "Eten aan tafel", "Zindelijk worden",
               "Muziek in de leefgroep", "Afscheid nemen", "Kleine kinderen, grote emoties",
               "Samenwerken met ouders", "Bewegen binnen", "Voorlezen", "De eerste stappen"]
ISSUE_SPACING_DAYS = 73  # five issues a year


def load_past_issues() -> list[str]:
    """The dispatched issues of the two years before the editorial demo's first one (once:
    nothing when there are issues of more than a year ago already). Each volume's issues
    are numbered again in print-date order afterwards."""
    issues = db.session.scalars(sa.select(Issue).order_by(Issue.print_date, Issue.id)).all()
    # Only before the subscriptions demo: its subscribers count the issues they received.
    if not issues or db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)):
        return []
    today = now_utc().astimezone(BRUSSELS).date()
    first = issues[0].print_date
    if first < today - timedelta(days=365):
        return []
    added = 0
    day = first - timedelta(days=ISSUE_SPACING_DAYS)
    while day > today - timedelta(days=730):
        db.session.add(Issue(volume=day.year - 2023, number=-1000 - added,
                             theme=PAST_THEMES[added % len(PAST_THEMES)], print_date=day,
                             state=IssueState.DISPATCHED, page_budget=32,
                             **editorial_services.derive_deadlines(day)))
        added += 1
        day -= timedelta(days=ISSUE_SPACING_DAYS)
    db.session.flush()
    every = db.session.scalars(sa.select(Issue).order_by(Issue.print_date, Issue.id)).all()
    for issue in every:
        issue.number = -issue.id  # out of the way of the numbers given below
    db.session.flush()
    numbers: dict[int, int] = {}
    for issue in every:
        numbers[issue.volume] = numbers.get(issue.volume, 0) + 1
        issue.number = numbers[issue.volume]
    db.session.commit()
    return [f"{added} dispatched issues of the two years before"]


def _dispatch_records(now: datetime) -> int:
    """The locked list of every dispatched issue without one, from the monthly rows: the
    subscriptions counted in the month of its cut-off that were paid (or given) by then and
    start no later than it. Set-based, one issue at a time."""
    issues = db.session.scalars(
        sa.select(Issue).where(Issue.state == IssueState.DISPATCHED,
                               ~Issue.id.in_(sa.select(Dispatch.issue_id)))
        .order_by(Issue.print_date)).all()
    first = sa.orm.aliased(Issue)
    for issue in issues:
        locked = datetime.combine(issue.dispatch_cutoff, datetime.min.time(),
                                  tzinfo=BRUSSELS) + timedelta(hours=6)
        db.session.add(Dispatch(issue_id=issue.id, locked_at=locked, dispatched_at=locked,
                                stock_copies=current_app.config["PRINT_STOCK_COPIES"]))
        db.session.flush()
        entries = (
            sa.select(sa.literal(issue.id), Subscription.id, SubscriptionMonth.plan_id,
                      Subscription.copies, Plan.includes_digital, sa.false(),
                      sa.literal("demo"), sa.literal(locked, DispatchEntry.mailed_at.type))
            .select_from(SubscriptionMonth)
            .join(Subscription, Subscription.id == SubscriptionMonth.subscription_id)
            .join(Plan, Plan.id == SubscriptionMonth.plan_id)
            .outerjoin(first, first.id == Subscription.first_issue_id)
            .where(SubscriptionMonth.month_no == month_no(issue.dispatch_cutoff),
                   Subscription.activated_at <= locked,
                   sa.or_(first.id.is_(None), first.print_date <= issue.print_date))
        )
        db.session.execute(sa.insert(DispatchEntry).from_select(
            ["issue_id", "subscription_id", "plan_id", "copies", "digital", "graced",
             "lock_token", "mailed_at"], entries))
        latest = (
            sa.select(sa.func.max(DeliveryAddress.id).label("id"))
            .join(DispatchEntry, sa.and_(
                DispatchEntry.subscription_id == DeliveryAddress.subscription_id,
                DispatchEntry.issue_id == issue.id))
            .join(Plan, Plan.id == DispatchEntry.plan_id)
            .where(Plan.includes_print.is_(True))
            .group_by(DeliveryAddress.subscription_id, DeliveryAddress.group_no)
        )
        lines = (
            sa.select(sa.literal(issue.id), DeliveryAddress.subscription_id,
                      DeliveryAddress.group_no, Subscription.plan_id, DeliveryAddress.copies,
                      DeliveryAddress.name, DeliveryAddress.organisation,
                      DeliveryAddress.street, DeliveryAddress.postcode, DeliveryAddress.city,
                      DeliveryAddress.country)
            .join(Subscription, Subscription.id == DeliveryAddress.subscription_id)
            .where(DeliveryAddress.id.in_(latest))
        )
        db.session.execute(sa.insert(DispatchLine).from_select(
            ["issue_id", "subscription_id", "group_no", "plan_id", "copies", "name",
             "organisation", "street", "postcode", "city", "country"], lines))
        db.session.execute(
            sa.update(Dispatch).where(Dispatch.issue_id == issue.id).values(
                subscriptions=sa.select(sa.func.count()).select_from(DispatchEntry)
                .where(DispatchEntry.issue_id == issue.id).scalar_subquery(),
                copies=sa.select(sa.func.coalesce(sa.func.sum(DispatchLine.copies), 0))
                .where(DispatchLine.issue_id == issue.id).scalar_subquery()))
    db.session.flush()
    return len(issues)


def load_business_demo() -> list[str]:
    if db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth)):
        return []
    plans = {plan.code: plan for plan in db.session.scalars(sa.select(Plan))}
    if not {"individueel", "organisatie", "student", "digitaal"} <= plans.keys():
        return []
    rng = random.Random(2024)  # nosec B311 # reproducible demo data, not a secret
    now = now_utc()
    history = _history(rng, plans, now)
    _refunds_and_chargebacks(rng, now)
    _renumber_invoices()
    _monthly_rows(history, now)
    roll_up_month(_month_of(now))
    # Every finished month closed, as the hourly job would have done at each month's end.
    close_months()
    dispatched = _dispatch_records(now)
    db.session.commit()
    return [f"{HISTORY_SUBSCRIBERS} subscribers of the year before", "monthly figures",
            f"the mailing lists of {dispatched} dispatched issues"]


def _paid_order(rng: random.Random, user: User, plan: Plan, copies: int, placed: datetime,
                addresses: list[DeliveryAddress], used: set[str]) -> Order:
    order = subscriptions_demo._make_order(
        user, plan, copies=copies, addresses=addresses, placed=placed,
        communication=subscriptions_demo._communication(rng, used),
        organisation="Kinderdagverblijf De Rups" if copies > 1 else "", locale=user.locale)
    provider = rng.choice(PROVIDERS)
    paid_at = placed + timedelta(days=rng.randrange(0, 6), hours=rng.randrange(1, 20))
    order.provider, order.state, order.paid_at = provider, OrderState.PAID, paid_at
    order.payments.append(Payment(
        provider=provider, amount_cents=order.total_cents, state=PaymentState.PAID,
        paid_at=paid_at, received_on=paid_at.astimezone(BRUSSELS).date(), created_at=placed,
        provider_ref=None if provider == "bank_transfer" else f"demo_{rng.randrange(10**12)}"))
    day = placed.astimezone(BRUSSELS).date()
    # A placeholder number until all invoices are numbered in date order (_renumber_invoices).
    placeholder = next(_placeholders)
    order.invoice = Invoice(
        number=f"TMP-{placeholder}", year=day.year, sequence=-placeholder, issue_date=day,
        due_date=day + timedelta(days=30), total_cents=order.total_cents,
        vat_cents=order.vat_cents, buyer_name=order.billing_name,
        buyer_organisation=order.billing_organisation, buyer_email=order.billing_email,
        buyer_address=services._buyer_address(order), locale=order.locale, issued_at=placed)
    db.session.add(order)
    return order


def _history(rng: random.Random, plans: dict[str, Plan], now: datetime) -> list[tuple]:
    """Subscribers who started 13–24 months ago; returns per subscription the months it
    was counted in, with its MRR, as (subscription, [(first, last, plan, term order)])."""
    password_hash = hash_password("demo-password")
    used: set[str] = set()
    result = []
    for number in range(1, HISTORY_SUBSCRIBERS + 1):
        first = rng.choice(subscriptions_demo.FIRST_NAMES)
        last = rng.choice(subscriptions_demo.LAST_NAMES)
        # More starts in the older months, as a magazine that grew and then steadied.
        placed = now - timedelta(days=int(rng.uniform(370, 730)),
                                 hours=rng.randrange(24))
        user = User(email=f"{first}.{last}.h{number}".lower().replace(" ", "") + "@example.be",
                    name=f"{first} {last}", password_hash=password_hash, locale="nl_BE",
                    email_verified_at=placed, created_at=placed, password_changed_at=placed)
        user.role_rows.append(UserRole(role=Role.SUBSCRIBER))
        db.session.add(user)
        roll = rng.random()
        if roll < 0.2:
            plan, copies = plans["organisatie"], rng.choice([2, 3, 5, 8, 10])
        elif roll < 0.35:
            plan, copies = plans["digitaal"], 1
        elif roll < 0.5:
            plan, copies = plans["student"], 1
        else:
            plan, copies = plans["individueel"], 1
        addresses = []
        if plan.includes_print:
            addresses = [subscriptions_demo._address(rng, user.name, "", copies)]
        order = _paid_order(rng, user, plan, copies, placed, addresses, used)
        renews = rng.random() < (0.45 if plan.code == "student" else 0.7)
        subscription = Subscription(
            subscriber=user, plan=plan, order=order, copies=copies,
            issues_granted=plan.issues_per_term, issues_remaining=0,
            auto_renew=renews, created_at=placed, activated_at=order.paid_at,
            state=SubscriptionState.LAPSED,
        )
        subscription.addresses.extend(addresses)
        db.session.add(subscription)
        db.session.flush()
        start = _month_of(order.paid_at)
        spans = [(start, start + 11, order)]
        if renews:
            new_copies = copies
            if plan.code == "organisatie" and rng.random() < 0.4:
                new_copies = max(2, copies + rng.choice([-3, -2, 2, 3, 5]))
            again = placed + timedelta(days=365 + rng.randrange(-20, 5))
            renewal = _paid_order(rng, user, plan, new_copies, again, [], used)
            db.session.flush()
            db.session.add(RenewalOrder(subscription_id=subscription.id, term=2,
                                        plan_id=plan.id, order_id=renewal.id,
                                        applied_at=renewal.paid_at, created_at=again))
            subscription.term = 2
            subscription.copies = new_copies
            if addresses:
                addresses[0].copies = new_copies
            subscription.state = SubscriptionState.ACTIVE
            subscription.issues_remaining = rng.randrange(1, plan.issues_per_term + 1)
            renewed_in = _month_of(renewal.paid_at)
            spans = [(start, renewed_in - 1, order), (renewed_in, _month_of(now), renewal)]
        elif rng.random() < 0.3:
            # Some come back a few months after their subscription lapsed (reactivation).
            back = placed + timedelta(days=365 + rng.randrange(40, 150))
            if back < now - timedelta(days=3):
                order = _paid_order(rng, user, plan, copies, back, [], used)
                returned = Subscription(
                    subscriber=user, plan=plan, order=order, copies=copies,
                    issues_granted=plan.issues_per_term, issues_remaining=plan.issues_per_term,
                    auto_renew=True, created_at=back, activated_at=order.paid_at,
                    state=SubscriptionState.ACTIVE)
                returned.addresses.extend(
                    [subscriptions_demo._address(rng, user.name, "", copies)]
                    if plan.includes_print else [])
                db.session.add(returned)
                db.session.flush()
                result.append((returned, [(_month_of(order.paid_at), _month_of(now), order)]))
        result.append((subscription, spans))
    db.session.flush()
    return result


def _refunds_and_chargebacks(rng: random.Random, now: datetime) -> None:
    paid = db.session.scalars(
        sa.select(Payment).where(Payment.state == PaymentState.PAID,
                                 Payment.amount_cents > 2000).order_by(Payment.id)).all()
    for payment in rng.sample(paid, min(14, len(paid))):
        when = min(payment.paid_at + timedelta(days=rng.randrange(10, 70)),
                   now - timedelta(days=1))
        db.session.add(Refund(payment_id=payment.id, provider=payment.provider,
                              provider_ref=f"re_demo_{payment.id}",
                              amount_cents=rng.choice([500, 1000, payment.amount_cents // 2]),
                              reason="Dubbel betaald" if rng.random() < 0.5
                              else "Nummer niet ontvangen", created_at=when))
    if Chargeback is not None:
        online = [p for p in paid if p.provider != "bank_transfer"]
        for payment in rng.sample(online, min(4, len(online))):
            when = min(payment.paid_at + timedelta(days=rng.randrange(20, 60)),
                       now - timedelta(days=1))
            db.session.add(Chargeback(payment_id=payment.id, provider=payment.provider,
                                      provider_ref=f"chb_demo_{payment.id}",
                                      amount_cents=payment.amount_cents,
                                      reason="Betwist door de bank", created_at=when))
    db.session.flush()


def _renumber_invoices() -> None:
    """Every invoice numbered again in date order per year (gapless, as the real ones), and
    the counters where the next real invoice continues."""
    invoices = db.session.scalars(
        sa.select(Invoice).order_by(Invoice.issued_at, Invoice.id)).all()
    for invoice in invoices:
        invoice.number = f"TMP-{invoice.id}"
        invoice.sequence = -invoice.id - 1
    db.session.flush()
    counters: dict[int, int] = {}
    for invoice in invoices:
        year = invoice.issue_date.year
        counters[year] = counters.get(year, 0) + 1
        invoice.year, invoice.sequence = year, counters[year]
        invoice.number = f"{year}-{counters[year]:06d}"
    db.session.flush()
    for year, last in counters.items():
        counter = db.session.get(DocumentCounter, (services.INVOICE_SERIES, year))
        if counter is None:
            db.session.add(DocumentCounter(series=services.INVOICE_SERIES, year=year,
                                           last_number=last))
        else:
            counter.last_number = last
    db.session.flush()


def _net_of(order: Order) -> int:
    return sum(line.net_cents for line in order.lines if line.kind == "subscription")


def _mrr(order: Order, plan: Plan, per_year: int) -> int:
    months_x2 = plan.issues_per_term * 24
    return (_net_of(order) * per_year * 2 + plan.issues_per_term * 12) // months_x2


def _monthly_rows(history: list[tuple], now: datetime) -> None:
    """The roll-up rows of every past month: for the history made here from its spans; for
    the subscriptions demo's subscribers from their activation to now (lapsed ones: their
    first year, ending at the latest last month)."""

    per_year = current_app.config["ISSUES_PER_YEAR"]
    current = _month_of(now)
    rows: list[dict] = []

    def add(subscription: Subscription, first: int, last: int, order: Order | None,
            state: str) -> None:
        mrr = 0 if subscription.complimentary or order is None else _mrr(
            order, subscription.plan, per_year)
        for month in range(first, min(last, current - 1) + 1):
            rows.append(dict(month_no=month, subscription_id=subscription.id,
                             subscriber_key=subscription.subscriber_id or -subscription.id,
                             plan_id=subscription.plan_id, state=state,
                             complimentary=subscription.complimentary, mrr_cents=mrr,
                             recorded_at=now))

    ended: list[tuple[Subscription, int]] = []
    mine = set()
    for subscription, spans in history:
        mine.add(subscription.id)
        for first, last, order in spans:
            add(subscription, first, last, order, "active")
        if subscription.state == SubscriptionState.LAPSED:
            ended.append((subscription, spans[-1][1]))
    others = db.session.scalars(sa.select(Subscription).where(
        Subscription.activated_at.is_not(None),
        Subscription.state.not_in([SubscriptionState.PENDING_PAYMENT,
                                   SubscriptionState.EXPIRED]))).all()
    for subscription in others:
        if subscription.id in mine:
            continue
        first = _month_of(subscription.activated_at)
        last = current
        if subscription.state == SubscriptionState.LAPSED or (
                subscription.state == SubscriptionState.CANCELLED
                and subscription.issues_remaining == 0):
            # A year, or (for the demo's recent lapses) half of the time since they began,
            # so the churn spreads over the months instead of all falling in this one.
            span = current - 1 - first
            last = first + 11 if span >= 11 else first + max(span // 2, 0)
            ended.append((subscription, last))
        add(subscription, first, last, subscription.order, subscription.state.value)
    db.session.execute(sa.insert(SubscriptionMonth), rows)
    # The state change that ended each of them, in the audit log as the services write it,
    # early in the month after its last counted one: `business rebuild` reads the same
    # history from the records.
    db.session.execute(sa.insert(AuditEvent), [dict(
        action=f"subscription.{subscription.state.value}", object_type="subscription",
        object_id=str(subscription.id), details={"from": "active"},
        at=month_start_utc(last + 1) + timedelta(hours=8))
        for subscription, last in ended if last < current])

