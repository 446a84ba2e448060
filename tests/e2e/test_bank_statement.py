"""The coordinator imports a bank statement in a real browser and matches the rest by hand
(screenshots to look at, in the test artifacts folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from magazine.db import db
from magazine.roles import Role
from tests.conftest import ARTIFACTS
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.subscriptions.factories import make_plan, place

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).parent.parent / "subscriptions" / "statements"


def test_import_a_statement_and_match_a_transfer_by_hand(app, page):
    with app.app_context():
        plan = make_plan(price_cents=6500)
        for communication, name in [("100000010138", "Sofie Peeters"),
                                    ("100000020242", "Het Nest"),
                                    ("100000030346", "Jonas Maes"),
                                    ("100000070762", "Kinderdagverblijf De Rups")]:
            order = place(plan, make_user(name=name))
            order.structured_communication = communication
        db.session.commit()
        make_user(roles={Role.COORDINATOR}, email="coordinator@example.org", locale="nl_BE")
    page.goto("/login")
    page.locator("#email").fill("coordinator@example.org")
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()

    page.goto("/business/subscriptions/bank-statement")
    page.locator("#statement").set_input_files(str(SAMPLES / "camt053_day1.xml"))
    page.locator("#statement-form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#statement-result").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bank-statement-import.png"), full_page=True)

    page.goto("/business/subscriptions/bank-entries")
    page.screenshot(path=str(ARTIFACTS / "bank-entries.png"), full_page=True)
    page.locator("#unmatched-entries a.button").last.click()
    page.wait_for_load_state()
    page.locator("#q").fill("rups")
    page.locator("#invoice-search button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#candidates tbody tr").count() == 1
    page.screenshot(path=str(ARTIFACTS / "bank-entry-match.png"), full_page=True)
    page.locator("#candidates button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator(".flash-success").count() == 1

    # A broken file: the message sits at the upload field.
    page.goto("/business/subscriptions/bank-statement")
    page.locator("#statement").set_input_files(str(SAMPLES / "coda_half_bad.cod"))
    page.locator("#statement-form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#statement-error").count() == 1
    assert page.locator("#statement-problems tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "bank-statement-bad-file.png"), full_page=True)
