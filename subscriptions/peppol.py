"""Peppol BIS Billing 3.0 e-invoices (UBL 2.1) for organisation subscribers.

Since 1 January 2026 invoices between Belgian VAT-registered businesses must be structured
e-invoices (EN 16931). An invoice or credit note whose buyer has a Belgian VAT number gets
a UBL `Invoice` or `CreditNote` here, with:

- the seller's and the buyer's Peppol endpoint: scheme 0208, the Belgian enterprise number
  (the VAT number without `BE`, python-stdnum `stdnum.be.vat`);
- the amounts exactly as the legal document was issued (prices include 6% VAT; the VAT of
  each line was computed from its gross amount by `subscriptions.pricing`): category S,
  6%, taxable amount and VAT per rate, totals that add up (BR-CO-10..17);
- payment means 58 (SEPA credit transfer; 30, a plain credit transfer, for an IBAN outside
  the SEPA zone) to the publisher's IBAN, with the structured communication as payment id;
- the PDF of the document as an embedded attachment (AdditionalDocumentReference);
- for a credit note, the invoice it credits (BillingReference).

Written with lxml rather than a UBL library: the libraries on PyPI (eu-einvoice 1.0,
python-ubl 0.1 alpha) recompute VAT and totals from net prices, while ours must carry the
amounts of the issued legal document to the cent (see README, "Peppol e-invoices").
Element order follows the UBL 2.1 XSD; the tests validate every document against it and
against the CEN EN 16931 rules.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from lxml import etree
from stdnum import exceptions as stdnum_errors
from stdnum.be import vat as be_vat

from subscriptions import documents
from subscriptions.models import CreditNote, Invoice, Order

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
# Peppol document type identifiers (scheme busdox-docid-qns) and the process, for the
# access point's envelope.
DOCUMENT_TYPE_IDS = {
    "invoice": f"{NS_INVOICE}::Invoice##{CUSTOMIZATION_ID}::2.1",
    "credit_note": f"{NS_CREDIT_NOTE}::CreditNote##{CUSTOMIZATION_ID}::2.1",
}
PROCESS_ID = PROFILE_ID
# Electronic address scheme (EAS) of a Belgian enterprise number (KBO/BCE).
ENTERPRISE_SCHEME = "0208"
CURRENCY = "EUR"
UNIT_CODE = "C62"  # "one": a copy, a subscription (UN/ECE Recommendation 20)
INVOICE_TYPE = "380"  # commercial invoice (UNCL1001)
CREDIT_NOTE_TYPE = "381"
# Payment means (UNCL4461): 58 SEPA credit transfer, 30 credit transfer.
SEPA_CREDIT_TRANSFER = "58"
CREDIT_TRANSFER = "30"
# IBAN countries of the SEPA scheme (EPC list): a transfer there is a SEPA transfer.
SEPA_COUNTRIES = frozenset({
    "AD", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GI",
    "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL",
    "PT", "RO", "SE", "SI", "SK", "SM", "VA",
})
# A Belgian address on our documents: "Grote Markt 1, 9000 Gent, België".
_POSTCODE_CITY = re.compile(r"^\s*(\d{4})\s+(.+?)\s*$")


class NotPeppolDocument(ValueError):
    """The document's buyer has no Belgian VAT number: no Peppol e-invoice for it."""


def enterprise_number(vat_number: str) -> str | None:
    """The Belgian enterprise number (10 digits) in a Belgian VAT number, or None when the
    number is not a valid Belgian one (stdnum checks the digits)."""
    if not vat_number:
        return None
    try:
        return be_vat.validate(vat_number)
    except stdnum_errors.ValidationError:
        return None


def is_peppol_document(doc: Invoice | CreditNote) -> bool:
    """Only invoices to organisations with a Belgian VAT number go through Peppol: a buyer
    elsewhere in the EU would need the intra-community VAT rules, which our invoices (6%
    for everyone) do not apply."""
    return enterprise_number(doc.buyer_vat_number) is not None


