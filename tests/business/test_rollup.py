"""The monthly roll-up job: the running month's rows, replaced on every run."""

from __future__ import annotations

import sqlalchemy as sa

from business.jobs import business_rollup
from business.models import SubscriptionMonth
from magazine.clock import frozen
from magazine.db import db
from magazine.jobs import Progress
from tests.business.fixture import APR, NOW, build_history


def test_rollup_counts_the_running_subscriptions_and_can_run_twice(app_context):
    with frozen(NOW):
        history = build_history()
        first = business_rollup(Progress())
        second = business_rollup(Progress())
    # A (renewal off), C, D, H and the complimentary E; not B (lapsed) nor F (unpaid). The
    # first run also closes the finished months (their totals); the second has none left.
    assert first.summary() == ("business-rollup: 2026-04, 5 subscriptions counted; "
                               "closed 2026-01 – 2026-03")
    assert second.summary() == "business-rollup: 2026-04, 5 subscriptions counted"
    rows = db.session.execute(
        sa.select(SubscriptionMonth.subscription_id, SubscriptionMonth.mrr_cents,
                  SubscriptionMonth.complimentary)
        .where(SubscriptionMonth.month_no == APR)).all()
    by_id = {row[0]: (row[1], row[2]) for row in rows}
    subs = history.subscriptions
    assert by_id == {subs["A"].id: (511, False), subs["C"].id: (511, False),
                     subs["D"].id: (1965, False), subs["H"].id: (1179, False),
                     subs["E"].id: (0, True)}


def _rows():
    return sorted(
        tuple(row) for row in db.session.execute(
            sa.select(SubscriptionMonth.month_no, SubscriptionMonth.subscription_id,
                      SubscriptionMonth.subscriber_key, SubscriptionMonth.plan_id,
                      SubscriptionMonth.state, SubscriptionMonth.complimentary,
                      SubscriptionMonth.mrr_cents)))


def test_rebuild_makes_the_past_months_again_from_the_records(app_context):
    """The fixture's months were counted at the end of each month as it happened; a rebuild
    after the fact, from the audit log, the renewal orders and the dispatches, gives the
    same rows — also when run twice, and over rows that were wrong."""
    from business.jobs import rebuild
    from tests.business.fixture import FEB, JAN, MAR

    with frozen(NOW):
        history = build_history()
        counted = _rows()
        subs = history.subscriptions
        # B lapsed in March; D's 5-copy renewal from March; H's 3-copy one from April.
        by_month = {}
        for month, subscription_id, *_rest, mrr in counted:
            by_month.setdefault(month, {})[subscription_id] = mrr
        assert by_month[FEB] == {subs["A"].id: 511, subs["B"].id: 511, subs["D"].id: 1179,
                                 subs["H"].id: 1965, subs["E"].id: 0}
        assert by_month[MAR] == {subs["A"].id: 511, subs["D"].id: 1965, subs["H"].id: 1965,
                                 subs["E"].id: 0}
        # Wrong rows (a month counted twice, a month lost) are replaced.
        db.session.execute(sa.delete(SubscriptionMonth).where(SubscriptionMonth.month_no == FEB))
        db.session.execute(sa.update(SubscriptionMonth).values(mrr_cents=1))
        db.session.commit()
        done = rebuild(JAN)
        assert done == [(JAN, 3), (FEB, 5), (MAR, 4), (APR, 5)]
        assert _rows() == counted
        rebuild(JAN)
        assert _rows() == counted


def test_rebuild_command(app, runner):
    from tests.business.fixture import JAN

    with app.app_context(), frozen(NOW):
        build_history()
        db.session.execute(sa.delete(SubscriptionMonth))
        db.session.commit()
    with frozen(NOW):
        result = runner.invoke(args=["business", "rebuild", "--from", "2026-01"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-4:] == [
        "2026-01: 3 subscriptions counted", "2026-02: 5 subscriptions counted",
        "2026-03: 4 subscriptions counted", "2026-04: 5 subscriptions counted"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.min(SubscriptionMonth.month_no))) == JAN
    wrong = runner.invoke(args=["business", "rebuild", "--from", "januari"])
    assert wrong.exit_code != 0 and "YYYY-MM" in wrong.output
