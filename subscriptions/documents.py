"""Invoices and credit notes as PDF (fpdf2: pure Python, no system packages), in the
buyer's language, with the publisher's details from the settings."""

from __future__ import annotations

import io
import logging
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from fpdf import FPDF

from subscriptions.models import CreditNote, Invoice
from subscriptions.providers.bank_transfer import epc_qr, format_communication
from subscriptions.states import OrderState

# DejaVu Sans, shipped with the code (free licence in fonts/): the PDF core fonts know only
# Latin-1, and a buyer's name (Ayşe, Łukasz) and the euro sign must print as written.
FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
# fpdf2 subsets the font with fontTools, which logs every step at INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def _babel_locale(locale: str) -> str:
    return "en" if locale.startswith("en") else "nl_BE"


def _money(cents: int, locale: str) -> str:
    text = format_currency(Decimal(cents).scaleb(-2), "EUR", locale=_babel_locale(locale))
    return text.replace("\xa0", " ")


def _percent(rate_bp: int, locale: str) -> str:
    return format_decimal(Decimal(rate_bp).scaleb(-2), locale=_babel_locale(locale)) + "%"


class _Document(FPDF):
    def __init__(self, locale: str) -> None:
        super().__init__(format="A4")
        self.locale = locale
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_auto_page_break(auto=True, margin=20)
        self.set_margins(20, 20, 20)
        self.add_page()

    def line_text(self, text: str, *, size: int = 10, bold: bool = False, height: float = 5,
                  align: str = "L") -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.multi_cell(0, height, text, align=align, new_x="LMARGIN", new_y="NEXT")


def _header(pdf: _Document, title: str, number: str, issue_date, locale: str) -> None:
    config = current_app.config
    pdf.line_text(config["PUBLISHER_NAME"], size=14, bold=True, height=7)
    pdf.line_text(config["PUBLISHER_ADDRESS"])
    pdf.line_text(_("VAT number: %(vat)s", vat=config["PUBLISHER_VAT"]))
    pdf.line_text(f"IBAN {config['BANK_IBAN']}  BIC {config['BANK_BIC']}")
    pdf.line_text(config["PUBLISHER_EMAIL"])
    pdf.ln(6)
    pdf.line_text(f"{title} {number}", size=16, bold=True, height=8)
    pdf.line_text(_("Date: %(date)s", date=format_date(issue_date, "long",
                                                        locale=_babel_locale(locale))))


def _buyer(pdf: _Document, doc: Invoice | CreditNote) -> None:
    pdf.ln(3)
    pdf.line_text(_("Bill to"), bold=True)
    for part in (doc.buyer_organisation, doc.buyer_name, *doc.buyer_address.splitlines()):
        if part:
            pdf.line_text(part)
    if doc.buyer_vat_number:
        pdf.line_text(_("VAT number: %(vat)s", vat=doc.buyer_vat_number))
    pdf.ln(4)


def _payment_qr(pdf: _Document, order) -> None:
    """The EPC QR code of the transfer, for banking apps (as on the order page)."""
    config = current_app.config
    qr = epc_qr(name=config["PUBLISHER_NAME"], iban=config["BANK_IBAN"], bic=config["BANK_BIC"],
                amount_cents=order.total_cents, communication=order.structured_communication)
    image = io.BytesIO()
    qr.save(image, kind="png", scale=6, border=2)
    image.seek(0)
    pdf.ln(2)
    pdf.image(image, w=32, h=32)
    pdf.line_text(_("Scan with your banking app"), size=8)