def document_kind(doc: Invoice | CreditNote) -> str:
    return "credit_note" if isinstance(doc, CreditNote) else "invoice"


def file_name(doc: Invoice | CreditNote) -> str:
    prefix = "creditnota" if isinstance(doc, CreditNote) else "factuur"
    return f"{prefix}-{doc.number}.xml"


@dataclass(frozen=True)
class Address:
    street: str
    postcode: str
    city: str
    country: str


def _publisher_address(text: str) -> Address:
    """The publisher's one-line address from the settings, split into its parts."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    street, postcode, city = (parts[0] if parts else ""), "", ""
    for part in parts[1:]:
        match = _POSTCODE_CITY.match(part)
        if match:
            postcode, city = match.groups()
            break
    return Address(street=street, postcode=postcode, city=city, country="BE")


def _amount(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):.2f}"


def _percent(rate_bp: int) -> str:
    return f"{Decimal(rate_bp).scaleb(-2).normalize():f}"


def _unit_price(net_cents: int, quantity: int) -> str:
    """Net price of one unit: the line's net amount divided by its quantity (exact to the
    cent for whole-cent units, else with more decimals, which BT-146 allows)."""
    price = Decimal(abs(net_cents)).scaleb(-2) / abs(quantity)
    exact = price.quantize(Decimal("0.01"))
    if exact == price:
        return f"{exact:.2f}"
    return f"{price.quantize(Decimal('0.000001')).normalize():f}"


class _Builder:
    def __init__(self, root: etree._Element) -> None:
        self.root = root

    @staticmethod
    def cac(parent: etree._Element, tag: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{CAC}}}{tag}")

    @staticmethod
    def cbc(parent: etree._Element, tag: str, text: str, **attributes: str) -> etree._Element:
        element = etree.SubElement(parent, f"{{{CBC}}}{tag}", attributes)
        element.text = text
        return element

    def money(self, parent: etree._Element, tag: str, cents: int) -> etree._Element:
        return self.cbc(parent, tag, _amount(cents), currencyID=CURRENCY)


@dataclass(frozen=True)
class _Line:
    description: str
    quantity: int
    net_cents: int
    rate_bp: int


def _lines_of(doc: Invoice | CreditNote) -> list[_Line]:
    if isinstance(doc, Invoice):
        order_lines = doc.order.lines
    elif doc.total_cents == doc.invoice.total_cents:
        # The whole invoice is credited: its lines.
        order_lines = doc.invoice.order.lines
    else:
        rate = doc.invoice.order.lines[0].vat_rate_bp if doc.invoice.order.lines else 0
        description = doc.reason or f"Credit on invoice {doc.invoice.number}"
        return [_Line(description[:300], 1, doc.total_cents - doc.vat_cents, rate)]
    lines = []
    for line in order_lines:
        # A discount is a negative line: BR-27 forbids a negative price, so the quantity
        # carries the sign.
        quantity = -line.quantity if line.gross_cents < 0 else line.quantity
        lines.append(_Line(line.description, quantity, line.net_cents, line.vat_rate_bp))
    return lines


def _tax_groups(doc: Invoice | CreditNote, lines: list[_Line]) -> dict[int, list[int]]:
    """Taxable amount and VAT per rate. The VAT is the document's, as issued: per rate the
    sum of the lines' VAT (computed from the gross amounts); the net is the sum of the
    lines' net amounts."""
    groups: dict[int, list[int]] = {}
    if isinstance(doc, Invoice) or doc.total_cents == doc.invoice.total_cents:
        order = doc.order if isinstance(doc, Invoice) else doc.invoice.order
        for line in order.lines:
            group = groups.setdefault(line.vat_rate_bp, [0, 0])
            group[0] += line.net_cents
            group[1] += line.vat_cents
    else:
        groups[lines[0].rate_bp] = [doc.total_cents - doc.vat_cents, doc.vat_cents]
    return groups


