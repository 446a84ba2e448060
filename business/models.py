"""The desk's own table: one row per subscription per calendar month it was counted in.

Subscriber movements (new, reactivated, churned, MRR movements) and cohorts are differences
between months. The subscription tables only hold the present, so the `business-rollup` job
writes the present month's rows every day (set-based, one statement) and the figures compare
months with GROUP BY queries. History before the job's first run cannot be rebuilt from the
present; the demo writes two years of it from its own generated history."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db


class SubscriptionMonth(db.Model):
    """A subscription counted at the end of a month (or, for the running month, at the last
    roll-up): its subscriber, plan and monthly recurring revenue then."""

    __tablename__ = "business_subscription_months"
    __table_args__ = (
        sa.UniqueConstraint("month_no", "subscription_id"),
        sa.Index("ix_business_subscription_months_month_subscriber", "month_no",
                 "subscriber_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # year × 12 + month − 1: consecutive months are consecutive numbers on every database.
    month_no: Mapped[int]
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    # The subscriber's user id; minus the subscription id when the account was deleted, so
    # an anonymous subscription still counts as one subscriber of its own.
    subscriber_key: Mapped[int]
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("plans.id"))
    state: Mapped[str] = mapped_column(sa.String(20))
    complimentary: Mapped[bool] = mapped_column(default=False)
    mrr_cents: Mapped[int] = mapped_column(default=0)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
