"""Health check, security headers, cookies, error pages and navigation per role."""

from __future__ import annotations

from magazine import create_app
from magazine.roles import Role
from tests.conftest import app_settings, log_in
from tests.factories import make_user


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path):
    app = create_app(app_settings(f"sqlite:///{tmp_path}/missing/dir/db.sqlite", tmp_path))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "error"}


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(client):
    page = client.get("/register").get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_cookies_are_secure_httponly_and_lax_over_https(tmp_path, app):
    settings = app_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    settings["ENVIRON"]["BASE_URL"] = "https://magazine.example"
    secure_app = create_app(settings)
    from flask_migrate import upgrade

    with secure_app.app_context():
        upgrade()
        make_user(email="kim@example.org")
    client = secure_app.test_client()
    response = log_in(client, "kim@example.org")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Strict-Transport-Security" in response.headers


def test_cookie_is_httponly_and_lax_over_http(app, client):
    with app.app_context():
        make_user(email="kim@example.org")
    cookie = log_in(client, "kim@example.org").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_too_large_request_is_refused_with_a_page(app, client):
    response = client.post("/register", data="x" * (app.config["MAX_CONTENT_LENGTH"] + 1),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert "<h1>" in response.get_data(as_text=True)


def test_friendly_error_pages(client, login_as):
    assert "<h1>" in client.get("/no-such-page").get_data(as_text=True)
    forbidden = login_as(Role.SUBSCRIBER).get("/admin/")
    assert forbidden.status_code == 403 and "<h1>" in forbidden.get_data(as_text=True)


NAV = {"/editorial/": Role.BOARD_MEMBER, "/business/": Role.COORDINATOR, "/admin/": Role.ADMIN}


def nav_links(client) -> set[str]:
    page = client.get("/account").get_data(as_text=True)
    nav = page[page.index('class="main-nav"'):page.index("</nav>")]
    return {path for path in NAV if f'href="{path}"' in nav}


def test_navigation_shows_only_what_the_roles_allow(login_as):
    assert nav_links(login_as(Role.SUBSCRIBER)) == set()
    assert nav_links(login_as(Role.AUTHOR)) == {"/editorial/"}
    assert nav_links(login_as(Role.REVIEWER)) == {"/editorial/"}
    assert nav_links(login_as(Role.COORDINATOR)) == {"/business/"}
    assert nav_links(login_as(Role.BOARD_MEMBER, Role.COORDINATOR)) == {"/editorial/", "/business/"}
    assert nav_links(login_as(Role.ADMIN)) == set(NAV)


def test_anonymous_navigation_offers_login_and_registration(client):
    page = client.get("/").get_data(as_text=True)
    assert 'href="/login"' in page and 'href="/register"' in page
    assert 'href="/account"' not in page
