"""Registration, verification, login and logout, throttling, sessions, passwords, redirects."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from magazine.auth import services
from magazine.clock import shifted
from magazine.db import db
from magazine.models import AuditEvent, LoginAttempt, User, UserSession
from magazine.roles import Role
from magazine.security import safe_next
from tests.conftest import get_user, link_in, log_in
from tests.factories import DEFAULT_PASSWORD, make_user

NEW_PASSWORD = "another-long-password"


def register(client, email="els@example.org", password="een-goed-wachtwoord", again=None):
    return client.post(
        "/register",
        data={"name": "Els Van Damme", "email": email, "password": password,
              "password_again": again if again is not None else password},
    )


# ---------------------------------------------------------------- registration

def test_registration_mails_a_link_that_verifies_the_address(app, client, outbox):
    response = register(client, email="Els@Example.org ")
    assert response.status_code == 200
    assert "Els@Example.org" in response.get_data(as_text=True)

    [mail] = outbox("els@example.org")
    assert mail.template == "verify_email"
    assert mail.locale == "nl_BE"
    assert mail.subject == "Bevestig je e-mailadres"

    # Before verification the login is refused, with a way to get a new link.
    refused = log_in(client, "els@example.org", "een-goed-wachtwoord")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/verify")

    verified = client.get(link_in(mail, "/verify/"))
    assert verified.status_code == 302 and verified.headers["Location"] == "/login"
    with app.app_context():
        user = get_user("els@example.org")
        assert user.is_verified
        assert user.roles == {Role.SUBSCRIBER}

    logged_in = log_in(client, "els@example.org", "een-goed-wachtwoord")
    assert logged_in.headers["Location"] == "/account"
    assert "Els Van Damme" in client.get("/account").get_data(as_text=True)


def test_registration_refuses_bad_input_and_changes_nothing(app, client, outbox):
    assert register(client, password="kort").status_code == 400
    mismatch = register(client, password="een-goed-wachtwoord", again="iets-anders-nog")
    assert mismatch.status_code == 400
    assert register(client, email="geen-adres").status_code == 400
    assert register(client, password="wachtwoord123").status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert outbox() == []


def test_short_password_message_stands_next_to_the_field(client):
    page = register(client, password="kort").get_data(as_text=True)
    assert 'id="password-error"' in page
    assert 'aria-describedby="password-help password-error"' in page


def test_registering_a_known_address_tells_nobody_but_the_owner(app, client, outbox):
    with app.app_context():
        make_user(email="known@example.org")
    response = register(client, email="known@example.org")
    assert response.status_code == 200  # the same page as for a new address
    [mail] = outbox("known@example.org")
    assert mail.template == "account_exists"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_verification_link_for_another_address_is_refused(app, client):
    with app.app_context():
        user = make_user(verified=False)
        token = services.make_verification_token(user)
        user.email = "changed@example.org"
        db.session.commit()
    response = client.get(f"/verify/{token}")
    assert response.status_code == 302
    with app.app_context():
        assert not get_user("changed@example.org").is_verified


def test_tampered_verification_link_is_refused(client):
    response = client.get("/verify/abc.def.ghi", follow_redirects=True)
    assert "link" in response.get_data(as_text=True).lower()


# ---------------------------------------------------------------- login and logout

def test_login_and_logout(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    assert client.get("/account").status_code == 302
    response = log_in(client, "KIM@example.org")
    assert response.status_code == 302
    assert client.get("/account").status_code == 200
    client.post("/logout")
    assert client.get("/account").status_code == 302


def test_wrong_password_and_unknown_account_get_the_same_message(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    wrong = log_in(client, "kim@example.org", "not-the-password")
    unknown = log_in(client, "nobody@example.org", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert _flash(wrong) == _flash(unknown)


def _flash(response) -> str:
    page = response.get_data(as_text=True)
    start = page.index('class="flash')
    return page[start:page.index("</p>", start)]


def test_login_is_throttled_per_account(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
        assert log_in(client, "kim@example.org", "wrong-password!").status_code == 401
    # Now even the right password is refused, with the same message for unknown accounts.
    throttled = log_in(client, "kim@example.org")
    assert throttled.status_code == 429
    assert "15" in _flash(throttled)
    # After the window the account can log in again.
    with shifted(timedelta(seconds=app.config["LOGIN_WINDOW_SECONDS"] + 1)):
        assert log_in(client, "kim@example.org").status_code == 302


def test_login_is_throttled_per_address(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    for number in range(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        log_in(client, f"guess{number}@example.org", "wrong-password!")
    assert log_in(client, "kim@example.org").status_code == 429
    # Another address is not affected.
    other = app.test_client()
    response = other.post("/login", data={"email": "kim@example.org", "password": DEFAULT_PASSWORD},
                          environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert response.status_code == 302


def test_throttled_attempts_are_not_recorded(app, client):
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"] + 3):
        log_in(client, "kim@example.org", "wrong-password!")
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt))
    assert count == app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]


def test_blocked_account_cannot_log_in(app, client):
    with app.app_context():
        user = make_user(email="kim@example.org")
        user.is_blocked = True
        db.session.commit()
    assert log_in(client, "kim@example.org").status_code == 401


def test_login_gives_a_new_session(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    client.get("/login")
    before = client.get_cookie("magazine_session")
    log_in(client, "kim@example.org")
    after = client.get_cookie("magazine_session")
    assert after is not None and (before is None or before.value != after.value)
    with app.app_context():
        sessions = db.session.scalars(sa.select(UserSession)).all()
        assert len(sessions) == 1
        # Only a hash of the token is stored.
        assert len(sessions[0].token_hash) == 64


def test_copied_cookie_stops_working_after_logout(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org")
    stolen = client.get_cookie("magazine_session").value
    client.post("/logout")

    thief = app.test_client()
    thief.set_cookie("magazine_session", stolen)
    assert thief.get("/account").status_code == 302


def test_logout_ends_only_that_session(app):
    with app.app_context():
        make_user(email="kim@example.org")
    laptop, phone = app.test_client(), app.test_client()
    log_in(laptop, "kim@example.org")
    log_in(phone, "kim@example.org")
    laptop.post("/logout")
    assert laptop.get("/account").status_code == 302
    assert phone.get("/account").status_code == 200


def test_expired_session_is_refused(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org")
    with shifted(timedelta(days=app.config["SESSION_LIFETIME_DAYS"], seconds=1)):
        assert client.get("/account").status_code == 302


def test_get_logout_only_asks_to_confirm(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org")
    assert client.get("/logout").status_code == 200
    assert client.get("/account").status_code == 200


# ---------------------------------------------------------------- CSRF and redirects

def test_form_without_csrf_token_is_rejected(app, client, monkeypatch):
    with app.app_context():
        make_user(email="kim@example.org")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = log_in(client, "kim@example.org")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0


def test_form_with_csrf_token_is_accepted(app, client, monkeypatch):
    with app.app_context():
        make_user(email="kim@example.org")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    page = client.get("/login").get_data(as_text=True)
    marker = 'name="csrf_token" type="hidden" value="'
    token = page[page.index(marker) + len(marker):].split('"', 1)[0]
    response = client.post(
        "/login", data={"email": "kim@example.org", "password": DEFAULT_PASSWORD,
                        "csrf_token": token},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "/\\evil.example", "https://evil.example/", "http:evil.example",
     "/\t/evil.example", "/\n/evil.example", "javascript:alert(1)", "evil.example",
     "\\\\evil.example", "/%0d%0aSet-Cookie:x", ""],
)
def test_open_redirects_are_refused(app, client, target):
    with app.app_context():
        make_user(email="kim@example.org")
    response = client.post("/login", data={"email": "kim@example.org",
                                           "password": DEFAULT_PASSWORD, "next": target})
    location = response.headers["Location"]
    assert location == "/account" or (target.startswith("/%0d") and location == target)


def test_next_on_this_site_is_followed(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    response = client.post("/login", data={"email": "kim@example.org",
                                           "password": DEFAULT_PASSWORD,
                                           "next": "/account/password?x=1"})
    assert response.headers["Location"] == "/account/password?x=1"


def test_login_page_carries_next_from_the_query(client):
    page = client.get("/login?next=/account/password").get_data(as_text=True)
    assert 'value="/account/password"' in page


@pytest.mark.parametrize("target", ["//a.example", "/\\a.example", "/ok\x00", "ftp://x"])
def test_safe_next_rules(target):
    assert safe_next(target) is None


# ---------------------------------------------------------------- password reset

def _reset_link(client, outbox, email="kim@example.org"):
    client.post("/password/forgot", data={"email": email})
    [mail] = [m for m in outbox(email) if m.template == "reset_password"]
    return link_in(mail, "/password/reset/")


def test_password_reset_sets_a_new_password_and_ends_sessions(app, client, outbox):
    with app.app_context():
        make_user(email="kim@example.org")
    other_device = app.test_client()
    log_in(other_device, "kim@example.org")

    link = _reset_link(client, outbox)
    assert client.get(link).status_code == 200
    response = client.post(link, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 302

    assert other_device.get("/account").status_code == 302
    assert log_in(client, "kim@example.org").status_code == 401
    assert log_in(client, "kim@example.org", NEW_PASSWORD).status_code == 302
    assert any(m.template == "password_changed" for m in outbox("kim@example.org"))


def test_password_reset_link_works_once(app, client, outbox):
    with app.app_context():
        make_user(email="kim@example.org")
    link = _reset_link(client, outbox)
    client.post(link, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    again = client.post(link, data={"password": "third-password-here",
                                    "password_again": "third-password-here"})
    assert again.status_code == 302 and again.headers["Location"] == "/password/forgot"
    assert log_in(client, "kim@example.org", "third-password-here").status_code == 401


def test_password_reset_link_expires(app, client, outbox):
    with app.app_context():
        make_user(email="kim@example.org")
    link = _reset_link(client, outbox)
    # itsdangerous reads the real clock: age the link by changing what counts as too old.
    app.config["TOKEN_MAX_AGE_RESET"], saved = -1, app.config["TOKEN_MAX_AGE_RESET"]
    try:
        response = client.get(link, follow_redirects=True)
    finally:
        app.config["TOKEN_MAX_AGE_RESET"] = saved
    assert response.request.path == "/password/forgot"
    assert client.get(link).status_code == 200  # within its age it still works


def test_reset_for_unknown_address_looks_the_same_and_mails_nothing(client, outbox):
    response = client.post("/password/forgot", data={"email": "nobody@example.org"})
    assert response.status_code == 200
    assert "nobody@example.org" in response.get_data(as_text=True)
    assert outbox() == []


def test_reset_token_cannot_verify_an_address(app, client):
    with app.app_context():
        user = make_user(verified=False)
        token = services.make_reset_token(user)
    client.get(f"/verify/{token}")
    with app.app_context():
        assert not db.session.get(User, user.id).is_verified


# ---------------------------------------------------------------- password change

def test_password_change_keeps_this_session_and_ends_the_others(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    other = app.test_client()
    log_in(other, "kim@example.org")
    log_in(client, "kim@example.org")
    response = client.post("/account/password", data={
        "current_password": DEFAULT_PASSWORD, "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    with app.app_context():
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent)
            .where(AuditEvent.action == "user.password_changed")
        ) == 1


def test_password_change_needs_the_current_password(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org")
    response = client.post("/account/password", data={
        "current_password": "not-my-password", "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD})
    assert response.status_code == 200
    assert 'id="current_password-error"' in response.get_data(as_text=True)
    client.post("/logout")
    assert log_in(client, "kim@example.org").status_code == 302


def test_passwords_are_hashed_with_argon2(app):
    with app.app_context():
        user = make_user()
        assert user.password_hash.startswith("$argon2id$")
        assert DEFAULT_PASSWORD not in user.password_hash


# ---------------------------------------------------------------- invitations

def test_invitation_lets_the_person_choose_a_password(app, client, outbox):
    with app.app_context():
        admin = make_user(roles={Role.ADMIN})
        services.invite_user("author@example.org", "Nora Author", {Role.AUTHOR}, actor=admin)
        db.session.commit()
    [mail] = outbox("author@example.org")
    link = link_in(mail, "/invitation/")
    response = client.post(link, data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert log_in(client, "author@example.org", NEW_PASSWORD).status_code == 302
    assert client.get("/editorial/").status_code == 200
    # The link worked once.
    assert client.get(link).status_code == 302


def test_logout_keeps_the_language_being_read(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    log_in(client, "kim@example.org")
    client.post("/language", data={"locale": "en"})
    page = client.post("/logout", follow_redirects=True).get_data(as_text=True)
    assert "You are logged out." in page and 'lang="en"' in page


# ---------------------------------------------------------------- profile

def test_name_change_is_saved_and_audited(app, client):
    with app.app_context():
        make_user(email="kim@example.org", name="Kim")
    log_in(client, "kim@example.org")
    response = client.post("/account/profile", data={"profile-name": "  Kim Peeters "})
    assert response.status_code == 302
    with app.app_context():
        assert get_user("kim@example.org").name == "Kim Peeters"
    assert client.post("/account/profile", data={"profile-name": " "}).status_code == 400


def test_email_change_happens_only_when_the_new_address_confirms(app, client, outbox):
    with app.app_context():
        make_user(email="kim@example.org")
        make_user(email="taken@example.org")
    log_in(client, "kim@example.org")
    wrong_password = client.post("/account/profile", data={
        "email-email": "new@example.org", "email-password": "not-my-password"})
    assert wrong_password.status_code == 400
    taken = client.post("/account/profile", data={
        "email-email": "taken@example.org", "email-password": DEFAULT_PASSWORD})
    assert taken.status_code == 400 and outbox("taken@example.org") == []

    client.post("/account/profile", data={
        "email-email": "New@Example.org", "email-password": DEFAULT_PASSWORD})
    with app.app_context():
        assert get_user("kim@example.org") is not None  # nothing changed yet
    [mail] = outbox("new@example.org")
    link = link_in(mail, "/account/email/")
    assert client.get(link).status_code == 200
    with app.app_context():
        assert get_user("new@example.org") is not None
        assert get_user("kim@example.org") is None
    assert [m.template for m in outbox("kim@example.org")] == ["email_changed"]
    # The link works once.
    assert client.get(link).status_code == 400
    assert len(outbox("kim@example.org")) == 1
    client.post("/logout")
    assert log_in(client, "new@example.org").status_code == 302
