"""The cache of the account page (magazine.pagecache): a hit on the second request, and every
kind of change shows on the very next request, whoever made it; nothing crosses sessions."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import sqlalchemy as sa

from magazine.auth import services as auth_services
from magazine.clock import shifted
from magazine.db import db
from magazine.pagecache import GLOBAL, PageStamp, page_cache
from magazine.roles import Role
from subscriptions import services
from subscriptions.models import Order, Plan, Subscription
from tests.conftest import get_user, log_in
from tests.factories import make_user
from tests.subscriptions.factories import make_plan, place

ADDRESS_CHANGE = {"group_no": "1", "address-name": "Els", "address-street": "Dorp 1",
                  "address-postcode": "2000", "address-city": "Antwerpen",
                  "address-country": "BE"}


@pytest.fixture
def cache(app):
    return page_cache(app)


def account(client) -> str:
    response = client.get("/account")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def cached_account(client, cache) -> str:
    """The account page, asserting that it came from the cache."""
    hits = cache.hits
    page = account(client)
    assert cache.hits == hits + 1, "expected a cached page"
    return page


def fresh_account(client, cache) -> str:
    """The account page, asserting that it was rendered anew."""
    hits = cache.hits
    page = account(client)
    assert cache.hits == hits, "expected a freshly rendered page"
    return page


def subscriber_with_order(app, login_as, *, paid: bool = True):
    client = login_as(Role.SUBSCRIBER)
    with app.app_context():
        buyer = get_user(client.user_email)
        order = place(make_plan(), buyer)
        if paid:
            services.record_bank_transfer(order, actor=make_user(roles={Role.COORDINATOR}))
            db.session.commit()
        ids = (buyer.id, order.id, order.subscriptions[0].id, order.subscriptions[0].plan_id)
        db.session.remove()
    return client, ids


def stamps(app) -> dict[int, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(PageStamp.user_id, PageStamp.stamp)).all())


# ---------------------------------------------------------------- hits

def test_second_request_is_served_from_the_cache_and_is_the_same_page(app, login_as, cache):
    client, _ = subscriber_with_order(app, login_as)
    first = fresh_account(client, cache)
    assert cached_account(client, cache) == first
    assert "actief" in first


def test_a_cached_page_does_not_set_the_session_cookie_again(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    response = client.get("/account")
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_the_cache_can_be_switched_off(app, login_as, monkeypatch):
    monkeypatch.delitem(app.extensions, "magazine_page_cache")
    client = login_as(Role.SUBSCRIBER)
    assert account(client) == account(client)


def test_pages_are_dropped_when_they_exceed_the_cache_or_grow_old():
    from magazine.pagecache import PageCache

    small = PageCache(max_bytes=400, max_age=60)
    for n in range(5):
        small.put(("account", n, "s"), ("v",), "x" * 100)
    assert small.get(("account", 0, "s"), ("v",)) is None  # least recently used: gone
    assert small.get(("account", 4, "s"), ("v",)) == "x" * 100
    assert small.get(("account", 4, "s"), ("other",)) is None
    small.max_age = -1
    assert small.get(("account", 4, "s"), ("v",)) is None


# ---------------------------------------------------------------- every change shows at once

def test_a_change_made_through_a_web_request_shows_at_once(app, login_as, cache):
    client, (_, _, subscription_id, _) = subscriber_with_order(app, login_as)
    account(client)
    assert "aan" in cached_account(client, cache)
    client.post(f"/account/subscriptions/{subscription_id}/auto-renew",
                data={"auto_renew": "0", "reason": "Te duur"})
    client.get(f"/account/subscriptions/{subscription_id}")  # shows (and clears) the flash
    page = fresh_account(client, cache)
    assert "eindigt na het laatste nummer" in page or "uit" in page
    with app.app_context():
        assert not db.session.get(Subscription, subscription_id).auto_renew


def test_a_name_change_shows_at_once_and_the_flash_is_not_cached(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    cached_account(client, cache)
    response = client.post("/account/profile", data={"profile-name": "Els Nieuwnaam"},
                           follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Je naam is bewaard." in page and "Els Nieuwnaam" in page
    again = account(client)
    assert "Els Nieuwnaam" in again and "Je naam is bewaard." not in again
    assert cached_account(client, cache) == again


def test_a_bulk_update_through_the_session_shows_at_once(app, login_as, cache):
    client, (_, _, subscription_id, _) = subscriber_with_order(app, login_as)
    account(client)
    cached_account(client, cache)
    with app.app_context():
        db.session.execute(sa.update(Subscription).where(Subscription.id == subscription_id)
                           .values(auto_renew=False).execution_options(
                               synchronize_session=False))
        db.session.commit()
    assert re.search(r"<td>uit</td>", fresh_account(client, cache))
    cached_account(client, cache)
    # A plan's name is on everyone's page: an unrestricted update bumps the global stamp.
    with app.app_context():
        db.session.execute(sa.update(Plan).values(name_nl="Hernoemde formule"))
        db.session.commit()
    assert "Hernoemde formule" in fresh_account(client, cache)


def test_a_bulk_update_by_owner_bumps_only_that_user(app, login_as, cache):
    _, (user_id, order_id, _, _) = subscriber_with_order(app, login_as)
    before = stamps(app)
    with app.app_context():
        db.session.execute(sa.update(Order).where(Order.id == order_id)
                           .values(billing_po_reference="PO-77"))
        db.session.commit()
    after = stamps(app)
    assert after[user_id] != before.get(user_id)
    assert after.get(GLOBAL) == before.get(GLOBAL)


def test_a_change_on_a_connection_of_its_own_shows_at_once(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    cached_account(client, cache)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET name = 'Via Een Andere Verbinding' "
                                   "WHERE email = :email"), {"email": client.user_email})
    assert "Via Een Andere Verbinding" in fresh_account(client, cache)
    cached_account(client, cache)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(sa.table("users", sa.column("name"), sa.column("email")))
                           .where(sa.column("email") == client.user_email)
                           .values(name="Nog Een Naam"))
    assert "Nog Een Naam" in fresh_account(client, cache)


def test_a_change_made_by_another_process_shows_at_once(app, login_as, cache, tmp_path):
    client, (_, _, subscription_id, _) = subscriber_with_order(app, login_as)
    account(client)
    cached_account(client, cache)
    script = textwrap.dedent(f"""
        from magazine import create_app
        from magazine.db import db
        from subscriptions.models import Subscription
        from tests.conftest import app_settings

        app = create_app(app_settings({app.config["SQLALCHEMY_DATABASE_URI"]!r},
                                      __import__("pathlib").Path({str(tmp_path)!r})))
        with app.app_context():
            db.session.get(Subscription, {subscription_id}).auto_renew = False
            db.session.commit()
    """)
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://",
                                                         "postgresql://")
    script = script.replace(repr(app.config["SQLALCHEMY_DATABASE_URI"]), repr(url))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert re.search(r"<td>uit</td>", fresh_account(client, cache))


def test_an_address_change_shows_at_once(app, login_as, cache):
    client, (_, _, subscription_id, _) = subscriber_with_order(app, login_as)
    assert "Antwerpen" not in account(client)
    cached_account(client, cache)
    response = client.post(f"/account/subscriptions/{subscription_id}/address",
                           data=ADDRESS_CHANGE)
    assert response.status_code == 302
    client.get(response.headers["Location"])  # the flash
    assert "Antwerpen" in fresh_account(client, cache)


def test_a_language_switch_shows_at_once(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    assert "Mijn account" in account(client)
    cached_account(client, cache)
    client.post("/language", data={"locale": "en", "next": "/account"})
    assert "My account" in account(client)
    assert "My account" in cached_account(client, cache)
    client.post("/language", data={"locale": "nl_BE", "next": "/account"})
    assert "Mijn account" in account(client)


def test_a_new_day_renders_anew(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    cached_account(client, cache)
    with shifted(timedelta(days=1)):
        fresh_account(client, cache)


def test_a_role_granted_by_an_admin_shows_at_once(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    assert "/editorial/" not in account(client)
    cached_account(client, cache)
    with app.app_context():
        admin = make_user(roles={Role.ADMIN})
        auth_services.set_roles(get_user(client.user_email),
                                {Role.SUBSCRIBER, Role.AUTHOR}, actor=admin)
        db.session.commit()
    assert "/editorial/" in fresh_account(client, cache)


# ---------------------------------------------------------------- nothing crosses sessions

def csrf_tokens(page: str) -> set[str]:
    return set(re.findall(r'name="csrf_token" type="hidden" value="([^"]+)"', page))


def test_one_session_s_page_never_reaches_another(app, login_as, cache, monkeypatch):
    first = login_as(Role.SUBSCRIBER, email="els@example.org")
    second_session = app.test_client()
    log_in(second_session, "els@example.org")
    other_user = login_as(Role.SUBSCRIBER, email="jan@example.org")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)

    mine = account(first)
    assert cached_account(first, cache) == mine
    other_session_page = fresh_account(second_session, cache)
    others = fresh_account(other_user, cache)

    assert csrf_tokens(mine) and csrf_tokens(other_session_page) and csrf_tokens(others)
    assert not csrf_tokens(mine) & csrf_tokens(other_session_page)
    assert "els@example.org" in mine and "jan@example.org" not in mine
    assert "jan@example.org" in others and "els@example.org" not in others
    # The cached page's token is good for this session's forms.
    [token] = csrf_tokens(cached_account(first, cache))
    switched = first.post("/language", data={"locale": "en", "next": "/account",
                                             "csrf_token": token})
    assert switched.status_code == 302
    other_token = next(iter(csrf_tokens(other_session_page)))
    refused = first.post("/language", data={"locale": "nl_BE", "next": "/account",
                                            "csrf_token": other_token})
    assert refused.status_code == 400


def test_a_logged_out_or_revoked_session_gets_no_cached_page(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    copy = app.test_client()
    log_in(copy, client.user_email)
    account(client)
    cached_account(client, cache)
    account(copy)
    cached_account(copy, cache)

    client.post("/logout")
    assert client.get("/account").status_code == 302

    with app.app_context():
        auth_services.revoke_sessions(get_user(client.user_email))
        db.session.commit()
    response = copy.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_expired_session_gets_no_cached_page(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    cached_account(client, cache)
    with shifted(timedelta(days=app.config["SESSION_LIFETIME_DAYS"], seconds=1)):
        assert client.get("/account").status_code == 302


def test_flashed_messages_are_neither_served_from_nor_put_in_the_cache(app, login_as, cache):
    client = login_as(Role.SUBSCRIBER)
    account(client)
    cached_account(client, cache)
    with client.session_transaction() as cookie_session:
        cookie_session["_flashes"] = [("info", "Een bericht voor jou")]
    assert "Een bericht voor jou" in fresh_account(client, cache)
    assert "Een bericht voor jou" not in cached_account(client, cache)


# ---------------------------------------------------------------- the stamps

def test_stamps_are_written_last_users_in_order_then_the_global_row(app, login_as):
    with app.app_context():
        users = [make_user() for _ in range(3)]
        plan = make_plan()
        ids = sorted(user.id for user in users)
        statements = []

        def capture(_conn, _cursor, statement, *_args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", capture)
        try:
            for user in reversed(users):
                user.name = user.name + " (gewijzigd)"
            db.session.get(Plan, plan.id).name_nl = "Nieuwe naam"
            db.session.commit()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", capture)
    stamp_writes = [i for i, s in enumerate(statements) if "page_stamps" in s]
    assert len(stamp_writes) == 2  # the users' rows in one statement, then the global row
    assert stamp_writes[0] > max(i for i, s in enumerate(statements)
                                 if "UPDATE users" in s or "UPDATE plans" in s)
    written = stamps(app)
    assert all(uid in written for uid in ids) and GLOBAL in written


def test_reading_and_writing_other_tables_bumps_nothing(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    before = stamps(app)
    account(client)
    client.get("/healthz")
    with app.app_context():
        from magazine import audit

        audit.record("test.nothing", "user", 1, actor=None)
        db.session.commit()
    assert stamps(app) == before


def test_a_rolled_back_change_bumps_nothing(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    before = stamps(app)
    with app.app_context():
        get_user(client.user_email).name = "Nooit Bewaard"
        db.session.flush()
        db.session.rollback()
        db.session.commit()
    assert stamps(app) == before


def test_deleted_addresses_bump_their_subscriber_only(app, login_as):
    _, (user_id, _, subscription_id, _) = subscriber_with_order(app, login_as)
    before = stamps(app)
    with app.app_context():
        subscription = db.session.get(Subscription, subscription_id)
        for address in list(subscription.addresses):
            db.session.delete(address)
        db.session.commit()
    after = stamps(app)
    assert after[user_id] != before.get(user_id)
    assert after.get(GLOBAL) == before.get(GLOBAL)  # its subscription is there: precise


def test_a_mass_change_bumps_the_global_stamp_instead(app, monkeypatch):
    import magazine.pagecache

    monkeypatch.setattr(magazine.pagecache, "MAX_PRECISE", 2)
    with app.app_context():
        users = [make_user() for _ in range(3)]
        ids = [user.id for user in users]
        before = stamps(app)
        for user in users:
            user.name = user.name + " (gewijzigd)"
        db.session.commit()
    after = stamps(app)
    assert after.get(GLOBAL) != before.get(GLOBAL)
    assert all(after.get(uid) == before.get(uid) for uid in ids)


def test_textual_dml_through_the_session_bumps_the_global_stamp(app, login_as):
    client = login_as(Role.SUBSCRIBER)
    before = stamps(app)
    with app.app_context():
        db.session.execute(sa.text("UPDATE users SET name = 'Tekst' WHERE email = :email"),
                           {"email": client.user_email})
        db.session.execute(sa.text("UPDATE outbox_mails SET attempts = attempts"))
        db.session.commit()
    assert stamps(app).get(GLOBAL) != before.get(GLOBAL)
    assert "Tekst" in account(client)


@pytest.mark.parametrize(("sql", "effect"), [
    ("UPDATE users SET name = 'x'", True),
    ('UPDATE "public"."users" SET name = \'x\'', True),
    ("update public.outbox_mails set attempts = 0", False),
    ('DELETE FROM "orders"', True),
    ("INSERT OR IGNORE INTO mandates VALUES (1)", True),
    ("WITH moved AS (UPDATE subscriptions SET copies = 1 RETURNING id) SELECT 1", True),
    ("WITH x AS (SELECT 1) SELECT * FROM x", False),
    ("TRUNCATE audit_events, users", True),
    ("SELECT 1", False),
    ("PRAGMA busy_timeout = 200", False),
    ("CREATE TABLE x (a integer)", None),
])
def test_textual_statements_are_read_conservatively(sql, effect):
    from magazine.pagecache import _text_effect

    assert _text_effect(sql) is effect


def test_what_a_statement_bumps():
    from magazine.models import User
    from magazine.pagecache import _statement_effect
    from subscriptions.models import DeliveryAddress, Mandate

    assert _statement_effect(sa.update(Order).where(Order.id == 7).values(state="paid"),
                             []) == (False, [("@orders", [7])])
    assert _statement_effect(sa.update(Order).where(Order.user_id.in_([3, 4]))
                             .values(state="paid"), []) == (False, [("orders", [3, 4])])
    assert _statement_effect(sa.update(Order).where(Order.id == 7).values(user_id=5),
                             []) == (True, [])  # a new owner: in doubt
    assert _statement_effect(sa.update(Subscription).values(copies=1), []) == (True, [])
    assert _statement_effect(sa.update(User).where(User.id == 9).values(name="x"),
                             []) == (False, [("users", [9])])
    assert _statement_effect(sa.delete(DeliveryAddress).where(
        DeliveryAddress.subscription_id == 2), []) == (False, [("delivery_addresses", [2])])
    assert _statement_effect(sa.insert(Mandate), [{"user_id": 1}, {"user_id": 2}]) == (
        False, [("mandates", [1, 2])])
    assert _statement_effect(sa.update(Plan).where(Plan.id == 1).values(name_nl="x"),
                             []) == (True, [])
