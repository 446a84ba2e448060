"""CSV downloads: every table of the desk, and the accountant's list of invoices and credit
notes with their VAT for a period."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from flask_babel import gettext as _

from business import figures, tables
from business.months import Period
from magazine.db import db
from subscriptions.models import CreditNote, Invoice, Order, OrderLine, Payment
from subscriptions.states import PaymentState


def desk_tables(desk: figures.Desk) -> dict[str, tables.Table]:
    """The desk's tables by name (the name is the CSV's address)."""
    result = [
        *tables.now_tables(desk.now, desk.plan_names),
        tables.print_run_table(desk.print_run),
        tables.movements_table(desk.movements),
        *tables.revenue_tables(desk.revenue, desk.plan_names),
        tables.issues_table(desk.issues, desk.renewal_rates),
        *tables.unpaid_tables(desk.unpaid),
        tables.renewals_table(desk.renewals),
        tables.cohort_table(desk.cohorts),
    ]
    return {table.name: table for table in result}


def table_rows(table: tables.Table) -> Iterator[list[str]]:
    yield list(table.columns)
    for row in table.rows:
        yield [tables.csv_value(value) for value in row]
    if table.footer:
        yield [tables.csv_value(value) for value in table.footer]


ACCOUNTING_BATCH = 1000


def accounting_rows(period: Period) -> Iterator[list[str]]:
    """Invoices and credit notes issued in the period, in number order, with net, VAT and
    gross (a credit note's amounts negative), the VAT rate of the order's lines, the order,
    and how and when it was paid. Read in batches: the file may hold a year of documents."""
    yield [_("type"), _("number"), _("date"), _("buyer"), _("organisation"), _("VAT number"),
           _("VAT rate"), _("net"), _("VAT"), _("gross"), _("credits invoice"), _("order"),
           _("paid through"), _("paid on")]
    rate = (
        sa.select(OrderLine.order_id, sa.func.max(OrderLine.vat_rate_bp).label("bp"))
        .group_by(OrderLine.order_id).subquery("rate")
    )
    paid = (
        sa.select(Payment.order_id, sa.func.min(Payment.provider).label("provider"),
                  sa.func.min(Payment.received_on).label("received_on"))
        .where(Payment.state == PaymentState.PAID)
        .group_by(Payment.order_id).subquery("paid")
    )
    money = tables.csv_value

    def percent(bp) -> str:
        return "" if bp is None else f"{bp / 100:g}%".replace(".", ",")

    invoices = (
        sa.select(Invoice.number, Invoice.issue_date, Invoice.buyer_name,
                  Invoice.buyer_organisation, Invoice.buyer_vat_number, rate.c.bp,
                  Invoice.total_cents, Invoice.vat_cents, Invoice.order_id,
                  paid.c.provider, paid.c.received_on)
        .outerjoin(rate, rate.c.order_id == Invoice.order_id)
        .outerjoin(paid, paid.c.order_id == Invoice.order_id)
        .where(Invoice.issue_date.between(period.first_day, period.last_day))
        .order_by(Invoice.year, Invoice.sequence)
        .execution_options(yield_per=ACCOUNTING_BATCH)
    )
    for number, day, name, organisation, vat_no, bp, total, vat, order_id, provider, on in (
            db.session.execute(invoices)):
        yield [_("invoice"), number, day.isoformat(), name, organisation, vat_no, percent(bp),
               money(tables.Money(total - vat)), money(tables.Money(vat)),
               money(tables.Money(total)), "", f"B{order_id:06d}", provider or "",
               on.isoformat() if on else ""]
    notes = (
        sa.select(CreditNote.number, CreditNote.issue_date, CreditNote.buyer_name,
                  CreditNote.buyer_organisation, CreditNote.buyer_vat_number, rate.c.bp,
                  CreditNote.total_cents, CreditNote.vat_cents, Invoice.number,
                  Invoice.order_id)
        .join(Invoice, Invoice.id == CreditNote.invoice_id)
        .join(Order, Order.id == Invoice.order_id)
        .outerjoin(rate, rate.c.order_id == Invoice.order_id)
        .where(CreditNote.issue_date.between(period.first_day, period.last_day))
        .order_by(CreditNote.year, CreditNote.sequence)
        .execution_options(yield_per=ACCOUNTING_BATCH)
    )
    for number, day, name, organisation, vat_no, bp, total, vat, invoice, order_id in (
            db.session.execute(notes)):
        yield [_("credit note"), number, day.isoformat(), name, organisation, vat_no,
               percent(bp), money(tables.Money(-(total - vat))), money(tables.Money(-vat)),
               money(tables.Money(-total)), invoice, f"B{order_id:06d}", "", ""]
