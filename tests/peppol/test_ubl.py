"""The Peppol BIS Billing 3.0 UBL of an invoice and a credit note: field by field, against
the UBL 2.1 schema and the CEN EN 16931 rules, and the key OpenPeppol rules by hand."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from lxml import etree

from magazine.db import db
from subscriptions import peppol, services
from subscriptions.models import PlanKind
from tests.factories import make_user
from tests.peppol.factories import BUYER_VAT, organisation_order
from tests.peppol.validation import en16931_failures, xsd_errors
from tests.subscriptions.factories import address, make_plan, make_promo, place

pytestmark = pytest.mark.usefixtures("app_context")

NS = {"cac": peppol.CAC, "cbc": peppol.CBC, "inv": peppol.NS_INVOICE,
      "cn": peppol.NS_CREDIT_NOTE}


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def text(root: etree._Element, path: str) -> str:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, found)
    value = found[0]
    return value if isinstance(value, str) else (value.text or "")


def amount(root: etree._Element, path: str) -> Decimal:
    return Decimal(text(root, path))


def assert_valid(xml: bytes) -> None:
    assert xsd_errors(xml) == []
    fatal = [f for f in en16931_failures(xml) if f[0] == "fatal"]
    assert fatal == []


def assert_peppol_key_rules(root: etree._Element) -> None:
    """OpenPeppol BIS 3.0 rules that no offline package checks, by hand."""
    assert text(root, "cbc:CustomizationID") == peppol.CUSTOMIZATION_ID  # R004
    assert text(root, "cbc:ProfileID") == peppol.PROFILE_ID  # R007
    # R003: a buyer reference or an order reference.
    assert root.xpath("cbc:BuyerReference|cac:OrderReference/cbc:ID", namespaces=NS)
    # R020/R010: both endpoints, scheme 0208 with a valid enterprise number (COMMON-R043).
    for party in ("AccountingSupplierParty", "AccountingCustomerParty"):
        endpoint = root.xpath(f"cac:{party}/cac:Party/cbc:EndpointID", namespaces=NS)[0]
        assert endpoint.get("schemeID") == "0208"
        assert peppol.enterprise_number(f"BE{endpoint.text}") == endpoint.text
    # BR-CO-15 (exact), BR-CO-10 (sum of lines), R053 (one tax total in document currency).
    assert len(root.xpath("cac:TaxTotal", namespaces=NS)) == 1
    net = amount(root, "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount")
    vat = amount(root, "cac:TaxTotal/cbc:TaxAmount")
    assert amount(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount") == net + vat
    lines = root.xpath("cac:InvoiceLine|cac:CreditNoteLine", namespaces=NS)
    line_sum = sum(Decimal(line.findtext(f"{{{peppol.CBC}}}LineExtensionAmount"))
                   for line in lines)
    assert amount(root, "cac:LegalMonetaryTotal/cbc:LineExtensionAmount") == line_sum
    # Every amount has two decimals at most (R051 currency, BR-DEC).
    for element in root.iter(f"{{{peppol.CBC}}}*"):
        if element.get("currencyID") and not element.tag.endswith("PriceAmount"):
            assert element.get("currencyID") == "EUR"
            assert len(element.text.partition(".")[2]) == 2, element.tag
    # R120: line net amount = quantity × price (within 0.02).
    for line in lines:
        quantity = Decimal(line.xpath("cbc:InvoicedQuantity|cbc:CreditedQuantity",
                                      namespaces=NS)[0].text)
        price = Decimal(line.findtext(f"{{{peppol.CAC}}}Price/{{{peppol.CBC}}}PriceAmount"))
        assert price >= 0  # BR-27
        line_net = Decimal(line.findtext(f"{{{peppol.CBC}}}LineExtensionAmount"))
        assert abs(line_net - quantity * price) <= Decimal("0.02")


def test_invoice_ubl_field_by_field(app):
    order = organisation_order()
    invoice = order.invoice
    xml = peppol.build_ubl(invoice)
    root = parse(xml)

    assert root.tag == f"{{{peppol.NS_INVOICE}}}Invoice"
    assert text(root, "cbc:ID") == invoice.number
    assert text(root, "cbc:IssueDate") == invoice.issue_date.isoformat()
    assert text(root, "cbc:DueDate") == invoice.due_date.isoformat()
    assert text(root, "cbc:InvoiceTypeCode") == "380"
    assert text(root, "cbc:DocumentCurrencyCode") == "EUR"
    assert text(root, "cbc:BuyerReference") == "PO-2026-17"
    assert text(root, "cac:OrderReference/cbc:ID") == "PO-2026-17"

    seller = "cac:AccountingSupplierParty/cac:Party/"
    assert text(root, seller + "cbc:EndpointID") == "0403019261"
    assert text(root, seller + "cbc:EndpointID/@schemeID") == "0208"
    assert text(root, seller + "cac:PartyName/cbc:Name") == app.config["PUBLISHER_NAME"]
    assert text(root, seller + "cac:PartyTaxScheme/cbc:CompanyID") == "BE0403019261"
    assert text(root, seller + "cac:PartyLegalEntity/cbc:CompanyID") == "0403019261"
    assert text(root, seller + "cac:PostalAddress/cbc:StreetName") == "Grote Markt 1"
    assert text(root, seller + "cac:PostalAddress/cbc:PostalZone") == "9000"
    assert text(root, seller + "cac:PostalAddress/cbc:CityName") == "Gent"
    assert text(root, seller + "cac:PostalAddress/cac:Country/cbc:IdentificationCode") == "BE"

    buyer = "cac:AccountingCustomerParty/cac:Party/"
    assert text(root, buyer + "cbc:EndpointID") == BUYER_VAT[2:]
    assert text(root, buyer + "cbc:EndpointID/@schemeID") == "0208"
    assert text(root, buyer + "cac:PartyLegalEntity/cbc:RegistrationName") == (
        "Kinderdagverblijf De Rups vzw")
    assert text(root, buyer + "cac:PartyTaxScheme/cbc:CompanyID") == BUYER_VAT
    assert text(root, buyer + "cac:PartyTaxScheme/cac:TaxScheme/cbc:ID") == "VAT"
    assert text(root, buyer + "cac:PostalAddress/cbc:StreetName") == order.billing_street
    assert text(root, buyer + "cac:Contact/cbc:ElectronicMail") == invoice.buyer_email

    # Payment: SEPA credit transfer to the publisher, the structured communication as id.
    assert text(root, "cac:PaymentMeans/cbc:PaymentMeansCode") == "58"
    assert text(root, "cac:PaymentMeans/cbc:PaymentID") == order.structured_communication
    assert text(root, "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID") == (
        app.config["BANK_IBAN"])
    assert text(root, "cac:PaymentMeans/cac:PayeeFinancialAccount/"
                      "cac:FinancialInstitutionBranch/cbc:ID") == app.config["BANK_BIC"]

    # VAT: category S at 6%, the split as issued.
    subtotal = "cac:TaxTotal/cac:TaxSubtotal/"
    assert text(root, subtotal + "cac:TaxCategory/cbc:ID") == "S"
    assert text(root, subtotal + "cac:TaxCategory/cbc:Percent") == "6"
    assert amount(root, subtotal + "cbc:TaxableAmount") == Decimal(
        invoice.total_cents - invoice.vat_cents) / 100
    assert amount(root, subtotal + "cbc:TaxAmount") == Decimal(invoice.vat_cents) / 100
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == Decimal(invoice.vat_cents) / 100
    assert amount(root, "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount") == Decimal("275.00")
    assert amount(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == Decimal("275.00")
    assert invoice.vat_cents == 1557

    lines = root.xpath("cac:InvoiceLine", namespaces=NS)
    assert len(lines) == len(order.lines)
    first = lines[0]
    assert text(first, "cbc:InvoicedQuantity") == "5"
    assert text(first, "cbc:InvoicedQuantity/@unitCode") == "C62"
    assert text(first, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID") == "S"
    assert text(first, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent") == "6"
    assert text(first, "cac:Item/cbc:Name") == order.lines[0].description

    # The PDF travels inside.
    attachment = root.xpath("cac:AdditionalDocumentReference/cac:Attachment/"
                            "cbc:EmbeddedDocumentBinaryObject", namespaces=NS)[0]
    assert attachment.get("mimeCode") == "application/pdf"
    assert attachment.get("filename") == f"factuur-{invoice.number}.pdf"
    assert base64.b64decode(attachment.text).startswith(b"%PDF")

    assert_peppol_key_rules(root)
    assert_valid(xml)


def test_credit_note_ubl_references_the_invoice(app):
    order = organisation_order()
    note = services.issue_credit_note(order.invoice, reason="Order cancelled", actor=None)
    db.session.commit()
    xml = peppol.build_ubl(note)
    root = parse(xml)

    assert root.tag == f"{{{peppol.NS_CREDIT_NOTE}}}CreditNote"
    assert text(root, "cbc:ID") == note.number
    assert text(root, "cbc:CreditNoteTypeCode") == "381"
    assert text(root, "cbc:Note") == "Order cancelled"
    assert text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == (
        order.invoice.number)
    assert text(root, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:IssueDate") == (
        order.invoice.issue_date.isoformat())
    assert text(root, "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID") == BUYER_VAT[2:]
    # The whole invoice is credited: its lines, its VAT, positive amounts in a credit note.
    assert len(root.xpath("cac:CreditNoteLine", namespaces=NS)) == len(order.lines)
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == Decimal("15.57")
    assert amount(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == Decimal("275.00")
    assert text(root, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "S"
    attachment = root.xpath("//cbc:EmbeddedDocumentBinaryObject", namespaces=NS)[0]
    assert attachment.get("filename") == f"creditnota-{note.number}.pdf"
    assert base64.b64decode(attachment.text).startswith(b"%PDF")
    assert root.xpath("cac:PaymentMeans", namespaces=NS) == []

    assert_peppol_key_rules(root)
    assert_valid(xml)


def test_partial_credit_note_is_one_line_with_its_vat():
    order = organisation_order()
    note = services.issue_credit_note(order.invoice, amount_cents=5500,
                                      reason="One copy less", actor=None)
    db.session.commit()
    xml = peppol.build_ubl(note)
    root = parse(xml)
    lines = root.xpath("cac:CreditNoteLine", namespaces=NS)
    assert len(lines) == 1 and text(lines[0], "cac:Item/cbc:Name") == "One copy less"
    assert amount(root, "cac:TaxTotal/cbc:TaxAmount") == Decimal(note.vat_cents) / 100
    assert amount(root, "cac:LegalMonetaryTotal/cbc:PayableAmount") == Decimal("55.00")
    assert_peppol_key_rules(root)
    assert_valid(xml)


def test_discount_and_shipping_lines_stay_valid():
    """A promo code is a negative line: the quantity carries the sign (BR-27: no negative
    price); shipping to the Netherlands is a line of its own."""
    plan = make_plan(kind=PlanKind.ORGANISATION, price_cents=6500, bands=[(5, 5500)],
                     shipping=(0, 333, 900))
    make_promo("LENTE", percent=15)
    order = place(plan, make_user(), copies=3, promo_code="lente",
                  billing_organisation="Crèche Łukasz vzw", billing_vat_number=BUYER_VAT,
                  addresses=[address(country="NL", postcode="1015 AA", city="Amsterdam")])
    kinds = {line.kind for line in order.lines}
    assert {"discount", "shipping"} <= kinds
    xml = peppol.build_ubl(order.invoice)
    root = parse(xml)
    quantities = [Decimal(q) for q in root.xpath("cac:InvoiceLine/cbc:InvoicedQuantity/text()",
                                                 namespaces=NS)]
    assert any(q < 0 for q in quantities)
    assert text(root, "cbc:BuyerReference") == order.reference  # no PO: our reference
    assert "Łukasz" in xml.decode("utf-8")
    assert_peppol_key_rules(root)
    assert_valid(xml)


def test_a_buyer_without_a_belgian_vat_number_has_no_e_invoice():
    private = place(make_plan(), make_user())
    assert not peppol.is_peppol_document(private.invoice)
    with pytest.raises(peppol.NotPeppolDocument):
        peppol.build_ubl(private.invoice)
    dutch = organisation_order(billing_vat_number="NL004495445B01")
    assert not peppol.is_peppol_document(dutch.invoice)


def test_payment_means_code_follows_the_iban():
    assert peppol.payment_means_code("BE71 0961 2345 6769") == "58"
    assert peppol.payment_means_code("US64SVBKUS6S3300958879") == "30"


def test_the_checks_catch_a_document_that_does_not_add_up():
    """The validation is not a formality: a total changed by one cent breaks BR-CO-15, an
    element out of order breaks the schema."""
    xml = peppol.build_ubl(organisation_order().invoice)
    root = parse(xml)
    total = root.xpath("cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount", namespaces=NS)[0]
    total.text = str(Decimal(total.text) + Decimal("0.01"))
    rules = {rule for flag, rule, _ in en16931_failures(etree.tostring(root)) if flag == "fatal"}
    assert "BR-CO-15" in rules
    root = parse(xml)
    root.append(root.find(f"{{{peppol.CBC}}}ID"))  # the number moved to the end
    assert xsd_errors(etree.tostring(root))


def test_a_publisher_without_a_belgian_vat_number_cannot_send(app, monkeypatch):
    invoice = organisation_order().invoice
    monkeypatch.setitem(app.config, "PUBLISHER_VAT", "BE0403019262")
    with pytest.raises(ValueError, match="PUBLISHER_VAT"):
        peppol.build_ubl(invoice)
