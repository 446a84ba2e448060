"""Who downloads which e-invoice, and the coordinator's Peppol page."""

from __future__ import annotations

import sqlalchemy as sa
from lxml import etree

from magazine.db import db
from magazine.roles import Role
from subscriptions import services
from subscriptions.models import Invoice
from subscriptions.peppol_models import DeliveryStatus, PeppolDelivery
from tests.conftest import get_user
from tests.factories import make_user
from tests.peppol.factories import organisation_order
from tests.subscriptions.factories import make_plan, place


def _documents(app, owner_email: str) -> tuple[int, int, str]:
    """An organisation's invoice and a credit note on it, owned by `owner_email`: their
    ids and the invoice's number."""
    with app.app_context():
        order = organisation_order(get_user(owner_email))
        note = services.issue_credit_note(order.invoice, amount_cents=5500, reason="One less",
                                          actor=None)
        db.session.commit()
        result = (order.invoice.id, note.id, order.invoice.number)
        db.session.remove()
    return result


def test_the_organisation_downloads_its_own_e_invoices(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    invoice_id, note_id, number = _documents(app, client.user_email)

    response = client.get(f"/account/invoices/{invoice_id}.xml")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert f'filename="factuur-{number}.xml"' in response.headers["Content-Disposition"]
    assert etree.fromstring(response.data).findtext(
        "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID") == number
    response = client.get(f"/account/credit-notes/{note_id}.xml")
    assert response.status_code == 200 and b"<CreditNote" in response.data

    account = client.get("/account").get_data(as_text=True)
    assert f"/account/invoices/{invoice_id}.xml" in account
    assert f"/account/credit-notes/{note_id}.xml" in account


def test_someone_else_gets_a_404(app, login_as):
    owner = login_as(Role.SUBSCRIBER)
    invoice_id, note_id, _ = _documents(app, owner.user_email)
    other = login_as(Role.SUBSCRIBER)
    assert other.get(f"/account/invoices/{invoice_id}.xml").status_code == 404
    assert other.get(f"/account/credit-notes/{note_id}.xml").status_code == 404
    assert other.get(f"/business/subscriptions/peppol/invoices/{invoice_id}.xml"
                     ).status_code == 403


def test_a_private_buyer_has_no_e_invoice(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    with app.app_context():
        order = place(make_plan(), get_user(client.user_email))
        invoice_id = order.invoice.id
        db.session.remove()
    assert client.get(f"/account/invoices/{invoice_id}.xml").status_code == 404
    assert ".xml" not in client.get("/account").get_data(as_text=True)


def test_the_coordinator_sees_and_downloads_every_e_invoice(app, login_as):
    invoice_id, note_id, number = _documents(app, login_as(Role.SUBSCRIBER).user_email)
    assert number
    for role in (Role.COORDINATOR, Role.ADMIN):
        client = login_as(role)
        page = client.get("/business/subscriptions/peppol/?lang=en")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert f'id="peppol-invoice-{invoice_id}"' in html
        assert f'id="peppol-credit_note-{note_id}"' in html
        assert 'id="peppol-not-configured"' in html and 'id="peppol-send-now"' not in html
        assert client.get(f"/business/subscriptions/peppol/invoices/{invoice_id}.xml"
                          ).status_code == 200
        assert client.get(f"/business/subscriptions/peppol/credit-notes/{note_id}.xml"
                          ).status_code == 200
        # Sending is off without an access point.
        assert client.post("/business/subscriptions/peppol/send").status_code == 404
        assert client.post(f"/business/subscriptions/peppol/invoices/{invoice_id}/queue"
                           ).status_code == 404
    with app.app_context():
        order_id = db.session.get(Invoice, invoice_id).order_id
    order_page = client.get(f"/business/subscriptions/orders/{order_id}").get_data(as_text=True)
    assert f"/business/subscriptions/peppol/invoices/{invoice_id}.xml" in order_page


def test_the_coordinator_sends_and_sees_the_delivery(app, login_as, with_peppol):
    owner = login_as(Role.SUBSCRIBER)
    with app.app_context():
        invoice_id = organisation_order(get_user(owner.user_email)).invoice.id
        # An invoice from before the access point was set: not queued, sent by hand.
        db.session.execute(sa.delete(PeppolDelivery))
        db.session.commit()
        db.session.remove()
    client = login_as(Role.COORDINATOR)
    html = client.get("/business/subscriptions/peppol/").get_data(as_text=True)
    assert 'id="peppol-send-now"' in html
    assert f"/business/subscriptions/peppol/invoices/{invoice_id}/queue" in html

    response = client.post(f"/business/subscriptions/peppol/invoices/{invoice_id}/queue")
    assert response.status_code == 302
    with_peppol.fail_next(1, status=500)
    client.post("/business/subscriptions/peppol/send")
    with app.app_context():
        delivery = db.session.scalar(sa.select(PeppolDelivery))
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
        # Make it due now, then send from the page.
        delivery.next_attempt_at = delivery.last_attempt_at
        db.session.commit()
        db.session.remove()
    client.post("/business/subscriptions/peppol/send")
    with app.app_context():
        delivery = db.session.scalar(sa.select(PeppolDelivery))
        assert delivery.status == DeliveryStatus.DELIVERED
        message_id = delivery.provider_message_id
        db.session.remove()
    html = client.get("/business/subscriptions/peppol/").get_data(as_text=True)
    assert message_id in html
    assert len(with_peppol.messages) == 1


def test_the_coordinator_tries_a_failed_delivery_again(app, login_as, with_peppol,
                                                        monkeypatch):
    with app.app_context():
        organisation_order(make_user())
        db.session.remove()
    monkeypatch.setitem(app.config, "PEPPOL_AP_TOKEN", "wrong")
    client = login_as(Role.COORDINATOR)
    client.post("/business/subscriptions/peppol/send")
    with app.app_context():
        delivery = db.session.scalar(sa.select(PeppolDelivery))
        assert delivery.status == DeliveryStatus.FAILED
        delivery_id = delivery.id
        db.session.remove()
    html = client.get("/business/subscriptions/peppol/").get_data(as_text=True)
    assert f"/business/subscriptions/peppol/deliveries/{delivery_id}/retry" in html
    monkeypatch.setitem(app.config, "PEPPOL_AP_TOKEN", with_peppol.token)
    client.post(f"/business/subscriptions/peppol/deliveries/{delivery_id}/retry")
    client.post("/business/subscriptions/peppol/send")
    with app.app_context():
        assert db.session.scalar(sa.select(PeppolDelivery.status)) == DeliveryStatus.DELIVERED
    assert len(with_peppol.messages) == 1
