"""Dispatch in the coordinator's back office (/business/subscriptions/dispatch): the issues
with the state of their mailing list, start a dispatch, download the mailing file and see
the print run. And for subscribers: the issues they received (/account/issues) and the
personal download link of a digital issue (/issues/download/…)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from editorial.models import Issue
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.i18n import current_locale
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions import dispatch
from subscriptions.models import Dispatch

bp = Blueprint("dispatch_office", __name__, url_prefix="/business/subscriptions/dispatch")
public_bp = Blueprint("dispatch_public", __name__)


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _coordinators_only():
    """Dispatch is the coordinator's (and admins')."""


def _issue_or_404(issue_id: int) -> Issue:
    issue = db.session.get(Issue, issue_id)
    if issue is None:
        abort(404)
    return issue


@bp.route("/")
def index():
    issues = db.session.scalars(
        sa.select(Issue).order_by(Issue.print_date.desc(), Issue.id.desc()).limit(20)).all()
    locked = {row.issue_id: row for row in db.session.scalars(
        sa.select(Dispatch).where(Dispatch.issue_id.in_([i.id for i in issues])))}
    return render_template("subscriptions/dispatch.html", issues=issues, locked=locked,
                           form=ConfirmForm())


@bp.route("/<int:issue_id>")
def detail(issue_id: int):
    issue = _issue_or_404(issue_id)
    locked = dispatch.dispatch_of(issue)
    return render_template("subscriptions/dispatch_issue.html", issue=issue, locked=locked,
                           run=dispatch.print_run(issue) if locked else None,
                           from_stock=dispatch.single_copies_from_stock(issue) if locked
                           else [], form=ConfirmForm())


@bp.route("/<int:issue_id>/start", methods=["POST"])
def start(issue_id: int):
    issue = _issue_or_404(issue_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            result = dispatch.dispatch_issue(issue, actor=current_user._get_current_object())
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            if result.locked:
                flash(_("The mailing list of %(code)s is locked: %(n)d subscriptions, "
                        "%(copies)d printed copies.", code=result.issue_code,
                        n=result.subscriptions, copies=result.copies), "success")
            else:
                flash(_("The mailing list of %(code)s was locked before; nothing was added.",
                        code=result.issue_code), "info")
    return redirect(url_for(".detail", issue_id=issue_id))


@bp.route("/<int:issue_id>/mailing.csv")
def mailing_file(issue_id: int):
    issue = _issue_or_404(issue_id)
    if dispatch.dispatch_of(issue) is None:
        abort(404)
    # The rows are read from the database while the response streams: keep the context.
    return Response(
        stream_with_context(dispatch.mailing_file_bytes(issue)), mimetype="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="verzending-{issue.volume}-{issue.number}.csv"'})


@public_bp.route("/account/issues")
@login_required
def my_issues():
    """The issues the subscriber's subscriptions received, with a fresh download link for
    the digital ones whose PDF is there."""
    return render_template("subscriptions/account_issues.html",
                           received=dispatch.received_issues(current_user._get_current_object()),
                           link_days=current_app.config["DIGITAL_LINK_DAYS"],
                           locale=current_locale())


@public_bp.route("/issues/download/<token>")
def download(token: str):
    """A digital subscriber's personal, expiring link to the issue's PDF."""
    issue = dispatch.issue_for_download(token)
    if issue is None:
        return render_template("subscriptions/dispatch_link_expired.html"), 404
    response = Response(issue.pdf_data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{issue.pdf_filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
