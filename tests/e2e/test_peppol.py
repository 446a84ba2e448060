"""The coordinator sends an organisation's e-invoice through the (stand-in) access point in
a real browser, and the organisation downloads it from its account (screenshots in the test
artifacts folder)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.roles import Role
from subscriptions.peppol_models import DeliveryStatus, PeppolDelivery
from tests.conftest import ARTIFACTS
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.peppol.factories import organisation_order

pytestmark = pytest.mark.browser


def log_in(page, email: str) -> None:
    page.goto("/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


def test_coordinator_sends_and_organisation_downloads_the_e_invoice(app, page, with_peppol):
    with app.app_context():
        buyer = make_user(email="rups@example.org", name="Els Rups", locale="nl_BE")
        invoice_id = organisation_order(buyer).invoice.id
        db.session.execute(sa.delete(PeppolDelivery))  # issued before Peppol was set up
        db.session.commit()
        make_user(roles={Role.COORDINATOR}, email="coordinator@example.org", locale="nl_BE")

    log_in(page, "coordinator@example.org")
    page.goto("/business/subscriptions/peppol/")
    row = page.locator(f"#peppol-invoice-{invoice_id}")
    assert row.count() == 1
    row.locator("form button[type=submit]").click()
    page.wait_for_load_state()
    page.locator("#peppol-send-now button[type=submit]").click()
    page.wait_for_load_state()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "peppol-office.png"), full_page=True)
    assert len(with_peppol.messages) == 1
    assert with_peppol.messages[0].id in page.locator(f"#peppol-invoice-{invoice_id}").inner_text()
    with app.app_context():
        assert db.session.scalar(sa.select(PeppolDelivery.status)) == DeliveryStatus.DELIVERED

    page.context.clear_cookies()
    log_in(page, "rups@example.org")
    page.goto("/account")
    link = page.locator(f"a[href='/account/invoices/{invoice_id}.xml']")
    assert link.count() == 1
    page.screenshot(path=str(ARTIFACTS / "peppol-account.png"), full_page=True)
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.startswith("factuur-")
