"""The subscriber's pages over HTTP: plans, checkout, order, QR code, PDFs, account,
subscription changes, data export and account deletion; ownership (404 for others)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, timedelta

import sqlalchemy as sa

from magazine.db import db
from magazine.roles import Role
from subscriptions.models import (
    CreditNote,
    DeliveryAddress,
    Invoice,
    Order,
    PlanKind,
    Subscription,
)
from subscriptions.states import OrderState, SubscriptionState
from tests.conftest import get_user
from tests.factories import make_issue, make_user
from tests.subscriptions.factories import make_plan, place

ADDRESS = {"addresses-0-name": "Kinderdagverblijf De Rups", "addresses-0-street": "Kerkstraat 12",
           "addresses-0-postcode": "9000", "addresses-0-city": "Gent",
           "addresses-0-country": "BE"}


def form_for(plan, **extra) -> dict:
    data = {"plan": str(plan.id), "copies": "1", "provider": "bank_transfer",
            "billing_country": "BE", "first_issue": "", **ADDRESS}
    for i in (1, 2):
        data[f"addresses-{i}-country"] = "BE"
    data.update(extra)
    return data


def test_plans_page_shows_active_plans_with_price_per_issue(app, client):
    with app.app_context():
        make_plan(price_cents=6500, issues=5, code="individueel")
        make_plan(code="oud", active=False)
    page = client.get("/plans").get_data(as_text=True)
    assert "Formule" in page or "Plan" in page
    assert "13,00" in page  # 65,00 for 5 issues
    assert "/checkout?plan=individueel" in page
    assert "plan=oud" not in page


def test_plans_page_names_online_payment_only_when_a_provider_is_set(app, client):
    with app.app_context():
        make_plan(code="individueel")
    assert "Je betaalt online" not in client.get("/plans").get_data(as_text=True)
    app.config["STRIPE_SECRET_KEY"] = "sk_test_plans"
    try:
        assert "Je betaalt online" in client.get("/plans").get_data(as_text=True)
    finally:
        app.config["STRIPE_SECRET_KEY"] = ""


def test_logged_in_checkout_previews_then_places_the_order(app, login_as):
    with app.app_context():
        make_issue(print_date=date.today() + timedelta(days=40))
        plan = make_plan(price_cents=6500)
    client = login_as(Role.SUBSCRIBER)
    preview = client.post("/checkout", data=form_for(plan, preview="1"))
    assert preview.status_code == 200
    text = preview.get_data(as_text=True)
    assert "65,00" in text and "3,68" in text  # total and VAT
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0

    placed = client.post("/checkout", data=form_for(plan, place="1"))
    assert placed.status_code == 302
    order_page = client.get(placed.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        order = db.session.scalar(sa.select(Order))
        communication = order.formatted_communication
        invoice_id = order.invoice.id
    assert communication in order_page
    assert "BE71096123456769" in order_page
    assert f"/account/orders/{order.id}/qr.svg" in order_page
    qr = client.get(f"/account/orders/{order.id}/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert b"<svg" in qr.data
    pdf = client.get(f"/account/invoices/{invoice_id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    account = client.get("/account").get_data(as_text=True)
    assert order.reference in account and "Formule" in account


def test_newcomer_checks_out_with_a_new_account(app, client, outbox):
    with app.app_context():
        plan = make_plan(kind=PlanKind.ORGANISATION, bands=[(5, 5500)])
    response = client.post("/checkout", data=form_for(
        plan, place="1", copies="5", account_name="Els Peeters",
        account_email="els@derups.be", account_password="een lang wachtwoord",
        billing_organisation="De Rups vzw", billing_vat_number="BE 0403.019.261"))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get(response.headers["Location"]).status_code == 200  # logged in
    with app.app_context():
        user = get_user("els@derups.be")
        assert user.has_role(Role.SUBSCRIBER)
        order = db.session.scalar(sa.select(Order))
        assert order.total_cents == 5 * 5500
        assert order.billing_vat_number == "BE0403019261"
    templates = [m.template for m in outbox("els@derups.be")]
    assert "verify_email" in templates and "subscriptions_order_confirmation" in templates


def test_bad_checkout_input_changes_nothing(app, login_as):
    with app.app_context():
        plan = make_plan(kind=PlanKind.ORGANISATION)
    client = login_as(Role.SUBSCRIBER)
    for extra, message in [
        ({"copies": "-3"}, "Kies tussen 1 en 500 exemplaren."),
        ({"addresses-0-postcode": "90"}, "Deze postcode klopt niet"),
        ({"billing_vat_number": "BE0123"}, "geen geldig ondernemings- of btw-nummer"),
        ({"promo_code": "BESTAATNIET"}, "Deze kortingscode bestaat niet"),
    ]:
        response = client.post("/checkout", data=form_for(plan, place="1", **extra))
        assert response.status_code == 400, extra
        assert message in response.get_data(as_text=True), extra
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Invoice)) == 0


def test_someone_elses_things_are_404(app, login_as):
    with app.app_context():
        plan = make_plan()
        order = place(plan, make_user())
        services_note = _credit(order)
        ids = (order.id, order.invoice.id, order.subscriptions[0].id, services_note)
    client = login_as(Role.SUBSCRIBER)
    order_id, invoice_id, subscription_id, note_id = ids
    for path in (f"/account/orders/{order_id}", f"/account/orders/{order_id}/qr.svg",
                 f"/account/invoices/{invoice_id}.pdf", f"/account/credit-notes/{note_id}.pdf",
                 f"/account/subscriptions/{subscription_id}"):
        assert client.get(path).status_code == 404, path
    for path in (f"/account/subscriptions/{subscription_id}/auto-renew",
                 f"/account/subscriptions/{subscription_id}/next-plan",
                 f"/account/subscriptions/{subscription_id}/address"):
        assert client.post(path, data={"auto_renew": "0"}).status_code == 404, path


def _credit(order) -> int:
    from subscriptions import services

    note = services.issue_credit_note(order.invoice, amount_cents=100, reason="x", actor=None)
    db.session.commit()
    return note.id


def _active_subscription(app, email: str, *, plan_kind=PlanKind.PRINT_DIGITAL):
    from subscriptions import services

    with app.app_context():
        buyer = get_user(email)
        order = place(make_plan(kind=plan_kind), buyer)
        services.record_bank_transfer(order, actor=make_user(roles={Role.COORDINATOR}))
        db.session.commit()
        return order.subscriptions[0].id


def test_auto_renew_off_with_reason_and_back_on(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    subscription_id = _active_subscription(app, client.user_email)
    path = f"/account/subscriptions/{subscription_id}"
    assert client.get(path).status_code == 200
    client.post(path + "/auto-renew", data={"auto_renew": "0", "reason": "Te duur"})
    with app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        assert subscription.state == SubscriptionState.CANCELLED
        assert subscription.auto_renew is False and subscription.cancel_reason == "Te duur"
    assert "Te duur" in client.get(path).get_data(as_text=True)
    client.post(path + "/auto-renew", data={"auto_renew": "1"})
    with app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        assert subscription.state == SubscriptionState.ACTIVE and subscription.auto_renew


def test_change_plan_for_the_next_term(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    subscription_id = _active_subscription(app, client.user_email)
    with app.app_context():
        digital = make_plan(kind=PlanKind.DIGITAL)
    client.post(f"/account/subscriptions/{subscription_id}/next-plan",
                data={"plan": str(digital.id)})
    with app.app_context():
        assert db.session.get(Subscription, subscription_id).next_plan_id == digital.id


def test_address_change_before_and_after_the_cut_off(app, login_as):
    today = date.today()
    with app.app_context():
        near = make_issue(number=1, print_date=today + timedelta(days=8))  # cut-off in 3 days
        later = make_issue(number=2, print_date=today + timedelta(days=70))
        near_code, later_code = near.code, later.code
        near_id = near.id
    client = login_as(Role.SUBSCRIBER)
    subscription_id = _active_subscription(app, client.user_email)
    path = f"/account/subscriptions/{subscription_id}"
    page = client.get(path).get_data(as_text=True)
    assert f"geldt al voor het volgende nummer, {near_code}" in page
    assert 'name="group_no" value="1"' in page  # one address: no choice to make

    new = {"group_no": "1", "address-name": "Els", "address-street": "Dorp 1",
           "address-postcode": "2000", "address-city": "Antwerpen", "address-country": "BE"}
    response = client.post(path + "/address", data=new, follow_redirects=True)
    assert f"geldt vanaf nummer {near_code}" in response.get_data(as_text=True)

    # Past the cut-off of the near issue, the change waits for the one after.
    from magazine.clock import shifted

    with shifted(timedelta(days=4)):
        page = client.get(path).get_data(as_text=True)
        assert f"een wijziging van vandaag geldt vanaf nummer {later_code}" in page
        response = client.post(path + "/address", data={**new, "address-city": "Mechelen",
                                                         "address-postcode": "2800"},
                               follow_redirects=True)
        assert f"geldt vanaf nummer {later_code}" in response.get_data(as_text=True)
    with app.app_context():
        from subscriptions import services

        subscription = db.session.get(Subscription, subscription_id)
        from editorial.models import Issue

        assert services.address_for_issue(
            subscription, 1, db.session.get(Issue, near_id)).city == "Antwerpen"
        assert services.address_for_issue(
            subscription, 1, db.session.get(Issue, later.id)).city == "Mechelen"


def test_bad_address_change_is_refused(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    subscription_id = _active_subscription(app, client.user_email)
    response = client.post(f"/account/subscriptions/{subscription_id}/address", data={
        "group_no": "1", "address-name": "Els", "address-street": "Dorp 1",
        "address-postcode": "ABC", "address-city": "Antwerpen", "address-country": "BE"})
    assert response.status_code == 400
    assert "Deze postcode klopt niet" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryAddress)) == 1


def test_data_export_holds_everything(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    subscription_id = _active_subscription(app, client.user_email)
    response = client.get("/account/export")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    data = json.loads(archive.read("data.json"))
    assert data["account"]["email"] == client.user_email
    assert "password_hash" not in data["account"]
    assert [s["id"] for s in data["subscriptions"]] == [subscription_id]
    assert data["subscriptions"][0]["delivery_addresses"][0]["city"] == "Gent"
    [order] = data["orders"]
    assert order["lines"] and order["payments"] and order["invoice"]["number"]
    assert {m["template"] for m in data["mails"]} >= {"subscriptions_order_confirmation",
                                                      "subscriptions_payment_received"}
    assert f"invoices/{order['invoice']['number']}.pdf" in archive.namelist()


def test_deleting_the_account_erases_personal_data_but_keeps_invoices(app, login_as, outbox):
    client = login_as(Role.SUBSCRIBER)
    email = client.user_email
    _active_subscription(app, email)
    with app.app_context():
        unpaid = place(make_plan(), get_user(email))
        unpaid_id = unpaid.id
    assert "de wet verplicht ons" in client.get("/account/delete").get_data(as_text=True)
    wrong = client.post("/account/delete", data={"password": "nope", "confirm": "y"})
    assert wrong.status_code == 400
    response = client.post("/account/delete", data={"password": "a-good-long-password",
                                                    "confirm": "y"})
    assert response.status_code == 302
    assert client.get("/account").status_code == 302  # logged out
    with app.app_context():
        assert get_user(email) is None
        invoices = db.session.scalars(sa.select(Invoice)).all()
        assert len(invoices) == 2
        assert all(invoice.buyer_email == email for invoice in invoices)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryAddress)) == 0
        assert db.session.get(Order, unpaid_id).state == OrderState.CANCELLED
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditNote)) == 1
        for subscription in db.session.scalars(sa.select(Subscription)):
            assert subscription.issues_remaining == 0
    assert outbox(email) == []


def test_switching_plan_shows_its_parts_without_judging_the_form(app, login_as):
    with app.app_context():
        digital_code = make_plan(kind=PlanKind.DIGITAL).code
        gift_id = make_plan(kind=PlanKind.GIFT).id
    client = login_as(Role.SUBSCRIBER)
    page = client.get(f"/checkout?plan={digital_code}").get_data(as_text=True)
    assert "addresses-0-street" not in page and "gift_recipient_name" not in page
    response = client.post("/checkout", data={"plan": str(gift_id), "update": "1",
                                              "billing_name": "Oma"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "gift_recipient_name" in page and "addresses-0-street" in page
    assert 'value="Oma"' in page and 'class="error"' not in page
    assert "subscriptions-checkout.js" in page


def test_an_error_in_a_second_address_opens_its_part_of_the_form(app, login_as):
    with app.app_context():
        plan = make_plan(kind=PlanKind.ORGANISATION)
        plan_id = plan.id
    client = login_as(Role.SUBSCRIBER)
    response = client.post("/checkout", data={
        "plan": str(plan_id), "copies": "5", "provider": "bank_transfer", "first_issue": "",
        "billing_country": "BE", "preview": "1", **ADDRESS, "addresses-0-copies": "3",
        "addresses-2-name": "Locatie 2", "addresses-2-street": "Dorp 2",
        "addresses-2-postcode": "12", "addresses-2-city": "Gent", "addresses-2-copies": "2",
        "addresses-2-country": "BE", "addresses-1-country": "BE"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<details open>" in page
    assert 'id="addresses-2-postcode-error"' in page


def test_the_account_pages_schedules_match_one_by_one(app, login_as):
    """schedules_for (one query, the account page) gives what schedule_for gives each."""
    from editorial.models import IssueState
    from subscriptions import services

    client = login_as(Role.SUBSCRIBER)
    ids = [_active_subscription(app, client.user_email) for _ in range(4)]
    today = date.today()
    with app.app_context():
        old = make_issue(print_date=today - timedelta(days=40), state=IssueState.DISPATCHED)
        closed = make_issue(print_date=today + timedelta(days=2))  # cut-off passed
        issues = [make_issue(print_date=today + timedelta(days=30 * n)) for n in (1, 2, 3)]
        subscriptions = [db.session.get(Subscription, i) for i in ids]
        for subscription, first, remaining in zip(
                subscriptions, (None, old, issues[1], closed), (2, 3, 9, 0), strict=True):
            subscription.first_issue_id = first.id if first else None
            subscription.issues_remaining = remaining
        db.session.commit()
        subscriptions = services.account_subscriptions(get_user(client.user_email))
        assert [s.id for s in subscriptions] == sorted(ids, reverse=True)
        together = services.schedules_for(subscriptions, today)
        assert together == [services.schedule_for(s, today) for s in subscriptions]
        assert together[-1].next_issue == issues[0] and together[-1].last_issue == issues[1]
        assert client.get("/account").status_code == 200
