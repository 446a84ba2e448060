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
    # A (renewal off), C, D, H and the complimentary E; not B (lapsed) nor F (unpaid).
    assert first.summary() == "business-rollup: 2026-04, 5 subscriptions counted"
    assert second.summary() == first.summary()
    rows = db.session.execute(
        sa.select(SubscriptionMonth.subscription_id, SubscriptionMonth.mrr_cents,
                  SubscriptionMonth.complimentary)
        .where(SubscriptionMonth.month_no == APR)).all()
    by_id = {row[0]: (row[1], row[2]) for row in rows}
    subs = history.subscriptions
    assert by_id == {subs["A"].id: (511, False), subs["C"].id: (511, False),
                     subs["D"].id: (1965, False), subs["H"].id: (1179, False),
                     subs["E"].id: (0, True)}
