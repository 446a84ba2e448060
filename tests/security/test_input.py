"""Input no browser sends, refused before any view runs (found by the fuzz test: PostgreSQL
cannot store a NUL character, so a form carrying one failed with a 500)."""

from __future__ import annotations

from magazine.roles import Role


def test_nul_character_in_a_form_or_url_is_a_bad_request_and_changes_nothing(app, login_as):
    from magazine.db import db
    from tests.conftest import get_user

    client = login_as(Role.SUBSCRIBER)
    with app.app_context():
        name_before = get_user(client.user_email).name
        db.session.remove()

    answers = [client.post("/account/profile", data={"name": "Jan\x00", "locale": "en"}),
               client.post("/login", data={"email": "a\x00@example.org", "password": "x"}),
               client.get("/plans?zone=%00")]

    assert [a.status_code for a in answers] == [400, 400, 400]
    with app.app_context():
        assert get_user(client.user_email).name == name_before
