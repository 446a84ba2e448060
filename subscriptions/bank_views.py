"""The coordinator's bank statement pages, under /business/subscriptions/: import a
camt.053 or CODA statement, and match by hand the transfers the import could not."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from magazine.db import db
from magazine.errors import DomainError
from magazine.i18n import money
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions import reconciliation
from subscriptions.bank_models import BankEntry, BankEntryState
from subscriptions.forms import BankEntryLinkForm, BankEntryNoteForm, StatementForm
from subscriptions.models import Order
from subscriptions.views import show_error

bp = Blueprint("bank_office", __name__, url_prefix="/business/subscriptions")


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _coordinators_only():
    """Every page here is for the business coordinator (and admins)."""


def _actor():
    return current_user._get_current_object()


@bp.route("/bank-statement", methods=["GET", "POST"])
def statement():
    """Upload a statement; the result (paid, partly paid, over-paid, to match) below."""
    form = StatementForm()
    result = None
    problems, problem_count = [], 0
    if form.validate_on_submit():
        try:
            result = reconciliation.import_bank_statement(form.statement.data.read(),
                                                          actor=_actor())
        except reconciliation.BadStatementEntries as error:
            db.session.rollback()
            show_error(form, error)
            problems, problem_count = error.problems, error.count
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
    return render_template("subscriptions/office/bank_statement.html", form=form,
                           result=result, problems=problems, problem_count=problem_count,
                           waiting=len(reconciliation.unmatched_entries())
                           ), 400 if form.errors else 200


@bp.route("/bank-entries")
def entries():
    """The transfers waiting to be matched, surpluses to settle, partly paid orders."""
    return render_template(
        "subscriptions/office/bank_entries.html",
        unmatched=reconciliation.unmatched_entries(),
        surpluses=reconciliation.open_surpluses(),
        partly=reconciliation.partly_paid_orders(),
        ignored=reconciliation.ignored_entries(),
    )


@bp.route("/bank-entries/<int:entry_id>")
def entry(entry_id: int):
    """One transfer: search the open invoices by name or amount and link it, or ignore it."""
    bank_entry = db.get_or_404(BankEntry, entry_id)
    query = request.args.get("q", "").strip()[:100]
    candidates = (reconciliation.search_open_invoices(query) if query
                  else reconciliation.suggestions_for(bank_entry))
    return render_template(
        "subscriptions/office/bank_entry.html", entry=bank_entry, query=query,
        candidates=candidates, link_form=BankEntryLinkForm(), note_form=BankEntryNoteForm(),
        BankEntryState=BankEntryState,
        linked_due=reconciliation.amount_due(bank_entry.order) if bank_entry.order else 0,
    )


def _back(bank_entry: BankEntry):
    return redirect(url_for(".entry", entry_id=bank_entry.id))


@bp.route("/bank-entries/<int:entry_id>/link", methods=["POST"])
def link(entry_id: int):
    bank_entry = db.get_or_404(BankEntry, entry_id)
    form = BankEntryLinkForm()
    order = db.session.get(Order, form.order_id.data) if form.validate_on_submit() else None
    if order is None:
        flash(_("Choose one of the open invoices."), "error")
        return _back(bank_entry)
    try:
        outcome = reconciliation.link_entry(bank_entry, order, actor=_actor())
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _back(bank_entry)
    db.session.commit()
    if outcome.kind == "partly_paid":
        flash(_("Recorded as a partial payment of order %(ref)s: %(due)s is still due.",
                ref=order.reference, due=money(outcome.still_due)), "success")
    elif outcome.kind == "overpaid":
        flash(_("Order %(ref)s is paid; %(surplus)s too much was paid: settle it below.",
                ref=order.reference, surplus=money(outcome.surplus)), "success")
    else:
        flash(_("Order %(ref)s is paid.", ref=order.reference), "success")
    return _back(bank_entry)


@bp.route("/bank-entries/<int:entry_id>/ignore", methods=["POST"])
def ignore(entry_id: int):
    bank_entry = db.get_or_404(BankEntry, entry_id)
    form = BankEntryNoteForm()
    if form.validate_on_submit():
        try:
            reconciliation.ignore_entry(bank_entry, actor=_actor(), note=form.note.data or "")
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
            return _back(bank_entry)
        db.session.commit()
        flash(_("The transfer is off the list (not ours)."), "success")
        return redirect(url_for(".entries"))
    flash(_("The note is too long."), "error")
    return _back(bank_entry)


@bp.route("/bank-entries/<int:entry_id>/restore", methods=["POST"])
def restore(entry_id: int):
    bank_entry = db.get_or_404(BankEntry, entry_id)
    if BankEntryNoteForm().validate_on_submit():
        try:
            reconciliation.restore_entry(bank_entry, actor=_actor())
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("The transfer is back on the list to match."), "success")
    return _back(bank_entry)


@bp.route("/bank-entries/<int:entry_id>/surplus", methods=["POST"])
def settle_surplus(entry_id: int):
    bank_entry = db.get_or_404(BankEntry, entry_id)
    form = BankEntryNoteForm()
    if form.validate_on_submit():
        try:
            reconciliation.settle_surplus(bank_entry, actor=_actor(),
                                          note=form.note.data or "")
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("The surplus is settled."), "success")
    return _back(bank_entry)
