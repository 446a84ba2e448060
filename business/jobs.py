"""The daily roll-up of the desk: the running month's subscription rows (see models)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import IntegrityError

from business import figures
from business.models import SubscriptionMonth
from business.months import month_no
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.jobs import Progress, register_job
from subscriptions.models import Plan, Subscription


@dataclass
class RollupResult:
    month: str = ""
    subscriptions: int = 0
    taken: bool = False

    def summary(self) -> str:
        if self.taken:
            return f"business-rollup: {self.month} taken by another run"
        return f"business-rollup: {self.month}, {self.subscriptions} subscriptions counted"


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


@register_job("business-rollup", CronTrigger(hour="*", minute=47, timezone=BRUSSELS),
              "count the running subscriptions of this month for the business figures")
def business_rollup(progress: Progress) -> RollupResult:
    """Hourly, so the month's last hour is in: the rows of a finished month stay as the last
    run of that month left them. Safe twice and side by side: a run replaces the month's
    rows in one transaction; one that collides with another is rolled back."""
    today = now_utc().astimezone(BRUSSELS).date()
    number = month_no(today)
    result = RollupResult(month=f"{today:%Y-%m}")
    progress.start(1)
    try:
        result.subscriptions = roll_up_month(number)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        result.taken = True
    progress.advance(1)
    return result