def _lines_table(pdf: _Document, lines, locale: str, sign: int = 1) -> dict[int, list[int]]:
    """The order lines as a table (a long description wraps); returns net and VAT per
    rate. `sign` -1 shows them credited."""
    groups: dict[int, list[int]] = {}
    pdf.set_font(FONT, "", 9)
    with pdf.table(col_widths=(78, 16, 26, 14, 36), line_height=5,
                   text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
                   borders_layout="HORIZONTAL_LINES", first_row_as_headings=True) as table:
        heading = table.row()
        for text in (_("Description"), _("Qty"), _("Unit price"), _("VAT"), _("Amount")):
            heading.cell(text)
        for line in lines:
            row = table.row()
            for text in (line.description, str(line.quantity),
                         _money(line.unit_cents, locale), _percent(line.vat_rate_bp, locale),
                         _money(sign * line.gross_cents, locale)):
                row.cell(text)
            group = groups.setdefault(line.vat_rate_bp, [0, 0])
            group[0] += sign * line.net_cents
            group[1] += sign * line.vat_cents
    return groups


def invoice_pdf(invoice: Invoice) -> bytes:
    locale = invoice.locale
    order = invoice.order
    with force_locale(locale):
        pdf = _Document(locale)
        _header(pdf, _("Invoice"), invoice.number, invoice.issue_date, locale)
        pdf.line_text(_("Order: %(ref)s", ref=order.reference))
        if order.billing_po_reference:
            pdf.line_text(_("Your reference: %(ref)s", ref=order.billing_po_reference))
        _buyer(pdf, invoice)
        groups = _lines_table(pdf, order.lines, locale)
        pdf.ln(3)
        for rate, (net, vat) in sorted(groups.items()):
            pdf.line_text(_("Taxable amount at %(rate)s: %(net)s, VAT %(vat)s",
                            rate=_percent(rate, locale), net=_money(net, locale),
                            vat=_money(vat, locale)), align="R")
        pdf.line_text(_("Total excluding VAT: %(amount)s",
                        amount=_money(invoice.total_cents - invoice.vat_cents, locale)),
                      align="R")
        pdf.line_text(_("VAT: %(amount)s", amount=_money(invoice.vat_cents, locale)), align="R")
        pdf.line_text(_("Total: %(amount)s", amount=_money(invoice.total_cents, locale)),
                      bold=True, size=12, align="R", height=7)
        pdf.ln(5)
        if order.state == OrderState.PAID:
            pdf.line_text(_("Paid. Thank you."), bold=True)
        else:
            pdf.line_text(_("Please pay before %(date)s", date=format_date(
                invoice.due_date, "long", locale=_babel_locale(locale))), bold=True)
            pdf.line_text(_("to IBAN %(iban)s (BIC %(bic)s), beneficiary %(name)s,",
                            iban=current_app.config["BANK_IBAN"],
                            bic=current_app.config["BANK_BIC"],
                            name=current_app.config["PUBLISHER_NAME"]))
        pdf.line_text(_("with the structured communication %(communication)s",
                        communication=format_communication(order.structured_communication)))
        if order.state != OrderState.PAID:
            _payment_qr(pdf, order)
        pdf.ln(4)
        pdf.line_text(_("Periodicals are taxed at the reduced Belgian VAT rate of 6%."),
                      size=8)
        return bytes(pdf.output())


def credit_note_pdf(note: CreditNote) -> bytes:
    locale = note.locale
    invoice = note.invoice
    with force_locale(locale):
        pdf = _Document(locale)
        _header(pdf, _("Credit note"), note.number, note.issue_date, locale)
        pdf.line_text(_("Credits invoice %(number)s of %(date)s", number=invoice.number,
                        date=format_date(invoice.issue_date, "long",
                                         locale=_babel_locale(locale))))
        if note.reason:
            pdf.line_text(_("Reason: %(reason)s", reason=note.reason))
        _buyer(pdf, note)
        if note.total_cents == invoice.total_cents:
            # The whole invoice is credited: its lines, with the opposite sign.
            _lines_table(pdf, invoice.order.lines, locale, sign=-1)
            pdf.ln(3)
        pdf.line_text(_("Total excluding VAT: %(amount)s",
                        amount=_money(-(note.total_cents - note.vat_cents), locale)), align="R")
        pdf.line_text(_("VAT: %(amount)s", amount=_money(-note.vat_cents, locale)), align="R")
        pdf.line_text(_("Total: %(amount)s", amount=_money(-note.total_cents, locale)),
                      bold=True, size=12, align="R", height=7)
        return bytes(pdf.output())
