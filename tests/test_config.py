"""Settings: production needs a secret key; development makes one once and keeps it."""

from __future__ import annotations

import pytest

from magazine import create_app
from magazine.config import ConfigError, load_settings


def test_production_without_secret_key_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is required in production"):
        load_settings(tmp_path, {"APP_ENV": "production"})


def test_development_secret_key_is_made_once_and_kept(tmp_path):
    first = load_settings(tmp_path, {})["SECRET_KEY"]
    second = load_settings(tmp_path, {})["SECRET_KEY"]
    assert first == second and len(first) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_defaults_are_the_embedded_database_and_localhost(tmp_path):
    settings = load_settings(tmp_path, {})
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'magazine.db'}"
    assert settings["BASE_URL"] == "http://127.0.0.1:5000"
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["MAX_CONTENT_LENGTH"] == 16 * 1024 * 1024


def test_postgres_url_uses_psycopg(tmp_path):
    settings = load_settings(tmp_path, {"DATABASE_URL": "postgres://u@h/db"})
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_https_base_url_makes_cookies_secure(tmp_path):
    settings = load_settings(tmp_path, {"BASE_URL": "https://magazine.example/"})
    assert settings["BASE_URL"] == "https://magazine.example"
    assert settings["SESSION_COOKIE_SECURE"] and settings["REMEMBER_COOKIE_SECURE"]


def test_bad_values_say_which_setting(tmp_path):
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_settings(tmp_path, {"APP_ENV": "staging"})
    with pytest.raises(ConfigError, match="PROXY_HOPS"):
        load_settings(tmp_path, {"PROXY_HOPS": "two"})


def test_app_starts_without_provider_keys(tmp_path):
    app = create_app({"ENVIRON": {"SECRET_KEY": "k"}, "INSTANCE_PATH": str(tmp_path)})
    assert app.config["STRIPE_SECRET_KEY"] == "" and app.config["MOLLIE_API_KEY"] == ""
