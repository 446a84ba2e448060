"""The incoming transfers read from imported bank statements (camt.053, CODA), and what the
coordinator (or the import) decided about each: which order's invoice it pays, or that it
is not ours. See subscriptions/reconciliation.py for the moves."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import User, str_enum
from subscriptions.models import Order, Payment


class BankEntryState(enum.StrEnum):
    UNMATCHED = "unmatched"  # to match by hand (no, unknown or closed communication)
    MATCHED = "matched"      # counted towards an order: paid, partly paid or over-paid
    IGNORED = "ignored"      # not ours (a refund from a supplier, a gift, a mistake)


# A match recorded money on an order (a payment, a paid invoice): it is never undone here.
# An ignored entry can be taken back to match it after all.
BANK_ENTRY_TRANSITIONS: dict[BankEntryState, frozenset[BankEntryState]] = {
    BankEntryState.UNMATCHED: frozenset({BankEntryState.MATCHED, BankEntryState.IGNORED}),
    BankEntryState.MATCHED: frozenset(),
    BankEntryState.IGNORED: frozenset({BankEntryState.UNMATCHED}),
}


class UnmatchedReason(enum.StrEnum):
    NO_COMMUNICATION = "no_communication"
    UNKNOWN_COMMUNICATION = "unknown_communication"
    ORDER_CLOSED = "order_closed"    # expired or cancelled before the money came
    ORDER_PAID = "order_paid"        # paid already (twice? by card and by transfer?)


class BankEntry(db.Model):
    """One incoming transfer on our account, recorded once by the bank's reference
    (unique per account), so importing the same or an overlapping statement adds nothing.

    When matched, `applied_cents` of it counts towards the order (all of it, or the part
    that was still due) and `surplus_cents` is what was paid too much: flagged until the
    coordinator settles it (paid back by hand, or kept with the payer's agreement)."""

    __tablename__ = "bank_entries"
    __table_args__ = (
        sa.UniqueConstraint("account", "reference"),
        sa.CheckConstraint("amount_cents > 0", name="amount_positive"),
        sa.CheckConstraint("applied_cents >= 0 AND surplus_cents >= 0",
                           name="parts_not_negative"),
        sa.Index("ix_bank_entries_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(40), default="")
    reference: Mapped[str] = mapped_column(sa.String(120))
    source: Mapped[str] = mapped_column(sa.String(10))  # camt053 | coda
    statement_ref: Mapped[str] = mapped_column(sa.String(60), default="")
    position: Mapped[int] = mapped_column(default=0)  # entry (camt) or line (CODA) number
    booked_on: Mapped[date | None]
    amount_cents: Mapped[int]
    payer_name: Mapped[str] = mapped_column(sa.String(200), default="")
    payer_account: Mapped[str] = mapped_column(sa.String(40), default="")
    communication: Mapped[str] = mapped_column(sa.String(12), default="")
    text: Mapped[str] = mapped_column(sa.String(300), default="")
    state: Mapped[BankEntryState] = mapped_column(
        str_enum(BankEntryState), default=BankEntryState.UNMATCHED)
    reason: Mapped[str] = mapped_column(sa.String(30), default="")  # an UnmatchedReason
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id"))
    applied_cents: Mapped[int] = mapped_column(default=0)
    surplus_cents: Mapped[int] = mapped_column(default=0)
    surplus_settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(sa.String(300), default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    imported_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))

    order: Mapped[Order | None] = relationship()
    payment: Mapped[Payment | None] = relationship()
    resolved_by: Mapped[User | None] = relationship(foreign_keys=[resolved_by_id])

    @property
    def formatted_communication(self) -> str:
        from subscriptions.providers.bank_transfer import format_communication

        return format_communication(self.communication) if self.communication else ""

    @property
    def payer_account_display(self) -> str:
        """An IBAN in groups of four, as printed on statements (and wrapping nicely)."""
        compact = self.payer_account.replace(" ", "")
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))

    @property
    def open_surplus(self) -> bool:
        return self.surplus_cents > 0 and self.surplus_settled_at is None
