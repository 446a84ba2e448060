"""The demo's two years of business history: every chart has a shape."""

from __future__ import annotations

import sqlalchemy as sa

from business import figures
from business.models import SubscriptionMonth
from business.months import Period, month_no
from magazine.db import db
from magazine.demo import load_demo
from subscriptions.models import Refund
from subscriptions.services import today_brussels


def test_demo_has_two_years_of_figures_and_loads_once(app_context):
    load_demo()
    rows = db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth))
    load_demo()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriptionMonth)) == rows
    current = month_no(today_brussels())
    period = Period(current - 23, current)
    moves = figures.movements(period)
    assert all(m.active_end > 0 for m in moves.months)
    assert moves.new > 100 and moves.churned > 20 and moves.reactivated > 5
    assert sum(m.mrr_expansion for m in moves.months) > 0
    assert sum(m.mrr_contraction for m in moves.months) > 0
    revenue = figures.revenue(period)
    assert all(month.received > 0 for month in revenue.months)
    assert revenue.total.refunded > 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Refund)) > 0
    # Five issues a year, dispatched, with their lists: every dispatch figure has a shape.
    issues = figures.recognised_per_issue(period)
    assert len(issues) >= 9
    assert all(issue.subscriptions > 0 and issue.recognised_cents > 0 for issue in issues)
    rates = [rate for rate in figures.renewal_rates(period) if rate.due]
    assert len(rates) >= 3 and all(0 < rate.rate < 1 for rate in rates)
    cohorts = figures.cohorts(period)
    assert len(cohorts) >= 8
    assert all(len(cohort.retained) >= 2 for cohort in cohorts[:-1])
    assert any(cohort.retained[-1] < cohort.size for cohort in cohorts)
    # The demo's history is in its records too: rebuilding every month from them gives the
    # very rows the demo wrote (`flask --app wsgi business rebuild --from …`).
    from business.jobs import rebuild

    def rows():
        return set(db.session.execute(sa.select(
            SubscriptionMonth.month_no, SubscriptionMonth.subscription_id,
            SubscriptionMonth.subscriber_key, SubscriptionMonth.mrr_cents)).all())

    written = rows()
    rebuild(min(month for month, *_rest in written))
    assert rows() == written
