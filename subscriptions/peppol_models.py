"""What became of each e-invoice sent through the Peppol access point (one row per invoice
or credit note queued for Peppol; see subscriptions.peppol_sender)."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import str_enum
from subscriptions.models import CreditNote, Invoice


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"        # to be sent at `next_attempt_at`
    SENDING = "sending"        # claimed by a process that is talking to the access point
    DELIVERED = "delivered"    # the access point accepted it (`provider_message_id`)
    FAILED = "failed"          # refused for good, or out of attempts: the coordinator decides


class PeppolDelivery(db.Model):
    """One document on its way to the buyer's Peppol access point. The idempotency key is
    the document's own (`invoice-2026-000123`), sent with every attempt, so an attempt that
    reached the access point but whose answer was lost is recognised there, not sent twice."""

    __tablename__ = "peppol_deliveries"
    __table_args__ = (
        sa.CheckConstraint("(invoice_id IS NULL) <> (credit_note_id IS NULL)",
                           name="one_document"),
        sa.Index("ix_peppol_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int | None] = mapped_column(sa.ForeignKey("invoices.id"), unique=True)
    credit_note_id: Mapped[int | None] = mapped_column(sa.ForeignKey("credit_notes.id"),
                                                       unique=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus),
                                                   default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(160))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    invoice: Mapped[Invoice | None] = relationship()
    credit_note: Mapped[CreditNote | None] = relationship()

    @property
    def document(self) -> Invoice | CreditNote:
        return self.invoice if self.invoice is not None else self.credit_note
