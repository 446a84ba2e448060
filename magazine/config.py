"""The one place for settings.

Every setting comes from the environment; a `.env` file in the project root is read when
present (values already in the environment win). `load_settings()` turns them into the
Flask config mapping that `create_app` uses. Nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENTS = ("development", "production", "test")


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc


def _int_list(name: str, value: str | None, default: list[int]) -> list[int]:
    """`1,3,7` → [1, 3, 7] (days, e.g. between renewal attempts)."""
    if value is None or not value.strip():
        return default
    return [_int(name, part.strip(), 0) for part in value.split(",") if part.strip()]


def _concurrency(value: str | None) -> int:
    number = _int("RENEWAL_CONCURRENCY", value, 4)
    if not 1 <= number <= 8:
        raise ConfigError(f"RENEWAL_CONCURRENCY must be from 1 to 8, got {number}")
    return number


def _batch_size(value: str | None) -> int:
    number = _int("RENEWAL_BATCH_SIZE", value, 100)
    if not 1 <= number <= 500:
        raise ConfigError(f"RENEWAL_BATCH_SIZE must be from 1 to 500, got {number}")
    return number


# Days before the print date for each deadline of an issue (editable per issue).
DEFAULT_DEADLINE_OFFSETS = {
    "copy_deadline": 42,
    "board_meeting": 35,
    "layout_deadline": 28,
    "proof_deadline": 14,
    "printer_deadline": 7,
    "dispatch_cutoff": 5,
}


def _offsets(value: str | None) -> dict[str, int]:
    """`copy_deadline=42,proof_deadline=14`: the named offsets replace the defaults."""
    offsets = dict(DEFAULT_DEADLINE_OFFSETS)
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, _, days = part.partition("=")
        name = name.strip()
        if name not in offsets:
            raise ConfigError(
                f"ISSUE_DEADLINE_OFFSETS: unknown deadline {name!r}; "
                f"use {', '.join(DEFAULT_DEADLINE_OFFSETS)}"
            )
        offsets[name] = _int("ISSUE_DEADLINE_OFFSETS", days.strip(), 0)
    return offsets


def _development_secret_key(instance_path: Path) -> str:
    """Generate a secret key once and keep it under instance/ so sessions survive restarts."""
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Written with 0600 rights: the key signs sessions and tokens.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_settings(instance_path: Path, environ: dict[str, str] | None = None) -> dict:
    """Read the settings from the environment (and `.env`) into a Flask config mapping."""
    if environ is None:
        load_dotenv(PROJECT_ROOT / ".env", override=False)
        environ = dict(os.environ)
    env = environ.get("APP_ENV", "development").strip() or "development"
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    secret_key = environ.get("SECRET_KEY", "").strip()
    if not secret_key:
        if env == "production":
            raise ConfigError(
                "SECRET_KEY is required in production: set it to a long random value, e.g. "
                "the output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        secret_key = _development_secret_key(instance_path)

    database_url = environ.get("DATABASE_URL", "").strip() or (
        f"sqlite:///{instance_path / 'magazine.db'}"
    )
    # SQLAlchemy wants an explicit driver name for psycopg 3.
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://"):]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]

    base_url = environ.get("BASE_URL", "").strip().rstrip("/") or (
        f"http://127.0.0.1:{environ.get('PORT', '5000')}"
    )
    https = base_url.startswith("https://")

    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        # No `pool_pre_ping`: a server connection idle for a while is tested at checkout
        # instead (magazine.db.ping_when_idle).
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "BASE_URL": base_url,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "MAIL_URL": environ.get("MAIL_URL", "").strip(),
        "MAIL_FROM": environ.get("MAIL_FROM", "").strip()
        or "Tijdschrift Kinderopvang <redactie@kinderopvang.example>",
        "MAIL_MAX_ATTEMPTS": _int("MAIL_MAX_ATTEMPTS", environ.get("MAIL_MAX_ATTEMPTS"), 8),
        "STRIPE_SECRET_KEY": environ.get("STRIPE_SECRET_KEY", "").strip(),
        "STRIPE_WEBHOOK_SECRET": environ.get("STRIPE_WEBHOOK_SECRET", "").strip(),
        "STRIPE_API_BASE": environ.get("STRIPE_API_BASE", "").strip(),
        "MOLLIE_API_KEY": environ.get("MOLLIE_API_KEY", "").strip(),
        "MOLLIE_API_ENDPOINT": environ.get("MOLLIE_API_ENDPOINT", "").strip(),
        # Seconds to wait for Stripe or Mollie before saying "try again" (connect and read).
        "PROVIDER_TIMEOUT_SECONDS": _int(
            "PROVIDER_TIMEOUT_SECONDS", environ.get("PROVIDER_TIMEOUT_SECONDS"), 10
        ),
        "BANK_IBAN": environ.get("BANK_IBAN", "").strip() or "BE71096123456769",
        "BANK_BIC": environ.get("BANK_BIC", "").strip() or "GKCCBEBB",
        # The publisher on invoices (name, address, VAT number) and as the transfer's payee.
        "PUBLISHER_NAME": environ.get("PUBLISHER_NAME", "").strip()
        or "Kinderopvang Magazine vzw",
        "PUBLISHER_ADDRESS": environ.get("PUBLISHER_ADDRESS", "").strip()
        or "Grote Markt 1, 9000 Gent, België",
        "PUBLISHER_VAT": environ.get("PUBLISHER_VAT", "").strip() or "BE0403019261",
        "PUBLISHER_EMAIL": environ.get("PUBLISHER_EMAIL", "").strip()
        or "abonnementen@kinderopvang.example",
        # Peppol e-invoices (subscriptions.peppol_sender): the access point's REST API and
        # its token. Without the URL nothing is sent (the XML can still be downloaded).
        "PEPPOL_AP_URL": environ.get("PEPPOL_AP_URL", "").strip().rstrip("/"),
        "PEPPOL_AP_TOKEN": environ.get("PEPPOL_AP_TOKEN", "").strip(),
        "PEPPOL_MAX_ATTEMPTS": _int(
            "PEPPOL_MAX_ATTEMPTS", environ.get("PEPPOL_MAX_ATTEMPTS"), 8
        ),
        # Unpaid orders: a reminder this many days before they expire, then they expire.
        "ORDER_PAYMENT_DAYS": _int("ORDER_PAYMENT_DAYS", environ.get("ORDER_PAYMENT_DAYS"), 30),
        "ORDER_REMINDER_DAYS": _int(
            "ORDER_REMINDER_DAYS", environ.get("ORDER_REMINDER_DAYS"), 7
        ),
        # Renewals and dispatch (subscriptions.renewals, subscriptions.dispatch).
        "RENEWAL_REMINDER_DAYS": _int(
            "RENEWAL_REMINDER_DAYS", environ.get("RENEWAL_REMINDER_DAYS"), 14
        ),
        "RENEWAL_RETRY_DAYS": _int_list(
            "RENEWAL_RETRY_DAYS", environ.get("RENEWAL_RETRY_DAYS"), [1, 3, 7]
        ),
        # Renewal charges made at the same time by one `renewals` run (threads, each with
        # its own claimed charge, key and transactions): the provider's answer takes
        # 100-300 ms, so one at a time 10k charges would take most of an hour.
        "RENEWAL_CONCURRENCY": _concurrency(environ.get("RENEWAL_CONCURRENCY")),
        # Due charges one thread claims, prepares and records together (one transaction
        # for the preparation of the batch, one for its outcomes); the provider is still
        # called once per charge, with no transaction open.
        "RENEWAL_BATCH_SIZE": _batch_size(environ.get("RENEWAL_BATCH_SIZE")),
        "GRACE_ISSUES": _int("GRACE_ISSUES", environ.get("GRACE_ISSUES"), 1),
        "GRACE_DAYS": _int("GRACE_DAYS", environ.get("GRACE_DAYS"), 30),
        "DIGITAL_LINK_DAYS": _int("DIGITAL_LINK_DAYS", environ.get("DIGITAL_LINK_DAYS"), 60),
        "PROXY_HOPS": _int("PROXY_HOPS", environ.get("PROXY_HOPS"), 0),
        # Cookies: Secure only when we are served over https (BASE_URL says so).
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_SECURE": https,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "magazine_session",
        # Uploads (Word files, images) stay well below this.
        "MAX_CONTENT_LENGTH": _int(
            "MAX_CONTENT_LENGTH", environ.get("MAX_CONTENT_LENGTH"), 16 * 1024 * 1024
        ),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "BABEL_DEFAULT_LOCALE": "nl_BE",
        "BABEL_DEFAULT_TIMEZONE": "Europe/Brussels",
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).parent / "translations"),
        # Password hashing cost (argon2id); tests lower it to stay fast.
        "PASSWORD_TIME_COST": _int("PASSWORD_TIME_COST", environ.get("PASSWORD_TIME_COST"), 3),
        "PASSWORD_MEMORY_COST": _int(
            "PASSWORD_MEMORY_COST", environ.get("PASSWORD_MEMORY_COST"), 65536
        ),
        # Login throttling: failures allowed per window, per account and per client address.
        "LOGIN_WINDOW_SECONDS": 15 * 60,
        "LOGIN_MAX_FAILURES_PER_ACCOUNT": 5,
        "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
        "SESSION_LIFETIME_DAYS": 14,
        # The cookie session is written only when it changes (not re-signed and re-sent on
        # every request); it is signed with a timestamp and refused after the server-side
        # session's lifetime. The server-side session (user_sessions: expiry, revocation)
        # is what lets a request in, on every request.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PERMANENT_SESSION_LIFETIME": timedelta(days=14),
        # The cache of rendered account pages (magazine.pagecache): per worker, at most this
        # many bytes, a page at most this many seconds old (and exact: see the module).
        "PAGE_CACHE_ENABLED": _bool(environ.get("PAGE_CACHE_ENABLED"), True),
        "PAGE_CACHE_MAX_BYTES": _int(
            "PAGE_CACHE_MAX_BYTES", environ.get("PAGE_CACHE_MAX_BYTES"), 32 * 1024 * 1024
        ),
        "PAGE_CACHE_MAX_AGE": 300,
        # The publication plan: regular issues per year (specials come on top).
        "ISSUES_PER_YEAR": _int("ISSUES_PER_YEAR", environ.get("ISSUES_PER_YEAR"), 5),
        # Copies printed on top of the subscribers' for the stock (back issues, samples).
        "PRINT_STOCK_COPIES": _int(
            "PRINT_STOCK_COPIES", environ.get("PRINT_STOCK_COPIES"), 25
        ),
        # Editorial: deadlines worked back from the print date (days before it), the
        # flatplan's page estimate, public pitches and the deadline reminders.
        "ISSUE_DEADLINE_OFFSETS": _offsets(environ.get("ISSUE_DEADLINE_OFFSETS")),
        "WORDS_PER_PAGE": _int("WORDS_PER_PAGE", environ.get("WORDS_PER_PAGE"), 650),
        "IMAGES_PER_PAGE": _int("IMAGES_PER_PAGE", environ.get("IMAGES_PER_PAGE"), 2),
        "PUBLIC_PITCHES_PER_DAY": _int(
            "PUBLIC_PITCHES_PER_DAY", environ.get("PUBLIC_PITCHES_PER_DAY"), 3
        ),
        "REMINDER_DAYS_BEFORE": _int(
            "REMINDER_DAYS_BEFORE", environ.get("REMINDER_DAYS_BEFORE"), 3
        ),
        "REMINDER_DAYS_AFTER": _int("REMINDER_DAYS_AFTER", environ.get("REMINDER_DAYS_AFTER"), 2),
        "TOKEN_MAX_AGE_VERIFY": 3 * 24 * 3600,
        "TOKEN_MAX_AGE_RESET": 60 * 60,
        "TOKEN_MAX_AGE_INVITE": 14 * 24 * 3600,
    }
