"""Languages: the Dutch catalog covers the whole interface, Dutch is the default, the choice of
language sticks (to the session, and to the account), and amounts and dates are shown the
Belgian way, in Brussels time."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from babel.messages.pofile import read_po
from flask_babel import force_locale

from magazine.db import db
from magazine.i18n import local_date, local_datetime, money
from magazine.models import User
from tests.conftest import log_in

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "magazine" / "translations"
DUTCH_PO = TRANSLATIONS / "nl" / "LC_MESSAGES" / "messages.po"

# A Python format placeholder with a name: %(name)s, %(n)d, %(amount).2f ...
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text or ""))


def message_key(message) -> str:
    return message.id[0] if isinstance(message.id, (tuple, list)) else message.id


def forms(value) -> list[str]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


@pytest.fixture(scope="module")
def source_messages(tmp_path_factory):
    """The messages in the source right now, extracted as `make extract-messages` does."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    result = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract",
         "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-o", str(pot),
         "--no-location", "--sort-output", "."],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, f"pybabel extract failed:\n{result.stdout}\n{result.stderr}"
    with pot.open("rb") as handle:
        catalog = read_po(handle)
    messages = [m for m in catalog if m.id]
    assert messages, "the extraction found no interface text at all"
    return messages


@pytest.fixture(scope="module")
def dutch_catalog():
    assert DUTCH_PO.exists(), f"{DUTCH_PO} is missing: run `make extract-messages`"
    with DUTCH_PO.open("rb") as handle:
        return read_po(handle, locale="nl")


def test_dutch_catalog_translates_every_message_in_the_source(source_messages, dutch_catalog):
    missing = []
    for message in source_messages:
        key = message_key(message)
        translated = dutch_catalog.get(key)
        if (
            translated is None
            or translated.fuzzy
            or not all(s and s.strip() for s in forms(translated.string))
            or (message.pluralizable and len(forms(translated.string)) < 2)
        ):
            missing.append(key)
    assert not missing, (
        f"{len(missing)} interface text(s) have no (finished) Dutch translation in "
        f"{DUTCH_PO.relative_to(ROOT)}. Run `make extract-messages` and translate them "
        "(no empty or fuzzy entries):\n" + "\n".join(f"  - {m!r}" for m in missing)
    )


def test_dutch_translations_keep_the_placeholders(source_messages, dutch_catalog):
    wrong = []
    for message in source_messages:
        translated = dutch_catalog.get(message_key(message))
        if translated is None or not all(forms(translated.string)):
            continue  # missing or empty: reported by the completeness test
        ids = forms(message.id)
        strings = forms(translated.string)
        if message.pluralizable:
            # Every form may only use the placeholders of the message; the plural form must
            # have all those of msgid_plural (a singular may write "één" instead of %(num)d).
            allowed = set(placeholders(ids[0])) | set(placeholders(ids[1]))
            for index, text in enumerate(strings):
                if not set(placeholders(text)) <= allowed:
                    wrong.append((ids[0], f"msgstr[{index}]", text))
            if strings and placeholders(strings[-1]) != placeholders(ids[1]):
                wrong.append((ids[1], f"msgstr[{len(strings) - 1}]", strings[-1]))
        elif placeholders(strings[0]) != placeholders(ids[0]):
            wrong.append((ids[0], "msgstr", strings[0]))
    assert not wrong, "placeholders differ between msgid and Dutch translation:\n" + "\n".join(
        f"  {msgid!r} -> {where} {text!r}" for msgid, where, text in wrong
    )


def test_dutch_catalog_has_no_leftover_fuzzy_or_obsolete_entries(dutch_catalog):
    fuzzy = [message_key(m) for m in dutch_catalog if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy entries in {DUTCH_PO.name}: {fuzzy}"
    assert not dutch_catalog.fuzzy, f"the header of {DUTCH_PO.name} is marked fuzzy"
    obsolete = list(dutch_catalog.obsolete)
    assert not obsolete, f"obsolete (#~) entries in {DUTCH_PO.name}: {obsolete}"
    assert dutch_catalog.num_plurals == 2


def test_home_page_is_dutch_by_default_and_english_after_choosing_it(client):
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="nl-BE">' in page
    assert "Inloggen" in page
    assert "Account maken" in page
    assert "Log in" not in page

    response = client.post("/language", data={"locale": "en", "next": "/"})
    assert response.status_code == 302

    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Log in" in page
    assert "Create account" in page
    assert "Inloggen" not in page


def test_language_choice_is_kept_on_the_account(app, login_as):
    first = login_as()
    email = first.user_email
    assert "Mijn account" in first.get("/account").get_data(as_text=True)

    response = first.post("/language", data={"locale": "en", "next": "/account"})
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        assert user.locale == "en"
        db.session.remove()

    # A fresh browser, with nothing in its session: the account decides.
    second = app.test_client()
    assert log_in(second, email).status_code == 302
    page = second.get("/account").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "My account" in page
    assert "Log out" in page
    assert "Uitloggen" not in page


def normalised(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def test_money_is_written_the_belgian_way(app):
    with app.test_request_context():
        assert normalised(money(123456)) == "€ 1.234,56"
        assert normalised(money(50)) == "€ 0,50"
        assert money(None) == ""
        with force_locale("en"):
            assert "1,234.56" in money(123456)
            assert "€" in money(123456)


def test_dates_are_shown_in_brussels_time(app):
    summer_evening = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 00:30 on 2 July in Brussels
    winter_evening = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)  # 00:30 on 16 January
    with app.test_request_context():
        shown = normalised(local_datetime(summer_evening))
        assert shown.startswith("2 jul"), shown
        assert "2026" in shown and "00:30" in shown, shown
        assert local_date(summer_evening) == "2 juli 2026"

        shown = normalised(local_datetime(winter_evening))
        assert shown.startswith("16 jan"), shown
        assert "00:30" in shown, shown

        # Stored values are naive UTC: they get the same treatment.
        assert local_date(summer_evening.replace(tzinfo=None)) == "2 juli 2026"
        with force_locale("en"):
            assert "Jul 2, 2026" in normalised(local_datetime(summer_evening))
