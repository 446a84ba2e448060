"""The desk's one action: remind a buyer of an unpaid invoice."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from magazine import audit
from magazine.db import db
from magazine.errors import DomainError
from magazine.mail import queue_mail
from magazine.models import AuditEvent, User
from magazine.urls import external_url
from subscriptions.models import CreditNote, Invoice
from subscriptions.services import _require_coordinator, today_brussels
from subscriptions.states import OrderState

REMINDED = "invoice.reminded"


def send_invoice_reminder(invoice_id: int, *, actor: User) -> bool:
    """Mail the buyer reminder number n of an unpaid invoice (its own mail: number, amount
    still due, due date, bank details with the structured communication, a pay link), at
    most once per invoice per day. The outbox key is the invoice and the reminder's number,
    so two clicks at once (both counting the same earlier reminders) queue one mail.
    Returns False when a reminder was already sent today."""
    _require_coordinator(actor)
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        raise LookupError(invoice_id)
    order = invoice.order
    if order.state != OrderState.AWAITING_PAYMENT:
        raise DomainError(_("Invoice %(number)s is not awaiting payment.",
                            number=invoice.number))
    today = today_brussels()
    earlier = db.session.execute(
        sa.select(AuditEvent.details).where(AuditEvent.object_type == "invoice",
                                            AuditEvent.object_id == str(invoice.id),
                                            AuditEvent.action == REMINDED)
    ).scalars().all()
    if any(details.get("on") == today.isoformat() for details in earlier):
        return False
    number = len(earlier) + 1
    credited = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(CreditNote.total_cents), 0))
        .where(CreditNote.invoice_id == invoice.id)) or 0
    mail = queue_mail(
        invoice.buyer_email, "business_invoice_reminder",
        key=f"invoice-reminder:{invoice.id}:{number}", locale=invoice.locale,
        invoice=invoice, order=order, reminder_number=number,
        outstanding_cents=invoice.total_cents - credited,
        iban=current_app.config["BANK_IBAN"], bic=current_app.config["BANK_BIC"],
        beneficiary=current_app.config["PUBLISHER_NAME"],
        pay_url=external_url("subscriptions.order_detail", order_id=order.id),
    )
    if mail.id is not None:
        return False
    db.session.flush()
    audit.record(REMINDED, "invoice", invoice.id, actor=actor, number=invoice.number,
                 reminder=number, on=today.isoformat())
    return True
