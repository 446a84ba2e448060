"""A newcomer subscribes an organisation to 5 printed copies and pays by bank transfer, in a
real browser: they see the QR code and the invoice; the coordinator records the transfer;
the subscriber sees the subscription active."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.roles import Role
from subscriptions.models import Order, PlanKind
from tests.conftest import ARTIFACTS
from tests.factories import DEFAULT_PASSWORD, make_issue, make_user
from tests.subscriptions.factories import make_plan

pytestmark = pytest.mark.browser

EMAIL = "els.peeters@derups.example"
PASSWORD = "onze kinderen lezen mee"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"subscription-{name}.png"), full_page=True)


def test_organisation_subscribes_pays_by_transfer_and_becomes_active(
        app, page, browser, live_server):
    with app.app_context():
        make_issue(volume=4, number=3, print_date=date.today() + timedelta(days=30))
        plan = make_plan(kind=PlanKind.ORGANISATION, price_cents=6500, code="organisatie",
                         bands=[(5, 5500), (10, 4900)])
        plan_id = plan.id
        digital_id = make_plan(kind=PlanKind.DIGITAL, price_cents=3900, code="digitaal").id
        coordinator = make_user(roles={Role.COORDINATOR}, email="coordinator@example.be")
        coordinator_email = coordinator.email
        db.session.remove()

    # The plans page leads to the checkout of the chosen plan.
    page.goto("/plans")
    shot(page, "plans")
    page.locator("a[href$='/checkout?plan=organisatie']").click()
    page.wait_for_url("**/checkout?plan=organisatie")
    assert page.locator(f"input[name=plan][value='{plan_id}']").is_checked()
    # Choosing another plan shows that plan's parts (static/js: no button to press).
    assert page.locator("button[name=update]").is_hidden()
    with page.expect_navigation():
        page.locator(f"input[name=plan][value='{digital_id}']").check()
    assert page.locator("#addresses-0-street").count() == 0
    with page.expect_navigation():
        page.locator(f"input[name=plan][value='{plan_id}']").check()
    assert page.locator("#addresses-0-street").count() == 1

    page.locator("#copies").fill("5")
    page.locator("#account_name").fill("Els Peeters")
    page.locator("#account_email").fill(EMAIL)
    page.locator("#account_password").fill(PASSWORD)
    page.locator("#addresses-0-name").fill("Els Peeters")
    page.locator("#addresses-0-organisation").fill("Kinderdagverblijf De Rups")
    page.locator("#addresses-0-street").fill("Kerkstraat 12")
    page.locator("#addresses-0-postcode").fill("9000")
    page.locator("#addresses-0-city").fill("Gent")
    page.locator("#billing_organisation").fill("De Rups vzw")
    page.locator("#billing_vat_number").fill("BE 0403.019.261")
    page.locator("#billing_po_reference").fill("PO-2026-17")

    # The summary first: 5 × 55,00 with the VAT split, nothing ordered yet.
    page.locator("button[name=preview]").last.click()
    page.wait_for_load_state()
    if page.locator("table.summary").count() == 0:
        shot(page, "checkout-error")
        pytest.fail(page.locator("main").inner_text())
    summary = page.locator("table.summary").inner_text()
    assert "275,00" in summary and "15,57" in summary, summary
    shot(page, "checkout-summary")
    # The password is not sent back to the browser: type it again.
    page.locator("#account_password").fill(PASSWORD)
    page.locator("button[name=place]").click()
    page.wait_for_url("**/account/orders/*")

    # Bank details, structured communication and a QR code that loads.
    with app.app_context():
        order = db.session.scalar(sa.select(Order))
        communication = order.formatted_communication
        invoice_id = order.invoice.id
        db.session.remove()
    box = page.locator(".payment-box").inner_text()
    assert communication in box and "BE71096123456769" in box and "275,00" in box
    qr = page.locator(".payment-box img")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")
    shot(page, "order")
    invoice_link = page.locator(f"a[href$='/account/invoices/{invoice_id}.pdf']")
    assert invoice_link.count() == 1
    pdf = page.request.get(invoice_link.get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    assert "awaiting" in page.locator("main").inner_text().lower() or \
        "wacht op betaling" in page.locator("main").inner_text()

    # The coordinator finds the order and records the transfer.
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  base_url=live_server)
    office = context.new_page()
    office.goto("/login")
    office.locator("#email").fill(coordinator_email)
    office.locator("#password").fill(DEFAULT_PASSWORD)
    office.locator("main form button[type=submit]").click()
    office.wait_for_url("**/account")
    office.goto("/business/subscriptions/")
    office.locator("#q").fill(communication)
    office.locator("form[role=search] button").click()
    assert "Els Peeters" in office.locator("main table").first.inner_text()
    shot(office, "office-index")
    office.locator(f"a:text('{order.reference}')").first.click()
    office.wait_for_url("**/business/subscriptions/orders/*")
    office.locator("form[action$='/transfer'] button[type=submit]").first.click()
    office.wait_for_load_state()
    assert office.locator(".flash-success").count() == 1
    shot(office, "office-order-paid")
    context.close()

    # The subscriber sees the subscription active.
    page.goto("/account")
    row = page.locator("#my-subscriptions ~ .table-wrap tbody tr").first
    text = row.inner_text().lower()
    assert "actief" in text or "active" in text, text
    assert "5" in text
    shot(page, "account-active")
