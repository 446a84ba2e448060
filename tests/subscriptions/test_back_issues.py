"""Single copies and back issues: the coordinator puts them up for sale, a subscriber
orders while stock lasts, an unpaid order gives its copies back."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from magazine.clock import shifted
from magazine.db import db
from magazine.models import OutboxMail
from magazine.roles import Role
from subscriptions.models import Order, SingleCopyOffer
from subscriptions.states import OrderState
from tests.factories import make_issue

ADDRESS = {"address-name": "Els", "address-street": "Dorp 1", "address-postcode": "2000",
           "address-city": "Antwerpen", "address-country": "BE"}


def test_coordinator_offers_an_issue_and_a_subscriber_orders_it(app, login_as):
    with app.app_context():
        issue = make_issue(volume=3, number=2, theme="Buitenspelen")
        issue_id = issue.id
    office = login_as(Role.COORDINATOR)
    assert office.get("/business/subscriptions/back-issues").status_code == 200
    response = office.post("/business/subscriptions/back-issues", data={
        "issue": str(issue_id), "price": "15,00", "stock": "3", "active": "y"})
    assert response.status_code == 302
    with app.app_context():
        offer = db.session.scalar(sa.select(SingleCopyOffer))
        assert (offer.price_cents, offer.stock, offer.active) == (1500, 3, True)
        offer_id = offer.id

    client = login_as(Role.SUBSCRIBER)
    page = client.get("/back-issues").get_data(as_text=True)
    assert "Buitenspelen" in page and f"/back-issues/{offer_id}" in page
    too_many = client.post(f"/back-issues/{offer_id}", data={
        "quantity": "4", "provider": "bank_transfer", "billing_country": "BE", **ADDRESS})
    assert too_many.status_code == 400
    assert "niet genoeg exemplaren" in too_many.get_data(as_text=True)
    placed = client.post(f"/back-issues/{offer_id}", data={
        "quantity": "2", "provider": "bank_transfer", "billing_country": "BE", **ADDRESS})
    assert placed.status_code == 302, placed.get_data(as_text=True)
    with app.app_context():
        order = db.session.scalar(sa.select(Order))
        assert order.total_cents == 3000
        assert order.lines[0].kind == "single_copy" and "3.2" in order.lines[0].description
        assert "Antwerpen" in order.lines[0].description
        assert order.invoice is not None
        [mail] = db.session.scalars(sa.select(OutboxMail).where(
            OutboxMail.template == "subscriptions_order_confirmation")).all()
        assert "We versturen je bestelling" in mail.body_text
        assert db.session.get(SingleCopyOffer, offer_id).stock == 1

    # Not paid in time: the copies go back on the shelf.
    from magazine.jobs import Progress
    from subscriptions.jobs import expire_orders

    with app.app_context(), shifted(timedelta(days=app.config["ORDER_PAYMENT_DAYS"] + 1)):
        assert expire_orders(Progress()).expired == 1
    with app.app_context():
        assert db.session.get(SingleCopyOffer, offer_id).stock == 3
        assert db.session.scalar(sa.select(Order.state)) == OrderState.EXPIRED


def test_sold_out_and_withdrawn_offers(app, login_as):
    with app.app_context():
        issue = make_issue()
        offer = SingleCopyOffer(issue_id=issue.id, price_cents=1500, stock=0)
        hidden = SingleCopyOffer(issue_id=make_issue().id, price_cents=1500, stock=5,
                                 active=False)
        db.session.add_all([offer, hidden])
        db.session.commit()
        offer_id, hidden_id = offer.id, hidden.id
    client = login_as(Role.SUBSCRIBER)
    page = client.get("/back-issues").get_data(as_text=True)
    assert f"/back-issues/{offer_id}" not in page
    assert client.get(f"/back-issues/{hidden_id}").status_code == 404


def test_a_newcomer_orders_a_back_issue_and_gets_an_account(app, client, outbox):
    with app.app_context():
        offer = SingleCopyOffer(issue_id=make_issue().id, price_cents=1500, stock=5)
        db.session.add(offer)
        db.session.commit()
        offer_id = offer.id
    page = client.get(f"/back-issues/{offer_id}").get_data(as_text=True)
    assert "account_password" in page
    response = client.post(f"/back-issues/{offer_id}", data={
        "quantity": "1", "provider": "bank_transfer", "billing_country": "BE", **ADDRESS,
        "account_name": "Els", "account_email": "els@nieuw.example",
        "account_password": "een goed wachtwoord"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get(response.headers["Location"]).status_code == 200  # logged in
    assert {m.template for m in outbox("els@nieuw.example")} == {
        "verify_email", "subscriptions_order_confirmation"}
