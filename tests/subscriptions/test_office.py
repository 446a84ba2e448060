"""The coordinator's back office: plans, promo codes, subscribers, payments, complimentary
subscriptions, extensions, addresses and invoices."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from magazine.db import db
from magazine.models import OutboxMail
from magazine.roles import Role
from subscriptions.models import Order, Plan, PlanKind, PromoCode, Subscription
from subscriptions.states import OrderState, SubscriptionState
from tests.conftest import get_user
from tests.factories import make_issue, make_user
from tests.subscriptions.factories import make_plan, place

BASE = "/business/subscriptions"


def test_coordinator_creates_and_edits_a_plan_with_volume_prices(app, login_as):
    client = login_as(Role.COORDINATOR)
    assert client.get(f"{BASE}/plans/new").status_code == 200
    data = {"code": "organisatie", "name_nl": "Organisatie", "name_en": "Organisation",
            "kind": "organisation", "price": "65,00", "vat_rate": "6", "issues_per_term": "5",
            "includes_print": "y", "shipping_be": "0", "shipping_nl": "5", "shipping_eu": "9",
            "bands": "5: 55,00\n10: 50", "position": "1", "active": "y"}
    response = client.post(f"{BASE}/plans/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        plan = db.session.scalar(sa.select(Plan))
        assert plan.price_cents == 6500 and plan.vat_rate_bp == 600
        assert plan.band_tuples() == [(5, 5500), (10, 5000)]
        assert plan.shipping_nl_cents == 500
        plan_id = plan.id
    page = client.get(f"{BASE}/plans/{plan_id}").get_data(as_text=True)
    assert "5: 55,00" in page
    client.post(f"{BASE}/plans/{plan_id}", data={**data, "bands": "10: 50"})
    with app.app_context():
        assert db.session.get(Plan, plan_id).band_tuples() == [(10, 5000)]
    assert "Organisatie" in client.get("/plans").get_data(as_text=True)


def test_plan_form_refuses_bad_input(app, login_as):
    client = login_as(Role.COORDINATOR)
    base = {"code": "x", "name_nl": "X", "name_en": "X", "kind": "print", "price": "10",
            "vat_rate": "6", "issues_per_term": "5", "includes_print": "y"}
    for extra, message in [({"price": "0"}, "Een prijs boven nul"),
                           ({"issues_per_term": "-1"}, "Tussen 1 en 60"),
                           ({"bands": "vijf: 10"}, "Schrijf elke volumeprijs"),
                           ({"bands": "5: 10"}, "Alleen formules voor organisaties")]:
        response = client.post(f"{BASE}/plans/new", data={**base, **extra})
        assert response.status_code == 400, extra
        assert message in response.get_data(as_text=True), extra
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Plan)) == 0


def test_coordinator_manages_promo_codes(app, login_as):
    with app.app_context():
        plan_id = make_plan().id
    client = login_as(Role.COORDINATOR)
    response = client.post(f"{BASE}/promo-codes/new", data={
        "code": "lente 26", "kind": "percent", "value": "15", "max_uses": "100",
        "valid_from": "2026-03-01", "valid_until": "2026-05-31", "plans": [str(plan_id)],
        "active": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        promo = db.session.scalar(sa.select(PromoCode))
        assert (promo.code, promo.percent_bp, promo.max_uses) == ("LENTE26", 1500, 100)
        assert [p.id for p in promo.plans] == [plan_id]
    assert "LENTE26" in client.get(f"{BASE}/promo-codes").get_data(as_text=True)
    bad = client.post(f"{BASE}/promo-codes/new", data={
        "code": "X", "kind": "percent", "value": "150"})
    assert bad.status_code == 400
    assert "tussen 0 en 100" in bad.get_data(as_text=True)


def test_search_finds_by_name_organisation_communication_and_invoice(app, login_as):
    with app.app_context():
        plan = make_plan()
        buyer = make_user(name="Greet Claes", email="greet@example.be")
        order = place(plan, buyer, billing_organisation="Kinderdagverblijf Zonnetje")
        communication, number = order.formatted_communication, order.invoice.number
        make_user(name="Iemand Anders")
    client = login_as(Role.COORDINATOR)
    for query in ("greet", "zonnetje", communication, communication[3:-3].replace("/", ""),
                  number):
        page = client.get(f"{BASE}/", query_string={"q": query}).get_data(as_text=True)
        assert "Greet Claes" in page, query
        assert "Iemand Anders" not in page


def test_coordinator_records_the_transfer_and_the_timeline_shows_it(app, login_as, outbox):
    with app.app_context():
        buyer = make_user(email="els@example.be")
        order = place(make_plan(), buyer)
        order_id, user_id = order.id, buyer.id
    client = login_as(Role.COORDINATOR)
    assert order.reference in client.get(f"{BASE}/").get_data(as_text=True)
    assert client.get(f"{BASE}/orders/{order_id}").status_code == 200
    response = client.post(f"{BASE}/orders/{order_id}/transfer",
                           data={"received_on": date.today().isoformat()})
    assert response.status_code == 302
    again = client.post(f"{BASE}/orders/{order_id}/transfer", data={}, follow_redirects=True)
    assert "al betaald" in again.get_data(as_text=True)
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert order.state == OrderState.PAID
        assert order.subscriptions[0].state == SubscriptionState.ACTIVE
        invoice_id = order.invoice.id
    page = client.get(f"{BASE}/subscribers/{user_id}").get_data(as_text=True)
    assert "Betaling ontvangen" in page and "Factuur" in page and "Mail:" in page
    client.post(f"{BASE}/invoices/{invoice_id}/resend")
    assert [m.template for m in outbox("els@example.be")].count("subscriptions_invoice") == 1


def test_manual_payment_needs_a_note(app, login_as):
    with app.app_context():
        order_id = place(make_plan(), make_user()).id
    client = login_as(Role.COORDINATOR)
    client.post(f"{BASE}/orders/{order_id}/manual", data={})
    with app.app_context():
        assert db.session.get(Order, order_id).state == OrderState.AWAITING_PAYMENT
    client.post(f"{BASE}/orders/{order_id}/manual", data={"note": "Cash op de studiedag"})
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert order.state == OrderState.PAID
        assert order.payments[-1].provider == "manual"


def test_cancelling_an_order_credits_its_invoice(app, login_as):
    with app.app_context():
        order_id = place(make_plan(), make_user()).id
    client = login_as(Role.COORDINATOR)
    client.post(f"{BASE}/orders/{order_id}/cancel")
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert order.state == OrderState.CANCELLED
        assert order.invoice.credit_notes[0].total_cents == order.total_cents


def test_complimentary_subscription_extension_and_address_on_behalf(app, login_as, outbox):
    with app.app_context():
        make_issue(print_date=date.today() + timedelta(days=30))
        plan_id = make_plan(kind=PlanKind.PRINT).id
        partner = make_user(name="Bib Gent", email="bib@gent.be")
        partner_id = partner.id
    client = login_as(Role.COORDINATOR)
    assert client.get(f"{BASE}/subscribers/{partner_id}/complimentary").status_code == 200
    response = client.post(f"{BASE}/subscribers/{partner_id}/complimentary", data={
        "plan": str(plan_id), "copies": "2", "issues": "5", "reason": "Wettelijk depot",
        "address-name": "KBR", "address-street": "Kunstberg 28", "address-postcode": "1000",
        "address-city": "Brussel", "address-country": "BE"})
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        subscription = db.session.scalar(sa.select(Subscription))
        assert subscription.state == SubscriptionState.ACTIVE and subscription.complimentary
        assert subscription.copies == 2 and subscription.auto_renew is False
        assert get_user("bib@gent.be").has_role(Role.SUBSCRIBER)
        subscription_id = subscription.id
    assert [m.template for m in outbox("bib@gent.be")] == ["subscriptions_complimentary"]

    client.post(f"{BASE}/subscriptions/{subscription_id}/extend", data={"issues": "3"})
    with app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        assert (subscription.issues_granted, subscription.issues_remaining) == (8, 8)

    assert client.get(f"{BASE}/subscriptions/{subscription_id}/address").status_code == 200
    client.post(f"{BASE}/subscriptions/{subscription_id}/address", data={
        "group_no": "1", "address-name": "KBR depot", "address-street": "Kunstberg 30",
        "address-postcode": "1000", "address-city": "Brussel", "address-country": "BE"})
    with app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        assert [a.name for a in subscription.addresses] == ["KBR", "KBR depot"]
    page = client.get(f"{BASE}/subscribers/{partner_id}").get_data(as_text=True)
    assert "Wettelijk depot" in page and "KBR depot" in page


def test_subscriber_cannot_use_the_back_office(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    assert client.get(f"{BASE}/").status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMail)) == 0


def test_office_forms_refuse_bad_input_and_change_nothing(app, login_as):
    with app.app_context():
        plan_id = make_plan(kind=PlanKind.PRINT).id
        partner_id = make_user().id
        order = place(make_plan(), make_user())
        subscription_id = order.subscriptions[0].id
    client = login_as(Role.COORDINATOR)
    response = client.post(f"{BASE}/subscribers/{partner_id}/complimentary", data={
        "plan": str(plan_id), "copies": "1", "issues": "5", "reason": "Partner",
        "address-name": "X", "address-street": "Y 1", "address-postcode": "99999",
        "address-city": "Gent", "address-country": "BE"})
    assert response.status_code == 400
    assert "Deze postcode klopt niet" in response.get_data(as_text=True)
    response = client.post(f"{BASE}/subscribers/{partner_id}/complimentary", data={
        "plan": str(plan_id), "copies": "-1", "issues": "5", "reason": ""})
    assert response.status_code == 400
    for issues in ("0", "-3", "abc"):
        client.post(f"{BASE}/subscriptions/{subscription_id}/extend", data={"issues": issues})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 1
        subscription = db.session.get(Subscription, subscription_id)
        assert subscription.issues_granted == subscription.issues_remaining == 5
    response = client.post(f"{BASE}/orders/{order.id}/transfer",
                           data={"received_on": "not a date"}, follow_redirects=True)
    assert "Controleer de datum" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Order, order.id).state == OrderState.AWAITING_PAYMENT


def test_subscribers_filter_by_status_and_plan(app, login_as):
    with app.app_context():
        digital = make_plan(kind=PlanKind.DIGITAL)
        paper = make_plan(kind=PlanKind.PRINT)
        place(digital, make_user(name="Wacht Nog"))
        from subscriptions import services

        paid = place(paper, make_user(name="Betaalde Al"))
        services.record_bank_transfer(paid, actor=make_user(roles={Role.COORDINATOR}))
        db.session.commit()
        digital_id = digital.id
    client = login_as(Role.COORDINATOR)
    page = client.get(f"{BASE}/?state=active").get_data(as_text=True)
    # People are links in the subscriber list (the awaiting orders below name buyers too).
    assert ">Betaalde Al</a>" in page and ">Wacht Nog</a>" not in page
    page = client.get(f"{BASE}/?plan={digital_id}").get_data(as_text=True)
    assert ">Wacht Nog</a>" in page and ">Betaalde Al</a>" not in page
    assert client.get(f"{BASE}/?state=nonsense").status_code == 200


def test_complimentary_subscription_for_someone_new(app, login_as, outbox):
    with app.app_context():
        plan_id = make_plan(kind=PlanKind.PRINT).id
        make_user(email="known@example.be")
    client = login_as(Role.COORDINATOR)
    assert client.get(f"{BASE}/complimentary").status_code == 200
    data = {"name": "KBR Wettelijk Depot", "email": "depot@kbr.example", "plan": str(plan_id),
            "copies": "2", "issues": "10", "reason": "Wettelijk depot",
            "address-name": "KBR", "address-street": "Kunstberg 28",
            "address-postcode": "1000", "address-city": "Brussel", "address-country": "BE"}
    response = client.post(f"{BASE}/complimentary", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        person = get_user("depot@kbr.example")
        assert person.has_role(Role.SUBSCRIBER)
        subscription = db.session.scalar(sa.select(Subscription))
        assert subscription.subscriber_id == person.id and subscription.complimentary
        assert subscription.issues_remaining == 10
    assert [m.template for m in outbox("depot@kbr.example")] == [
        "invitation", "subscriptions_complimentary"]
    again = client.post(f"{BASE}/complimentary", data={**data, "email": "known@example.be"})
    assert again.status_code == 400
    assert "heeft al een account" in again.get_data(as_text=True)
