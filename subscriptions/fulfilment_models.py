"""Tables of what happens after an order is paid, added with the scheduled jobs: where the
copies of a single-copy order go (and their line in an issue's mailing file), and a renewal
paid after its subscription lapsed, waiting for the coordinator."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import User, str_enum
from subscriptions.models import Order, Refund, RenewalOrder, Subscription


class _PostalAddress:
    """The columns of one postal address, as the mailing file wants them (the street with
    its number and box; split when the file is written)."""

    name: Mapped[str] = mapped_column(sa.String(200))
    organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    street: Mapped[str] = mapped_column(sa.String(200))
    postcode: Mapped[str] = mapped_column(sa.String(12))
    city: Mapped[str] = mapped_column(sa.String(100))
    country: Mapped[str] = mapped_column(sa.String(2))


class OrderDelivery(_PostalAddress, db.Model):
    """Where the copies of a single-copy order (a back issue, a single copy) go: the
    delivery address as given at ordering, one row per order."""

    __tablename__ = "order_deliveries"

    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"),
                                          primary_key=True)

    order: Mapped[Order] = relationship()


class DispatchCopy(_PostalAddress, db.Model):
    """A paid single-copy order of an issue on that issue's mailing file: copied in the
    transaction that locks the list (unique per order: in one file, once)."""

    __tablename__ = "dispatch_copies"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(sa.ForeignKey("issues.id"), index=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"),
                                          unique=True)
    copies: Mapped[int]


class LatePaymentState(enum.StrEnum):
    WAITING = "waiting"      # paid after the subscription lapsed: the coordinator decides
    RESTARTED = "restarted"  # a new subscription from the next issue, paid by this order
    REFUNDED = "refunded"    # paid back through the provider (with a credit note)


LATE_PAYMENT_TRANSITIONS: dict[LatePaymentState, frozenset[LatePaymentState]] = {
    LatePaymentState.WAITING: frozenset({LatePaymentState.RESTARTED,
                                         LatePaymentState.REFUNDED}),
    LatePaymentState.RESTARTED: frozenset(),
    LatePaymentState.REFUNDED: frozenset(),
}


class LateRenewalPayment(db.Model):
    """A renewal order paid when its subscription could no longer be renewed (it lapsed or
    ended meanwhile): one row per renewal order, made when the payment is applied."""

    __tablename__ = "late_renewal_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    renewal_order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("renewal_orders.id", ondelete="CASCADE"), unique=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    state: Mapped[LatePaymentState] = mapped_column(str_enum(LatePaymentState),
                                                    default=LatePaymentState.WAITING)
    new_subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="SET NULL"))
    refund_id: Mapped[int | None] = mapped_column(sa.ForeignKey("refunds.id"))
    settled_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    renewal: Mapped[RenewalOrder] = relationship()
    subscription: Mapped[Subscription] = relationship(foreign_keys=[subscription_id])
    new_subscription: Mapped[Subscription | None] = relationship(
        foreign_keys=[new_subscription_id])
    refund: Mapped[Refund | None] = relationship()
    settled_by: Mapped[User | None] = relationship()
