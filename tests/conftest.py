"""Fixtures: the app on a migrated database (SQLite, or PostgreSQL via TEST_DATABASE_URL),
a clean database for every test, clients logged in per role, and the outbox."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from magazine import create_app
from magazine.db import db
from magazine.models import OutboxMail, User
from magazine.roles import Role
from tests.factories import DEFAULT_PASSWORD, make_user

pytest_plugins = ["tests.fakes.fixtures"]

ARTIFACTS = Path(__file__).parent / "artifacts"


def postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    return url or None


def reset_postgres(url: str) -> None:
    """Start from an empty schema: the suite makes everything through the migrations."""
    from magazine.config import load_settings

    engine_url = load_settings(Path("/tmp"), {"DATABASE_URL": url, "SECRET_KEY": "x"})[
        "SQLALCHEMY_DATABASE_URI"
    ]
    engine = sa.create_engine(engine_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def app_settings(database_url: str, instance: Path) -> dict:
    return {
        "ENVIRON": {"APP_ENV": "test", "DATABASE_URL": database_url,
                    "SECRET_KEY": "test-secret-key", "BASE_URL": "http://localhost"},
        "INSTANCE_PATH": str(instance),
        "TESTING": True,
        "WTF_CSRF_ENABLED": False,
        "PASSWORD_TIME_COST": 1,
        "PASSWORD_MEMORY_COST": 1024,
        "SERVER_NAME": None,
    }


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = postgres_url()
    if url:
        reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(app_settings(database_url, tmp_path_factory.mktemp("instance")))
    with application.app_context():
        upgrade()
    yield application


@pytest.fixture(autouse=True)
def _clean_database(request) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text(
                    "TRUNCATE " + ", ".join(f'"{name}"' for name in tables)
                    + " RESTART IDENTITY CASCADE"
                ))
            else:
                for name in tables:
                    connection.execute(sa.text(f'DELETE FROM "{name}"'))


@pytest.fixture
def app_context(app) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def log_in(client: FlaskClient, email: str, password: str = DEFAULT_PASSWORD):
    return client.post("/login", data={"email": email, "password": password})


@pytest.fixture
def login_as(app) -> Callable[..., FlaskClient]:
    """A new client logged in as a new verified user holding `roles`."""

    def factory(*roles: Role, email: str | None = None) -> FlaskClient:
        with app.app_context():
            user = make_user(roles=set(roles), email=email)
            email = user.email
            db.session.remove()
        logged_in = app.test_client()
        response = log_in(logged_in, email)
        assert response.status_code == 302, response.data
        logged_in.user_email = email  # type: ignore[attr-defined]
        return logged_in

    return factory


@pytest.fixture
def outbox(app) -> Callable[..., list[OutboxMail]]:
    """The mails in the outbox (optionally only those to one address), oldest first."""

    def read(to: str | None = None) -> list[OutboxMail]:
        with app.app_context():
            statement = sa.select(OutboxMail).order_by(OutboxMail.id)
            if to:
                statement = statement.where(OutboxMail.to_address == to)
            mails = db.session.scalars(statement).all()
            db.session.expunge_all()
            return list(mails)

    return read


def link_in(mail: OutboxMail, path_prefix: str) -> str:
    """The path of the first link in a mail that starts with `path_prefix`."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s]*)", mail.body_text)
    assert match, f"no link to {path_prefix} in:\n{mail.body_text}"
    return match.group(1)


def get_user(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))
