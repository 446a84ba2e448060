"""The coordinator's desk on the demo data, with its charts (screenshots to look at), on a
desktop and on a phone-sized window."""

from __future__ import annotations

import pytest

from business.months import month_no
from magazine.clock import BRUSSELS, now_utc
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def _log_in(page) -> None:
    page.goto("/login")
    page.locator("#email").fill("coordinator@demo.example")
    page.locator("#password").fill("demo-password")
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


def test_desk_with_charts_on_demo_data(app, browser, live_server):
    from magazine.demo import load_demo

    with app.app_context():
        load_demo()
    today = now_utc().astimezone(BRUSSELS).date()
    first = month_no(today) - 23
    two_years = f"/business/?start={first // 12}-{first % 12 + 1:02d}&end={today:%Y-%m}"
    ARTIFACTS.mkdir(exist_ok=True)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server)
    page = context.new_page()
    try:
        _log_in(page)
        page.goto(two_years)
        charts = page.locator("svg.chart")
        assert charts.count() == 3
        # Every chart has bars (two years of history); the first also the MRR line with
        # its own axis on the right.
        for index in range(3):
            assert charts.nth(index).locator("rect").count() > 20
        assert charts.nth(0).locator("polyline.s-mrr").count() == 1
        assert charts.nth(0).locator("text.s-mrr-axis").count() >= 3
        # The dispatched issues of the two years, with recognised revenue and renewal rate.
        assert page.locator("#issues ~ .table-wrap table tbody tr").first.is_visible()
        issue_rows = page.locator("caption:has(a[href*='issues.csv']) ~ tbody tr")
        assert issue_rows.count() >= 9
        cohort_rows = page.locator("caption:has(a[href*='cohorts.csv']) ~ tbody tr")
        assert cohort_rows.count() >= 8
        page.locator("details.definition summary").first.click()
        page.screenshot(path=str(ARTIFACTS / "business-desk.png"), full_page=True)
        page.locator("#subscribers").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "business-desk-charts.png"))
        # A period that ended: its figures at its end, today's apart.
        page.goto(f"/business/?start={first // 12}-{first % 12 + 1:02d}"
                  f"&end={(first + 11) // 12}-{(first + 11) % 12 + 1:02d}")
        assert page.locator("#now").inner_text() != page.locator("#today").inner_text()
        page.screenshot(path=str(ARTIFACTS / "business-desk-past-period.png"))
    finally:
        context.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, base_url=live_server,
                                is_mobile=True, has_touch=True)
    page = phone.new_page()
    try:
        _log_in(page)
        page.goto(two_years)
        # Nothing wider than the window but the tables' own scrolling boxes.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        # The charts keep a readable size and scroll sideways inside their own box.
        assert page.locator("figure.chart-wide").first.bounding_box()["width"] <= 390
        assert page.locator("svg.chart").first.bounding_box()["width"] >= 600
        page.screenshot(path=str(ARTIFACTS / "business-desk-phone.png"), full_page=True)
        page.locator("#subscribers").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "business-desk-phone-charts.png"))
    finally:
        phone.close()