def _party(builder: _Builder, parent: etree._Element, tag: str, *, name: str, vat: str,
           address: Address, email: str) -> None:
    number = enterprise_number(vat)
    party = builder.cac(builder.cac(parent, tag), "Party")
    builder.cbc(party, "EndpointID", number, schemeID=ENTERPRISE_SCHEME)
    identification = builder.cac(party, "PartyIdentification")
    builder.cbc(identification, "ID", number, schemeID=ENTERPRISE_SCHEME)
    builder.cbc(builder.cac(party, "PartyName"), "Name", name)
    postal = builder.cac(party, "PostalAddress")
    if address.street:
        builder.cbc(postal, "StreetName", address.street)
    if address.city:
        builder.cbc(postal, "CityName", address.city)
    if address.postcode:
        builder.cbc(postal, "PostalZone", address.postcode)
    builder.cbc(builder.cac(postal, "Country"), "IdentificationCode", address.country)
    tax_scheme = builder.cac(party, "PartyTaxScheme")
    builder.cbc(tax_scheme, "CompanyID", f"BE{number}")
    builder.cbc(builder.cac(tax_scheme, "TaxScheme"), "ID", "VAT")
    legal = builder.cac(party, "PartyLegalEntity")
    builder.cbc(legal, "RegistrationName", name)
    builder.cbc(legal, "CompanyID", number, schemeID=ENTERPRISE_SCHEME)
    if email:
        builder.cbc(builder.cac(party, "Contact"), "ElectronicMail", email)


def _tax_category(builder: _Builder, parent: etree._Element, tag: str, rate_bp: int) -> None:
    category = builder.cac(parent, tag)
    builder.cbc(category, "ID", "S" if rate_bp else "Z")
    builder.cbc(category, "Percent", _percent(rate_bp))
    builder.cbc(builder.cac(category, "TaxScheme"), "ID", "VAT")


def payment_means_code(iban: str) -> str:
    """58 for a euro transfer to an IBAN in the SEPA zone, else 30."""
    country = iban.replace(" ", "")[:2].upper()
    return SEPA_CREDIT_TRANSFER if country in SEPA_COUNTRIES else CREDIT_TRANSFER


