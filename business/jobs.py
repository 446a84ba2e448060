"""The roll-up of the desk: the running month's subscription rows every hour (see models),
the totals of each month once it is over, and the rebuild of past months from the records
(`flask --app wsgi business rebuild`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import IntegrityError

from business import figures
from business.models import MonthTotals, RevenueMonth, SubscriptionMonth
from business.months import month_label, month_no, month_start_utc
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.jobs import Progress, register_job
from magazine.models import AuditEvent
from subscriptions.models import (
    Dispatch,
    DispatchEntry,
    OrderLine,
    Payment,
    Plan,
    Refund,
    RenewalOrder,
    Subscription,
)
from subscriptions.states import SubscriptionState


@dataclass
class RollupResult:
    month: str = ""
    subscriptions: int = 0
    closed: list[int] = field(default_factory=list)
    taken: bool = False

    def summary(self) -> str:
        if self.taken:
            return f"business-rollup: {self.month} taken by another run"
        text = f"business-rollup: {self.month}, {self.subscriptions} subscriptions counted"
        if self.closed:
            first, last = month_label(self.closed[0]), month_label(self.closed[-1])
            text += f"; closed {first}" + (f" – {last}" if last != first else "")
        return text


def roll_up_month(number: int) -> int:
    """Replace month `number`'s rows by the running subscriptions as they are now, in
    set-based statements (no rows pass through Python); returns how many. The caller
    commits."""
    term = figures.term_prices()
    mrr = figures.mrr_expression(term, figures.issues_per_year())
    db.session.execute(sa.delete(SubscriptionMonth).where(SubscriptionMonth.month_no == number))
    source = (
        sa.select(sa.literal(number), Subscription.id, figures.subscriber_key_expression(),
                  Subscription.plan_id, sa.cast(Subscription.state, sa.String(20)),
                  Subscription.complimentary, mrr,
                  sa.literal(now_utc(), SubscriptionMonth.recorded_at.type))
        .select_from(Subscription)
        .join(Plan, Plan.id == Subscription.plan_id)
        .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
        .where(figures.running_condition())
    )
    db.session.execute(
        sa.insert(SubscriptionMonth).from_select(
            ["month_no", "subscription_id", "subscriber_key", "plan_id", "state",
             "complimentary", "mrr_cents", "recorded_at"], source))
    # Counted, not read from rowcount: PostgreSQL (psycopg) reported -1 for this INSERT … SELECT.
    return db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth)
                             .where(SubscriptionMonth.month_no == number)) or 0


def _current_month() -> int:
    return month_no(now_utc().astimezone(BRUSSELS).date())


def _first_recorded_month() -> int | None:
    """The earliest month anything the totals sum happened in (a subscription counted, a
    payment, a refund, a chargeback); None when nothing has."""
    moments = [sa.func.min(Payment.paid_at), sa.func.min(Refund.created_at)]
    if figures.Chargeback is not None:
        moments.append(sa.func.min(figures.Chargeback.created_at))
    found = [db.session.scalar(sa.select(sa.func.min(SubscriptionMonth.month_no)))]
    found += [month_no(moment.astimezone(BRUSSELS).date()) if moment is not None else None
              for moment in (db.session.scalar(sa.select(first)) for first in moments)]
    found = [int(number) for number in found if number is not None]
    return min(found) if found else None


def close_months(first: int | None = None) -> list[int]:
    """Store the totals of every finished month not closed yet — and of every month from
    `first` on, again — from its rows and its money (`figures.month_totals`,
    `figures.revenue_sums`: the queries the desk runs live for months not closed), so the
    desk reads them instead. Months are closed in a row from the first with anything in it,
    so every month up to the latest closed one has its totals (or had nothing). A month's
    rows are replaced, never added to: safe twice. Returns the months closed; the caller
    commits.

    Only finished months: the running month's rows change every hour and its money every
    minute. A finished month's money does not change any more (a payment counts in the
    month it was paid, a refund or chargeback in the month it was recorded), and its rows
    only by `business rebuild`, which closes its months again."""
    current = _current_month()
    latest = db.session.scalar(sa.select(sa.func.max(MonthTotals.month_no)))
    start = int(latest) + 1 if latest is not None else _first_recorded_month()
    if first is not None:
        start = first if start is None else min(start, first)
    if start is None or start >= current:
        return []
    months = list(range(start, current))
    totals = figures.month_totals(start, current - 1)
    money = db.session.execute(figures.revenue_sums(start, current - 1)).all()
    db.session.execute(sa.delete(MonthTotals).where(MonthTotals.month_no >= start))
    db.session.execute(sa.delete(RevenueMonth).where(RevenueMonth.month_no >= start))
    recorded = now_utc()
    db.session.execute(sa.insert(MonthTotals), [
        dict(zip(("month_no", *figures.MONTH_FIELDS, "recorded_at"),
                 (number, *totals.get(number, figures._NOTHING), recorded), strict=True))
        for number in months])
    if money:
        db.session.execute(sa.insert(RevenueMonth), [
            dict(month_no=int(number), provider=provider, plan_id=plan_id, kind=kind,
                 amount_cents=int(amount or 0), vat_cents=int(vat or 0))
            for number, provider, plan_id, kind, amount, vat in money])
    return months


@register_job("business-rollup", CronTrigger(hour="*", minute=47, timezone=BRUSSELS),
              "count the running subscriptions of this month for the business figures")
def business_rollup(progress: Progress) -> RollupResult:
    """Hourly, so the month's last hour is in: the rows of a finished month stay as the last
    run of that month left them, and the first run after it closes the month (its totals,
    `close_months`). Safe twice and side by side: a run replaces the month's rows in one
    transaction; one that collides with another is rolled back."""
    today = now_utc().astimezone(BRUSSELS).date()
    number = month_no(today)
    result = RollupResult(month=f"{today:%Y-%m}")
    progress.start(1)
    try:
        result.subscriptions = roll_up_month(number)
        result.closed = close_months()
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        result.taken = True
    progress.advance(1)
    return result


# ---------------------------------------------------------------- rebuilding past months

STATE_ACTIONS = [f"subscription.{state.value}" for state in SubscriptionState]


def rebuild_month(number: int) -> int:
    """Replace the rows of the finished month `number` by what the records say about its
    end (set-based, like `roll_up_month`); returns how many. The caller commits.

    At the month's end a subscription was counted when it had been activated and its state
    then was running: the state its last state change before that moment left it in (the
    audit log records every change: `subscription.<state>`); without a change before it,
    active if it changed later, else the state it has now. Renewal off counts while issues
    were left: it has issues left now or received an issue locked after that moment. Its
    plan and MRR are those of the term then: the latest renewal order applied before the
    moment, else the order it was bought with."""
    end = month_start_utc(number + 1)
    key = sa.cast(Subscription.id, AuditEvent.object_id.type)
    state_events = sa.and_(AuditEvent.object_type == "subscription",
                           AuditEvent.object_id == key,
                           AuditEvent.action.in_(STATE_ACTIONS))
    last_action = (
        sa.select(AuditEvent.action).where(state_events, AuditEvent.at < end)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(1).scalar_subquery()
    )
    changed_later = sa.exists().where(state_events, AuditEvent.at >= end)
    state_then = sa.case(
        (last_action.is_not(None), sa.func.substr(last_action, len("subscription.") + 1)),
        (changed_later, SubscriptionState.ACTIVE.value),
        else_=sa.cast(Subscription.state, sa.String(20)),
    )
    issues_left = sa.or_(
        Subscription.issues_remaining > 0,
        sa.exists().where(DispatchEntry.subscription_id == Subscription.id,
                          DispatchEntry.issue_id == Dispatch.issue_id,
                          Dispatch.locked_at >= end),
    )
    term_order = figures.term_order_at(Subscription.id, sa.literal(end, Dispatch.locked_at.type))
    net = figures._term_net_by_order()
    ipy = figures.issues_per_year()
    # In two steps: the term's order first, then its plan (SQL correlates one level only).
    terms = (
        sa.select(Subscription.id.label("subscription_id"),
                  figures.subscriber_key_expression().label("subscriber_key"),
                  state_then.label("state"),
                  Subscription.complimentary.label("complimentary"),
                  term_order.label("term_order"))
        .where(Subscription.activated_at.is_not(None), Subscription.activated_at < end)
        .subquery("terms")
    )
    plan_then = sa.func.coalesce(
        sa.select(RenewalOrder.plan_id).where(RenewalOrder.order_id == terms.c.term_order)
        .scalar_subquery(),
        sa.select(sa.func.max(OrderLine.plan_id))
        .where(OrderLine.order_id == terms.c.term_order, OrderLine.kind == "subscription")
        .scalar_subquery(),
        sa.select(Subscription.plan_id).where(Subscription.id == terms.c.subscription_id)
        .scalar_subquery(),
    )
    rows = sa.select(terms, plan_then.label("plan_id")).subquery("then")
    paid = sa.and_(rows.c.complimentary.is_(False), net.c.order_id.is_not(None))
    mrr = sa.case(
        (paid, (sa.func.coalesce(net.c.net, 0) * ipy * 2 + Plan.issues_per_term * 12)
         // (Plan.issues_per_term * 24)),
        else_=0,
    )
    running = sa.or_(
        rows.c.state.in_([SubscriptionState.ACTIVE.value, SubscriptionState.GRACED.value]),
        sa.and_(rows.c.state == SubscriptionState.CANCELLED.value, issues_left),
    )
    source = (
        sa.select(sa.literal(number), rows.c.subscription_id, rows.c.subscriber_key,
                  rows.c.plan_id, rows.c.state, rows.c.complimentary, mrr,
                  sa.literal(now_utc(), SubscriptionMonth.recorded_at.type))
        .select_from(rows)
        .join(Subscription, Subscription.id == rows.c.subscription_id)
        .join(Plan, Plan.id == rows.c.plan_id)
        .outerjoin(net, net.c.order_id == rows.c.term_order)
        .where(running)
    )
    db.session.execute(sa.delete(SubscriptionMonth).where(SubscriptionMonth.month_no == number))
    db.session.execute(
        sa.insert(SubscriptionMonth).from_select(
            ["month_no", "subscription_id", "subscriber_key", "plan_id", "state",
             "complimentary", "mrr_cents", "recorded_at"], source))
    return db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth)
                             .where(SubscriptionMonth.month_no == number)) or 0


def rebuild(first: int, progress: Progress | None = None) -> list[tuple[int, int]]:
    """Rebuild every month from `first` to the running one, each in its own transaction:
    finished months from the records (`rebuild_month`), the running month as the hourly
    job counts it; then the totals of the finished ones again (`close_months`: a month's
    new and reactivated subscribers depend on the months before it). Safe to run again: a
    month's rows are replaced, never added to. Returns (month, rows) per month."""
    current = _current_month()
    months = list(range(first, current + 1))
    if progress is not None:
        progress.start(len(months) + 1)
    done = []
    for number in months:
        rows = roll_up_month(number) if number == current else rebuild_month(number)
        db.session.commit()
        done.append((number, rows))
        if progress is not None:
            progress.advance(1)
    close_months(first)
    db.session.commit()
    if progress is not None:
        progress.advance(1)
    return done
