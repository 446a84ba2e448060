"""The desk's own tables: one row per subscription per calendar month it was counted in,
and the totals of each finished month.

Subscriber movements (new, reactivated, churned, MRR movements) and cohorts are differences
between months. The subscription tables only hold the present, so the `business-rollup` job
writes the present month's rows every hour (set-based, one statement); `business rebuild`
writes past months again from the records. Once a month is over, the job sums it into
`MonthTotals` and `RevenueMonth` (one row a month; one per kind, provider and plan), so the
desk reads a few hundred rows for a period instead of every subscriber-month and payment;
the months not yet closed are counted live by the same queries (business/figures.py)."""

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
        # A subscriber's earlier months (was this one counted before?): the movements.
        sa.Index("ix_business_subscription_months_subscriber_month", "subscriber_key",
                 "month_no"),
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


class MonthTotals(db.Model):
    """The desk's subscriber figures of a finished month, summed once from its subscription
    rows when the month is closed (the `business-rollup` job's first run after it, or
    `business rebuild`), so the desk reads one row a month instead of every subscriber's.
    Paying subscribers only (complimentary subscriptions left out), as the movements count
    them: a subscriber counted this month and not the one before is new (never counted
    before) or reactivated; counted in both (stayed) with a higher (lower) MRR has expanded
    (contracted). Churn is what the month before counted minus what stayed.

    Months up to the latest closed one are read from here (a month without a row had
    nothing); later months, the running one at least, are counted live from the rows by the
    very same query (`figures.month_totals`)."""

    __tablename__ = "business_month_totals"

    month_no: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    subscribers: Mapped[int]
    mrr_cents: Mapped[int] = mapped_column(sa.BigInteger)
    new: Mapped[int]
    mrr_new: Mapped[int] = mapped_column(sa.BigInteger)
    reactivated: Mapped[int]
    mrr_reactivation: Mapped[int] = mapped_column(sa.BigInteger)
    mrr_expansion: Mapped[int] = mapped_column(sa.BigInteger)
    mrr_contraction: Mapped[int] = mapped_column(sa.BigInteger)
    stayed: Mapped[int]
    # The MRR that those who stayed had in the month before.
    mrr_stayed_before: Mapped[int] = mapped_column(sa.BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class RevenueMonth(db.Model):
    """The money of a finished month, summed once when the month is closed (with
    `MonthTotals`): per kind (received, refunded, charged back), provider and plan of the
    order, the amount and its VAT (negative for money that went back). A payment counts in
    the month it was paid, a refund or chargeback in the month it happened, and each is
    recorded when it happens, so a finished month's sums do not change afterwards."""

    __tablename__ = "business_revenue_months"

    id: Mapped[int] = mapped_column(primary_key=True)
    month_no: Mapped[int] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    provider: Mapped[str] = mapped_column(sa.String(32))
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id"))
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    vat_cents: Mapped[int] = mapped_column(sa.BigInteger)
