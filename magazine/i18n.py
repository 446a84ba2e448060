"""Languages (Dutch first, English second) and how dates and amounts are shown."""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from flask import Flask, has_request_context, session
from flask.globals import _cv_app
from flask_babel import Babel, format_date, format_datetime, get_locale, get_translations
from flask_login import current_user

from magazine.clock import BRUSSELS, as_utc

log = logging.getLogger(__name__)

# The locale codes we offer, with their name in their own language.
LANGUAGES = {"nl_BE": "Nederlands", "en": "English"}
DEFAULT_LOCALE = "nl_BE"


def select_locale() -> str:
    """The person's own choice first (account, then session), else Dutch.

    We do not follow the browser's Accept-Language: the magazine is Dutch-language and a
    Flemish reader with an English browser still expects Dutch."""
    if not has_request_context():  # the CLI and jobs speak Dutch; mails use force_locale
        return DEFAULT_LOCALE
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return chosen
    return DEFAULT_LOCALE


def current_locale() -> str:
    return str(get_locale())


def money(cents: int | None) -> str:
    """Integer euro cents as the locale writes them: `€ 12,50` in Dutch."""
    if cents is None:
        return ""
    return _money(cents, str(get_locale()))


@functools.lru_cache(maxsize=4096)
def _money(cents: int, locale: str) -> str:
    # babel's format_currency parses the locale's pattern on every call (~50 µs): amounts
    # repeat (prices, totals), so each is formatted once per locale and worker.
    return format_currency(Decimal(cents).scaleb(-2), "EUR", locale=locale)


def request_translations():
    """flask_babel's `get_translations()`, resolved once per request and locale (it looks
    up the domain and the locale's name on every call: a page makes ~170 of them)."""
    app_context = _cv_app.get(None)  # not through the `g` proxy: this runs ~170 times a page
    if app_context is None:
        return get_translations()
    store = app_context.g.__dict__
    cached = store.get("_magazine_translations")
    babel = store.get("_flask_babel")  # where flask_babel keeps the request's locale
    if cached is not None and cached[0] is getattr(babel, "babel_locale", None):
        return cached[1]
    # First call, or force_locale/refresh since: a new Locale object.
    locale = get_locale()
    translations = get_translations()
    store["_magazine_translations"] = (locale, translations)
    return translations


def local_datetime(value: datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    return format_datetime(as_utc(value), fmt)


def local_date(value: date | datetime | None, fmt: str = "long") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = as_utc(value).astimezone(BRUSSELS).date()
    return format_date(value, fmt)


def html_lang() -> str:
    return str(get_locale()).replace("_", "-")


def compile_catalogs(directory: Path) -> None:
    """Compile each `messages.po` whose `.mo` is missing or older, so that a checkout (and
    an edited catalog) works without a separate build step."""
    for po_path in directory.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle)
        try:
            with mo_path.open("wb") as handle:
                write_mo(handle, catalog)
        except OSError:
            log.warning("cannot write %s: the interface falls back to the message ids", mo_path)


def init_i18n(app: Flask) -> None:
    compile_catalogs(Path(app.config["BABEL_TRANSLATION_DIRECTORIES"]))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
    )
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["datetime"] = local_datetime
    app.jinja_env.filters["date"] = local_date
    app.jinja_env.globals["html_lang"] = html_lang
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_locale"] = current_locale
