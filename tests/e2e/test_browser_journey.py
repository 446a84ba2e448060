"""A person's first visit, in a real browser: register, confirm the e-mail, log in."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ARTIFACTS, link_in

pytestmark = pytest.mark.browser

NAME = "Mieke Van den Broeck"
EMAIL = "mieke.browser@example.be"
PASSWORD = "een zin die ik onthoud"


def test_register_verify_log_in_and_see_account(page, live_server, outbox):
    # Register. Fields are found by id: the label texts depend on the translation.
    page.goto("/register")
    assert page.locator("main form input[name=csrf_token]").count() == 1
    page.locator("#name").fill(NAME)
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password_again").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    assert EMAIL in page.locator("main").inner_text()

    # The verification mail waits in the outbox; its link points at this server.
    mails = outbox(EMAIL)
    assert len(mails) == 1, [m.subject for m in mails]
    assert f"{live_server}/verify/" in mails[0].body_text
    page.goto(link_in(mails[0], "/verify/"))
    assert re.search(r"/login(\?|$)", page.url), page.url
    assert page.locator(".flash-success").count() == 1

    # CSRF protection is on: a post without the form's token is refused ...
    refused = page.request.post("/login", form={"email": EMAIL, "password": PASSWORD},
                                max_redirects=0)
    assert refused.status == 400, refused.status

    # ... and the browser's own form, which carries the token, gets through.
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"{live_server}/account")

    details = page.locator("dl.details")
    assert NAME in details.inner_text()
    assert EMAIL in details.inner_text()
    assert page.locator(".site-header form[action$='/logout'] button").is_visible()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "journey-account.png"), full_page=True)
