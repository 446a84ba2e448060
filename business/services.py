"""The desk's one action: remind a buyer of an unpaid invoice."""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _

from magazine import audit
from magazine.clock import BRUSSELS
from magazine.db import db
from magazine.errors import DomainError
from magazine.mail import queue_mail
from magazine.models import User
from magazine.urls import external_url
from subscriptions.models import Invoice
from subscriptions.services import _require_coordinator, today_brussels
from subscriptions.states import OrderState


def send_invoice_reminder(invoice_id: int, *, actor: User) -> bool:
    """Mail the buyer a reminder of an unpaid invoice, at most once per invoice per day
    (the outbox key holds that, also for two clicks at once). Returns False when today's
    reminder was already queued."""
    _require_coordinator(actor)
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        raise LookupError(invoice_id)
    order = invoice.order
    if order.state != OrderState.AWAITING_PAYMENT:
        raise DomainError(_("Invoice %(number)s is not awaiting payment.",
                            number=invoice.number))
    today = today_brussels()
    key = f"invoice-reminder:{invoice.id}:{today.isoformat()}"
    mail = queue_mail(
        invoice.buyer_email, "subscriptions_order_reminder", key=key, locale=invoice.locale,
        order=order, invoice=invoice, iban=current_app.config["BANK_IBAN"],
        bic=current_app.config["BANK_BIC"], beneficiary=current_app.config["PUBLISHER_NAME"],
        expires_on=order.expires_at.astimezone(BRUSSELS).date(),
        order_url=external_url("subscriptions.order_detail", order_id=order.id),
    )
    if mail.id is not None:
        return False
    db.session.flush()
    audit.record("invoice.reminded", "invoice", invoice.id, actor=actor, number=invoice.number)
    return True
