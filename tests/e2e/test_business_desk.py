"""The coordinator's desk on the demo data, with its charts (a screenshot to look at)."""

from __future__ import annotations

import pytest

from business.months import month_no
from magazine.clock import BRUSSELS, now_utc
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def test_desk_with_charts_on_demo_data(app, browser, live_server):
    from magazine.demo import load_demo

    with app.app_context():
        load_demo()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server)
    page = context.new_page()
    try:
        page.goto("/login")
        page.locator("#email").fill("coordinator@demo.example")
        page.locator("#password").fill("demo-password")
        page.locator("main form button[type=submit]").click()
        page.wait_for_load_state()
        today = now_utc().astimezone(BRUSSELS).date()
        first = month_no(today) - 23
        page.goto(f"/business/?start={first // 12}-{first % 12 + 1:02d}&end={today:%Y-%m}")
        assert page.locator("svg.chart").count() == 3
        # Every chart has bars (the demo has two years of history).
        for index in range(3):
            assert page.locator("svg.chart").nth(index).locator("rect").count() > 20
        page.locator("details.definition summary").first.click()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "business-desk.png"), full_page=True)
        page.locator("#subscribers").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "business-desk-charts.png"))
    finally:
        context.close()
