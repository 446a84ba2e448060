"""Checkout, payment, expiry and the documents, through the services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from stdnum.be import ogm_vcs

from magazine.clock import frozen, shifted
from magazine.db import db
from magazine.errors import DomainError
from magazine.models import OutboxMail
from magazine.roles import Role
from subscriptions import services
from subscriptions.models import CreditNote, Invoice, PlanKind
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.factories import make_issue, make_user
from tests.subscriptions.factories import address, checkout_request, make_plan, make_promo, place

pytestmark = pytest.mark.usefixtures("app_context")


def mails(template: str) -> list[OutboxMail]:
    return list(db.session.scalars(sa.select(OutboxMail).where(OutboxMail.template == template)))


def test_placing_an_order_issues_invoice_and_mails_how_to_pay():
    issue = make_issue(print_date=date.today() + timedelta(days=40))
    plan = make_plan(price_cents=6500)
    buyer = make_user()
    order = place(plan, buyer, billing_po_reference="PO-77")

    assert order.state == OrderState.AWAITING_PAYMENT
    assert order.total_cents == 6500 and order.vat_cents == 368
    assert ogm_vcs.is_valid(order.structured_communication)
    assert order.formatted_communication.startswith("+++")
    assert order.invoice.number == f"{date.today().year}-000001"
    assert order.invoice.due_date > date.today()
    [subscription] = order.subscriptions
    assert subscription.state == SubscriptionState.PENDING_PAYMENT
    assert subscription.first_issue_id == issue.id
    assert subscription.issues_remaining == plan.issues_per_term
    assert [p.state for p in order.payments] == [PaymentState.OPEN]
    [mail] = mails("subscriptions_order_confirmation")
    assert order.formatted_communication in mail.body_text
    assert "BE71096123456769" in mail.body_text
    assert order.invoice.number in mail.body_text
    assert "Je abonnement start zodra" in mail.body_text
    assert buyer.has_role(Role.SUBSCRIBER)


def test_organisation_gets_volume_price_and_shipping_per_zone():
    plan = make_plan(kind=PlanKind.ORGANISATION, price_cents=6500,
                     bands=[(5, 5500), (10, 5000)], shipping=(0, 500, 900))
    quote = services.quote_checkout(checkout_request(
        plan, copies=6, addresses=[address(copies=4), address(copies=2, country="NL",
                                                             postcode="1012 AB")]),
        today=date.today())
    kinds = [(line.kind, line.quantity, line.unit_cents) for line in quote.lines]
    assert kinds == [("subscription", 6, 5500), ("shipping", 2, 500)]
    assert quote.totals.gross_cents == 6 * 5500 + 2 * 500
    for line in quote.lines:
        assert line.net_cents + line.vat_cents == line.gross_cents


@pytest.mark.parametrize(("overrides", "field"), [
    ({"copies": 3}, "copies"),  # several copies on an individual plan
    ({"copies": 0}, "copies"),
    ({"copies": -2}, "copies"),
    ({"addresses": [address(postcode="12")]}, "addresses-0-postcode"),
    ({"addresses": [address(street="")]}, "addresses-0-street"),
    ({"addresses": [address(country="US")]}, "addresses-0-country"),
    ({"addresses": []}, "addresses"),
    ({"promo_code": "NOPE"}, "promo_code"),
])
def test_bad_checkout_input_is_refused_next_to_its_field(overrides, field):
    plan = make_plan()
    buyer = make_user()
    with pytest.raises(DomainError) as caught:
        services.place_order(checkout_request(plan, **overrides), buyer=buyer)
    assert caught.value.field == field
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 0


def test_copies_per_address_must_add_up():
    plan = make_plan(kind=PlanKind.ORGANISATION)
    with pytest.raises(DomainError) as caught:
        services.quote_checkout(checkout_request(
            plan, copies=5, addresses=[address(copies=2), address(copies=2)]),
            today=date.today())
    assert caught.value.field == "copies"


def test_vat_number_is_checked_with_stdnum():
    plan = make_plan()
    buyer = make_user()
    with pytest.raises(DomainError) as caught:
        services.place_order(checkout_request(plan, billing_vat_number="BE0403019262"),
                             buyer=buyer)
    assert caught.value.field == "billing_vat_number"
    db.session.rollback()
    order = place(plan, buyer, billing_organisation="De Rups vzw",
                  billing_vat_number="0403.019.261")
    assert order.billing_vat_number == "BE0403019261"
    assert order.invoice.buyer_vat_number == "BE0403019261"


def test_recording_the_transfer_activates_once():
    plan = make_plan()
    buyer = make_user()
    coordinator = make_user(roles={Role.COORDINATOR})
    order = place(plan, buyer)
    payment = services.record_bank_transfer(order, actor=coordinator)
    db.session.commit()
    assert payment.state == PaymentState.PAID
    assert order.state == OrderState.PAID
    assert order.subscriptions[0].state == SubscriptionState.ACTIVE
    assert services.record_bank_transfer(order, actor=coordinator) is None
    db.session.commit()
    assert len(mails("subscriptions_payment_received")) == 1
    assert len(order.payments) == 1


def test_a_subscriber_cannot_record_payments():
    plan = make_plan()
    buyer = make_user()
    order = place(plan, buyer)
    with pytest.raises(DomainError):
        services.record_bank_transfer(order, actor=buyer)


def test_gift_recipient_is_mailed_when_the_gift_starts():
    plan = make_plan(kind=PlanKind.GIFT)
    buyer = make_user(name="Oma Jeanne")
    order = place(plan, buyer, gift_recipient_name="Lotte", gift_recipient_email="lotte@x.be",
                  gift_message="Veel leesplezier!")
    assert mails("subscriptions_gift_started") == []
    services.record_bank_transfer(order, actor=make_user(roles={Role.COORDINATOR}))
    db.session.commit()
    [mail] = mails("subscriptions_gift_started")
    assert mail.to_address == "lotte@x.be"
    [confirmation] = mails("subscriptions_payment_received")
    assert "Het cadeau-abonnement voor Lotte is nu actief" in confirmation.body_text
    assert "Veel leesplezier!" in mail.body_text and "Oma Jeanne" in mail.body_text
    assert order.subscriptions[0].auto_renew is False


def test_gift_needs_a_recipient():
    plan = make_plan(kind=PlanKind.GIFT)
    with pytest.raises(DomainError) as caught:
        services.place_order(checkout_request(plan), buyer=make_user())
    assert caught.value.field == "gift_recipient_name"


def test_unpaid_order_is_reminded_then_expires_with_a_credit_note(app):
    from subscriptions.jobs import expire_orders

    plan = make_plan()
    promo = make_promo("ZOMER", percent=10, max_uses=5)
    order = place(plan, make_user(), promo_code="zomer")
    assert db.session.get(type(promo), promo.id).used_count == 1
    days = app.config["ORDER_PAYMENT_DAYS"]
    with shifted(timedelta(days=days - 3)):
        result = expire_orders(_progress())
        assert result.reminded == 1 and result.expired == 0
        assert expire_orders(_progress()).reminded == 0  # once
    with shifted(timedelta(days=days, hours=1)):
        result = expire_orders(_progress())
        assert result.expired == 1
        assert expire_orders(_progress()).expired == 0
    db.session.expire_all()
    assert order.state == OrderState.EXPIRED
    assert order.subscriptions[0].state == SubscriptionState.EXPIRED
    assert order.payments[0].state == PaymentState.EXPIRED
    [note] = order.invoice.credit_notes
    assert note.total_cents == order.total_cents and note.vat_cents == order.vat_cents
    assert note.number == f"CN{date.today().year}-000001"
    assert db.session.get(type(promo), promo.id).used_count == 0
    assert len(mails("subscriptions_order_reminder")) == 1
    assert len(mails("subscriptions_order_expired")) == 1


def _progress():
    from magazine.jobs import Progress

    return Progress()


def test_invoice_numbers_run_per_year_without_gaps():
    plan = make_plan()
    buyer = make_user()
    with frozen(datetime(2026, 12, 31, 12, tzinfo=UTC)):
        numbers = [place(plan, buyer).invoice.number for _ in range(3)]
    with frozen(datetime(2027, 1, 1, 12, tzinfo=UTC)):
        numbers.append(place(plan, buyer).invoice.number)
    assert numbers == ["2026-000001", "2026-000002", "2026-000003", "2027-000001"]


def test_a_failed_checkout_gives_its_invoice_number_back():
    plan = make_plan()
    buyer = make_user()
    place(plan, buyer)
    services.next_document_number(services.INVOICE_SERIES, date.today().year)
    db.session.rollback()
    assert place(plan, buyer).invoice.number.endswith("-000002")


def test_credit_note_cannot_exceed_the_invoice():
    order = place(make_plan(), make_user())
    services.issue_credit_note(order.invoice, amount_cents=1000, reason="x", actor=None)
    with pytest.raises(DomainError):
        services.issue_credit_note(order.invoice, amount_cents=order.total_cents, reason="x",
                                   actor=None)
    note = db.session.scalar(sa.select(CreditNote))
    assert note.vat_cents == 57  # 10,00 × 6/106 = 0,566 → 0,57


def test_promo_code_rules():
    plan = make_plan(price_cents=6000)
    other = make_plan()
    today = date.today()
    make_promo("OUD", percent=10, valid_until=today - timedelta(days=1))
    make_promo("LATER", percent=10, valid_from=today + timedelta(days=1))
    make_promo("ENKEL", amount_cents=500, plans=[other])
    make_promo("OP", percent=10, max_uses=1)
    messages = {}
    for code in ("OUD", "LATER", "ENKEL", "ONBEKEND"):
        with pytest.raises(DomainError) as caught:
            services.quote_checkout(checkout_request(plan, promo_code=code), today=today)
        assert caught.value.field == "promo_code"
        messages[code] = caught.value.message
    assert "verlopen" in messages["OUD"]
    assert "geldt niet voor deze formule" in messages["ENKEL"]
    place(plan, make_user(), promo_code="op")
    with pytest.raises(DomainError, match=r"used up|opgebruikt"):
        services.quote_checkout(checkout_request(plan, promo_code="OP"), today=today)
    quote = services.quote_checkout(checkout_request(other, promo_code="enkel"), today=today)
    assert quote.lines[1].kind == "discount" and quote.lines[1].gross_cents == -500


def test_percentage_discount_line_keeps_vat_consistent():
    plan = make_plan(price_cents=6500)
    make_promo("HALF", percent=15)
    order = place(plan, make_user(), promo_code="HALF")
    assert [line.gross_cents for line in order.lines] == [6500, -975]
    assert order.total_cents == 5525
    assert order.vat_cents == sum(line.vat_cents for line in order.lines)


def pdf_text(data: bytes) -> str:
    """The text a PDF reader extracts from the document."""
    import io

    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_invoice_pdf_prints_names_as_written_in_dutch():
    from subscriptions.documents import invoice_pdf

    order = place(make_plan(), make_user(), billing_name="Ayşe Yılmaz",
                  billing_organisation="Crèche Łukasz")
    text = pdf_text(invoice_pdf(order.invoice))
    assert "Ayşe Yılmaz" in text and "Crèche Łukasz" in text
    assert f"Factuur {order.invoice.number}" in text or "Invoice" in text
    assert "€ 65,00" in text


def test_invoice_pdf_has_publisher_buyer_lines_vat_and_how_to_pay(app):
    from subscriptions.documents import credit_note_pdf, invoice_pdf

    order = place(make_plan(kind=PlanKind.ORGANISATION, bands=[(5, 5500)]), make_user(),
                  copies=5, billing_organisation="De Rups vzw",
                  billing_vat_number="BE0403019261", billing_po_reference="PO-9",
                  locale="en")
    text = pdf_text(invoice_pdf(order.invoice))
    for expected in (f"Invoice {order.invoice.number}", app.config["PUBLISHER_NAME"],
                     app.config["PUBLISHER_VAT"], "De Rups vzw", "VAT number: BE0403019261",
                     "PO-9", "€275.00", "VAT €15.57", "Please pay before",
                     order.formatted_communication):
        assert expected in text, expected
    note = services.issue_credit_note(order.invoice, reason="Order cancelled", actor=None)
    text = pdf_text(credit_note_pdf(note))
    assert f"Credit note {note.number}" in text and order.invoice.number in text
    assert "-€275.00" in text
    assert "Plan" in text  # the credited invoice's lines are repeated


def test_a_free_order_is_paid_at_once():
    plan = make_plan(price_cents=6500, shipping=(0, 0, 0))
    make_promo("GRATIS", percent=100)
    order = place(plan, make_user(), promo_code="gratis")
    assert order.total_cents == 0 and order.state == OrderState.PAID
    assert order.subscriptions[0].state == SubscriptionState.ACTIVE
    assert [p.state for p in order.payments] == [PaymentState.CANCELLED, PaymentState.PAID]
    assert mails("subscriptions_order_confirmation") == []
    assert len(mails("subscriptions_payment_received")) == 1
