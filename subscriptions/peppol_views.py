"""Peppol e-invoices: the UBL download for the organisation subscriber (their own invoices
and credit notes, on /account) and the coordinator's page under
/business/subscriptions/peppol/ (every organisation document, its e-invoice and its
delivery through the access point)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from magazine.db import db
from magazine.forms import ConfirmForm
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions import peppol, peppol_sender, services
from subscriptions.models import CreditNote, Invoice
from subscriptions.peppol_models import DeliveryStatus, PeppolDelivery

account_bp = Blueprint("peppol", __name__)
office_bp = Blueprint("peppol_office", __name__, url_prefix="/business/subscriptions/peppol")


def _xml(doc: Invoice | CreditNote | None) -> Response:
    """The document's e-invoice as a download (404 for a document without one: a buyer
    without a Belgian VAT number)."""
    if doc is None or not peppol.is_peppol_document(doc):
        abort(404)
    return Response(peppol.build_ubl(doc), mimetype="application/xml", headers={
        "Content-Disposition": f'attachment; filename="{peppol.file_name(doc)}"'})


@account_bp.app_template_test("peppol_document")
def _is_peppol_document(doc) -> bool:
    """`{% if invoice is peppol_document %}`: the document has an e-invoice."""
    return peppol.is_peppol_document(doc)


# ---------------------------------------------------------------- the subscriber

@account_bp.route("/account/invoices/<int:invoice_id>.xml")
@login_required
def invoice_xml(invoice_id: int):
    """The e-invoice of one of the person's own invoices (someone else's: 404)."""
    return _xml(services.own_invoice(current_user._get_current_object(), invoice_id))


@account_bp.route("/account/credit-notes/<int:note_id>.xml")
@login_required
def credit_note_xml(note_id: int):
    return _xml(services.own_credit_note(current_user._get_current_object(), note_id))


# ---------------------------------------------------------------- the coordinator

@office_bp.before_request
@roles_required(BUSINESS_ROLES)
def _coordinators_only():
    """Every page here is for the business coordinator (and admins)."""


@office_bp.route("/")
def index():
    documents = peppol_sender.organisation_documents()
    deliveries = peppol_sender.deliveries_by_document(documents)
    rows = []
    for doc in documents:
        kind = peppol.document_kind(doc)
        rows.append((doc, kind, deliveries.get((kind, doc.id))))
    return render_template(
        "subscriptions/office/peppol.html", rows=rows,
        configured=peppol_sender.is_configured(), confirm_form=ConfirmForm(),
        DeliveryStatus=DeliveryStatus,
    )


@office_bp.route("/invoices/<int:invoice_id>.xml", endpoint="invoice_xml")
def office_invoice_xml(invoice_id: int):
    return _xml(db.session.get(Invoice, invoice_id))


@office_bp.route("/credit-notes/<int:note_id>.xml", endpoint="credit_note_xml")
def office_credit_note_xml(note_id: int):
    return _xml(db.session.get(CreditNote, note_id))


def _require_access_point() -> None:
    if not peppol_sender.is_configured():
        abort(404)


def _queue(doc: Invoice | CreditNote | None):
    _require_access_point()
    if doc is None or not peppol.is_peppol_document(doc):
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    peppol_sender.queue_delivery(doc, actor=current_user._get_current_object())
    db.session.commit()
    flash(_("%(number)s is queued for Peppol.", number=doc.number), "success")
    return redirect(url_for(".index"))


@office_bp.route("/invoices/<int:invoice_id>/queue", methods=["POST"])
def queue_invoice(invoice_id: int):
    return _queue(db.session.get(Invoice, invoice_id))


@office_bp.route("/credit-notes/<int:note_id>/queue", methods=["POST"])
def queue_credit_note(note_id: int):
    return _queue(db.session.get(CreditNote, note_id))


@office_bp.route("/deliveries/<int:delivery_id>/retry", methods=["POST"])
def retry(delivery_id: int):
    _require_access_point()
    delivery = db.get_or_404(PeppolDelivery, delivery_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if peppol_sender.retry_delivery(delivery, actor=current_user._get_current_object()):
        flash(_("%(number)s will be sent again.", number=delivery.document.number), "success")
    db.session.commit()
    return redirect(url_for(".index"))


@office_bp.route("/send", methods=["POST"])
def send_now():
    """Send what is due now instead of waiting for the `peppol-send` job (a few at most:
    the rest follows with the job)."""
    _require_access_point()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    result = peppol_sender.send_pending(limit=20)
    flash(_("Peppol: %(delivered)d delivered, %(retrying)d to try again, %(failed)d failed.",
            delivered=result.delivered, retrying=result.retrying, failed=result.failed),
          "info")
    return redirect(url_for(".index"))
