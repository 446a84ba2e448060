"""The totals of finished months (business/models.py: MonthTotals, RevenueMonth): the desk
reads them for the closed months and counts the others live, and every figure is the same
as when everything is counted live from the subscription rows and the payments — on the
hand-built history, on the demo and on a generated magazine. Rebuilding gives the same
totals again."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from business import figures
from business.jobs import business_rollup, close_months, rebuild
from business.models import MonthTotals, RevenueMonth, SubscriptionMonth
from business.months import Period, month_no
from magazine.clock import frozen
from magazine.db import db
from magazine.jobs import Progress
from magazine.roles import Role
from tests.business.fixture import APR, FEB, JAN, MAR, NOW, build_history


def reference_movements(period: Period) -> list[tuple]:
    """The movements as the desk counted them before the totals (one LAG pass over every
    subscriber-month up to the period's end): an independent check of both paths."""
    base = (
        sa.select(SubscriptionMonth.month_no.label("m"),
                  SubscriptionMonth.subscriber_key.label("k"),
                  sa.func.sum(SubscriptionMonth.mrr_cents).label("mrr"))
        .where(SubscriptionMonth.complimentary.is_(False),
               SubscriptionMonth.month_no <= period.last)
        .group_by(SubscriptionMonth.month_no, SubscriptionMonth.subscriber_key)
        .subquery()
    )
    window = {"partition_by": base.c.k, "order_by": base.c.m}
    rows = db.session.execute(sa.select(
        base.c.m, base.c.mrr, sa.func.lag(base.c.m).over(**window),
        sa.func.lag(base.c.mrr).over(**window))).all()
    sums: dict[int, list[int]] = {}
    for m, mrr, pm, pmrr in rows:
        s = sums.setdefault(int(m), [0] * 10)
        mrr = int(mrr)
        s[0] += 1
        s[1] += mrr
        if pm is None:
            s[2] += 1
            s[3] += mrr
        elif pm < m - 1:
            s[4] += 1
            s[5] += mrr
        else:
            pmrr = int(pmrr)
            s[6] += max(mrr - pmrr, 0)
            s[7] += max(pmrr - mrr, 0)
            s[8] += 1
            s[9] += pmrr
    result = []
    for m in period.months:
        this, before = sums.get(m, [0] * 10), sums.get(m - 1, [0] * 10)
        result.append((m, before[0], this[2], this[4], before[0] - this[8], this[0],
                       before[1], this[3], this[5], this[6], this[7], before[1] - this[9],
                       this[1]))
    return result


def as_tuples(movements: figures.Movements) -> list[tuple]:
    return [(m.month, m.active_start, m.new, m.reactivated, m.churned, m.active_end,
             m.mrr_start, m.mrr_new, m.mrr_reactivation, m.mrr_expansion, m.mrr_contraction,
             m.mrr_churn, m.mrr_end) for m in movements.months]


def revenue_tuples(revenue: figures.Revenue) -> tuple:
    def rows(found):
        return [(row.label, row.received, row.refunded, row.charged_back, row.vat)
                for row in found]

    return rows(revenue.months), rows(revenue.by_provider), rows(revenue.by_plan)


def assert_rolled_up_equals_live(periods: list[Period]) -> None:
    for period in periods:
        rolled = figures.movements(period)
        assert as_tuples(rolled) == as_tuples(figures.movements(period, live=True)), period
        assert as_tuples(rolled) == reference_movements(period), period
        assert revenue_tuples(figures.revenue(period)) == revenue_tuples(
            figures.revenue(period, live=True)), period


def assert_desk_sums_agree(today) -> None:
    """The desk takes the deferred revenue and the coming renewals from the scan of the
    figures now; on their own they are counted by queries of their own."""
    current = month_no(today)
    desk = figures.desk(Period(current - 11, current), today, "nl_BE")
    assert desk.deferred_cents == figures.deferred_revenue()
    assert [(r.issue.id, r.subscriptions, r.amount_cents, r.auto_renew) for r in desk.renewals] \
        == [(r.issue.id, r.subscriptions, r.amount_cents, r.auto_renew)
            for r in figures.upcoming_renewals(today)]


def totals_rows() -> tuple[list, list]:
    columns = [c for c in MonthTotals.__table__.c if c.name != "recorded_at"]
    money = [c for c in RevenueMonth.__table__.c if c.name != "id"]
    return (sorted(tuple(r) for r in db.session.execute(sa.select(*columns))),
            sorted((tuple(r) for r in db.session.execute(sa.select(*money))), key=repr))


def statements_of(function) -> list[str]:
    statements: list[str] = []

    def capture(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        function()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    return statements


@pytest.fixture
def closed_history(app_context):
    with frozen(NOW):
        history = build_history()
        result = business_rollup(Progress())
    assert result.closed == [JAN, FEB, MAR]
    return history


def test_closed_months_are_read_from_their_totals(closed_history):
    with frozen(NOW):
        assert figures.closed_month() == MAR
        past = Period(JAN, MAR)
        movements = statements_of(lambda: figures.movements(past))
        revenue = statements_of(lambda: figures.revenue(past))
    assert not any("business_subscription_months" in s for s in movements)
    assert not any("payments" in s for s in revenue)
    # The running month is counted live.
    with frozen(NOW):
        running = statements_of(lambda: figures.movements(Period(JAN, APR)))
    assert any("business_subscription_months" in s for s in running)


def test_rolled_up_figures_are_the_live_ones(closed_history):
    periods = [Period(JAN, APR), Period(JAN, MAR), Period(FEB, FEB), Period(MAR, APR),
               Period(JAN - 3, APR), Period(APR, APR)]
    with frozen(NOW):
        assert_rolled_up_equals_live(periods)
        assert_desk_sums_agree(NOW.date())
    # In the first hour of May, before the job closed April: April is counted live.
    with frozen(datetime(2026, 4, 30, 22, 30, tzinfo=UTC)):  # 00:30 on 1 May in Brussels
        assert figures.closed_month() == MAR
        assert_rolled_up_equals_live([Period(JAN, APR + 1), Period(APR, APR)])


def test_the_desk_page_is_the_same_with_the_totals(app, login_as):
    coordinator = login_as(Role.COORDINATOR)
    paths = ["/business/?start=2026-01&end=2026-04", "/business/?start=2026-01&end=2026-03",
             "/business/?start=2025-11&end=2026-02"]
    with app.app_context(), frozen(NOW):
        build_history()
    with frozen(NOW):
        live = [coordinator.get(path).get_data(as_text=True) for path in paths]
    with app.app_context(), frozen(NOW):
        assert business_rollup(Progress()).closed == [JAN, FEB, MAR]
        db.session.commit()
    with frozen(NOW):
        rolled = [coordinator.get(path).get_data(as_text=True) for path in paths]
    # The charts' element ids count the charts drawn by the process; the rest is the same.
    same = [re.sub(r"chart-\d+-", "chart-", page) for page in rolled]
    assert same == [re.sub(r"chart-\d+-", "chart-", page) for page in live]


def test_rebuild_and_closing_again_give_the_same_totals(closed_history):
    with frozen(NOW):
        closed = totals_rows()
        assert len(closed[0]) == 3 and closed[1]
        db.session.execute(sa.delete(MonthTotals).where(MonthTotals.month_no == FEB))
        db.session.execute(sa.update(RevenueMonth).values(amount_cents=1))
        db.session.commit()
        rebuild(JAN)
        assert totals_rows() == closed
        # A closing from a month on replaces its totals and those after it.
        db.session.execute(sa.update(MonthTotals).values(subscribers=99))
        db.session.commit()
        assert close_months(FEB) == [FEB, MAR]
        db.session.commit()
        assert totals_rows()[0][1:] == closed[0][1:]
        assert totals_rows()[0][0][1] == 99  # January was left alone


def test_the_demo_closed_its_months_and_they_agree(app_context):
    from magazine.demo import load_demo
    from subscriptions.services import today_brussels

    load_demo()
    current = month_no(today_brussels())
    assert figures.closed_month() == current - 1
    periods = [Period(current - 23, current), Period(current - 30, current - 12),
               Period(current - 5, current - 1), Period(current, current)]
    assert_rolled_up_equals_live(periods)
    assert_desk_sums_agree(today_brussels())
    closed = totals_rows()
    rebuild(closed[0][0][0])
    assert totals_rows() == closed


def test_a_generated_magazine_closed_its_months_and_they_agree(app_context):
    from bench.generate import generate
    from subscriptions.services import today_brussels

    url = db.engine.url.render_as_string(hide_password=False)
    db.session.remove()
    generate(url, 0.002, log=lambda *_: None, fresh=False)
    current = month_no(datetime.now(UTC).date())
    assert figures.closed_month() is not None
    first = db.session.scalar(sa.select(sa.func.min(MonthTotals.month_no)))
    periods = [Period(current - 11, current), Period(current - 59, current),
               Period(first, first + 6), Period(current - 30, current - 20)]
    assert_rolled_up_equals_live(periods)
    assert_desk_sums_agree(today_brussels())
    closed = totals_rows()
    close_months(first)
    db.session.commit()
    assert totals_rows() == closed