def build_ubl(doc: Invoice | CreditNote, *, pdf: bytes | None = None) -> bytes:
    """The Peppol BIS Billing 3.0 UBL document of an invoice or credit note to a Belgian
    organisation (UTF-8 bytes with an XML declaration). `pdf` defaults to the document's
    own PDF (subscriptions.documents)."""
    if not is_peppol_document(doc):
        raise NotPeppolDocument(doc.number)
    config = current_app.config
    if enterprise_number(config["PUBLISHER_VAT"]) is None:
        raise ValueError("PUBLISHER_VAT is not a valid Belgian VAT number: no Peppol endpoint")
    credit = isinstance(doc, CreditNote)
    invoice = doc.invoice if credit else doc
    order: Order = invoice.order
    if pdf is None:
        pdf = documents.credit_note_pdf(doc) if credit else documents.invoice_pdf(doc)

    namespace = NS_CREDIT_NOTE if credit else NS_INVOICE
    root = etree.Element(f"{{{namespace}}}{'CreditNote' if credit else 'Invoice'}",
                         nsmap={None: namespace, "cac": CAC, "cbc": CBC})
    b = _Builder(root)
    b.cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    b.cbc(root, "ProfileID", PROFILE_ID)
    b.cbc(root, "ID", doc.number)
    b.cbc(root, "IssueDate", doc.issue_date.isoformat())
    if not credit:
        b.cbc(root, "DueDate", doc.due_date.isoformat())
    b.cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode",
          CREDIT_NOTE_TYPE if credit else INVOICE_TYPE)
    if credit and doc.reason:
        b.cbc(root, "Note", doc.reason[:300])
    b.cbc(root, "DocumentCurrencyCode", CURRENCY)
    # BT-10: the buyer's own reference (their order number) or else ours (PEPPOL-R003
    # wants a buyer reference or an order reference).
    b.cbc(root, "BuyerReference", order.billing_po_reference or order.reference)
    if order.billing_po_reference:
        b.cbc(b.cac(root, "OrderReference"), "ID", order.billing_po_reference)
    if credit:
        reference = b.cac(b.cac(root, "BillingReference"), "InvoiceDocumentReference")
        b.cbc(reference, "ID", invoice.number)
        b.cbc(reference, "IssueDate", invoice.issue_date.isoformat())
    attachment_reference = b.cac(root, "AdditionalDocumentReference")
    b.cbc(attachment_reference, "ID", doc.number)
    b.cbc(attachment_reference, "DocumentDescription",
          "Credit note (PDF)" if credit else "Invoice (PDF)")
    attachment = b.cac(attachment_reference, "Attachment")
    b.cbc(attachment, "EmbeddedDocumentBinaryObject", base64.b64encode(pdf).decode("ascii"),
          mimeCode="application/pdf", filename=file_name(doc).replace(".xml", ".pdf"))

    _party(b, root, "AccountingSupplierParty", name=config["PUBLISHER_NAME"],
           vat=config["PUBLISHER_VAT"], address=_publisher_address(config["PUBLISHER_ADDRESS"]),
           email=config["PUBLISHER_EMAIL"])
    _party(b, root, "AccountingCustomerParty",
           name=doc.buyer_organisation or doc.buyer_name, vat=doc.buyer_vat_number,
           address=Address(order.billing_street, order.billing_postcode, order.billing_city,
                           order.billing_country or "BE"),
           email=doc.buyer_email)

    if not credit:
        # How to pay: a transfer to the publisher with the structured communication. A
        # credit note is paid back by us, to an account the buyer gives: none here.
        iban = config["BANK_IBAN"].replace(" ", "")
        means = b.cac(root, "PaymentMeans")
        b.cbc(means, "PaymentMeansCode", payment_means_code(iban))
        b.cbc(means, "PaymentID", order.structured_communication)
        account = b.cac(means, "PayeeFinancialAccount")
        b.cbc(account, "ID", iban)
        b.cbc(account, "Name", config["PUBLISHER_NAME"])
        if config["BANK_BIC"]:
            b.cbc(b.cac(account, "FinancialInstitutionBranch"), "ID", config["BANK_BIC"])
        b.cbc(b.cac(root, "PaymentTerms"), "Note",
              f"Payment due by {doc.due_date.isoformat()} with structured communication "
              f"{order.formatted_communication}")

    lines = _lines_of(doc)
    groups = _tax_groups(doc, lines)
    net_total = doc.total_cents - doc.vat_cents
    tax_total = b.cac(root, "TaxTotal")
    b.money(tax_total, "TaxAmount", doc.vat_cents)
    for rate, (net, vat) in sorted(groups.items()):
        subtotal = b.cac(tax_total, "TaxSubtotal")
        b.money(subtotal, "TaxableAmount", net)
        b.money(subtotal, "TaxAmount", vat)
        _tax_category(b, subtotal, "TaxCategory", rate)

    totals = b.cac(root, "LegalMonetaryTotal")
    b.money(totals, "LineExtensionAmount", sum(line.net_cents for line in lines))
    b.money(totals, "TaxExclusiveAmount", net_total)
    b.money(totals, "TaxInclusiveAmount", doc.total_cents)
    b.money(totals, "PayableAmount", doc.total_cents)

    for number, line in enumerate(lines, start=1):
        element = b.cac(root, "CreditNoteLine" if credit else "InvoiceLine")
        b.cbc(element, "ID", str(number))
        b.cbc(element, "CreditedQuantity" if credit else "InvoicedQuantity", str(line.quantity),
              unitCode=UNIT_CODE)
        b.money(element, "LineExtensionAmount", line.net_cents)
        item = b.cac(element, "Item")
        b.cbc(item, "Name", line.description[:200])
        _tax_category(b, item, "ClassifiedTaxCategory", line.rate_bp)
        b.cbc(b.cac(element, "Price"), "PriceAmount", _unit_price(line.net_cents, line.quantity),
              currencyID=CURRENCY)

    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
