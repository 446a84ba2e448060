"""The business coordinator's desk: figures, charts, CSV downloads and the reminder."""

from __future__ import annotations

import csv
import io
import sys

import click
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from business import exports, figures, tables
from business import jobs as _jobs  # registers the roll-up job; the rebuild below
from business import models as _models  # noqa: F401  (the table, for Alembic)
from business.charts import Series, bar_chart, heat_class
from business.forms import PeriodForm, ReminderForm
from business.months import month_label, parse_month
from business.services import send_invoice_reminder
from magazine.db import db
from magazine.errors import DomainError
from magazine.jobs import Progress
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions.services import today_brussels

bp = Blueprint("business", __name__, url_prefix="/business")


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _business_roles_only():
    """Every page here is for the coordinator (and admins)."""


def _period_and_form():
    form = PeriodForm(request.args)
    form.validate()
    return form.period(today_brussels()), form


def _charts(desk: figures.Desk) -> dict:
    labels = [month_label(m.month) for m in desk.movements.months]
    euros = lambda cents: f"€ {cents / 100:,.0f}".replace(",", ".")  # noqa: E731
    moves = desk.movements.months
    revenue = desk.revenue.months
    return {
        "subscribers": bar_chart(
            _("Paying subscribers and MRR at the end of each month"),
            _("Bars: paying subscribers counted at the end of each month of the period "
              "(left axis). Line: the MRR at the end of each month (right axis, in euros)."),
            labels, [Series(_("subscribers (left)"), "s-total", [m.active_end for m in moves])],
            line=Series(_("MRR (right)"), "s-mrr", [m.mrr_end for m in moves]),
            format_value=lambda v: f"{v:.0f}", line_format=euros),
        "mrr": bar_chart(
            _("MRR movements per month"),
            _("Bars above zero: MRR won (new, reactivation, expansion); below zero: MRR lost "
              "(contraction, churn); the line is the net movement."),
            labels, [
                Series(_("new"), "s-new", [m.mrr_new for m in moves]),
                Series(_("reactivation"), "s-back", [m.mrr_reactivation for m in moves]),
                Series(_("expansion"), "s-up", [m.mrr_expansion for m in moves]),
                Series(_("contraction"), "s-down", [-m.mrr_contraction for m in moves]),
                Series(_("churn"), "s-churn", [-m.mrr_churn for m in moves]),
            ], line=Series(_("net movement"), "s-line", [m.mrr_net for m in moves]),
            format_value=euros),
        "revenue": bar_chart(
            _("Revenue per month"),
            _("Bars: net revenue and VAT per month, after the refunds and chargebacks of "
              "that month."),
            [month_label(r.label) for r in revenue], [
                Series(_("net"), "s-net", [r.net for r in revenue]),
                Series(_("VAT"), "s-vat", [r.vat for r in revenue]),
            ], format_value=euros),
    }


def _unpaid_page() -> int:
    return request.args.get("unpaid_page", 1, type=int) or 1


@bp.route("/")
def index():
    period, form = _period_and_form()
    desk = figures.desk(period, today_brussels(), str(get_locale()),
                        unpaid_page=_unpaid_page())
    return render_template(
        "business/index.html", desk=desk, form=form, period=period,
        tables=exports.desk_tables(desk), charts=_charts(desk), heat_class=heat_class,
        tables_defs=tables.DEFINITIONS, reminder_form=ReminderForm(),
        is_number=tables.is_number, share_text=tables.share_text,
        unpaid_ids={invoice.number: invoice.id for invoice in desk.unpaid.invoices},
        unpaid_page_url=lambda page: url_for(
            "business.index", **{**request.args.to_dict(), "unpaid_page": page}) + "#unpaid",
    )


def _csv_response(rows, filename: str) -> Response:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # spreadsheets read the file as UTF-8
    writer = csv.writer(buffer, delimiter=";")
    for row in rows:
        writer.writerow(row)
    return Response(buffer.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/export/<name>.csv")
def table_csv(name: str):
    period, _form = _period_and_form()
    # The CSV of the unpaid invoices holds them all, not one page.
    desk = figures.desk(period, today_brussels(), str(get_locale()),
                        unpaid_per_page=None if name == "unpaid" else figures.UNPAID_PAGE_SIZE)
    table = exports.desk_tables(desk).get(name)
    if table is None:
        abort(404)
    return _csv_response(exports.table_rows(table),
                         f"{name}-{month_label(period.first)}-{month_label(period.last)}.csv")


@bp.route("/export/accounting.csv")
def accounting_csv():
    period, _form = _period_and_form()
    return _csv_response(
        exports.accounting_rows(period),
        f"facturen-creditnotas-{month_label(period.first)}-{month_label(period.last)}.csv")


@bp.route("/invoices/<int:invoice_id>/remind", methods=["POST"])
def invoice_remind(invoice_id: int):
    form = ReminderForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        sent = send_invoice_reminder(invoice_id, actor=current_user)
        db.session.commit()
    except LookupError:
        abort(404)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    except IntegrityError:
        # Two clicks at once: the other one queued this reminder (same outbox key).
        db.session.rollback()
        flash(_("A reminder for this invoice was sent today already."), "info")
    else:
        flash(_("The reminder is on its way.") if sent
              else _("A reminder for this invoice was sent today already."),
              "success" if sent else "info")
    return redirect(url_for("business.index", **request.args) + "#unpaid")


@bp.cli.command("rebuild")
@click.option("--from", "start", required=True, metavar="YYYY-MM",
              help="The first month to rebuild; every month after it up to now follows.")
def rebuild_command(start: str) -> None:
    """Rebuild the monthly business figures from a month on, from the records (state
    changes in the audit log, renewal orders, dispatches). Safe to run again."""
    first = parse_month(start)
    if first is None:
        raise click.BadParameter("write the month as YYYY-MM, e.g. 2025-01", param_hint="--from")
    bar = None

    def begin(total: int) -> None:
        nonlocal bar
        bar = click.progressbar(length=total, label="business rebuild", file=sys.stderr)
        bar.__enter__()

    def advance(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        done = _jobs.rebuild(first, Progress(start=begin, advance=advance))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for number, rows in done:
        click.echo(f"{month_label(number)}: {rows} subscriptions counted")
