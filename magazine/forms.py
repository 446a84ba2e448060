"""Forms shared by every area."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.fields.choices import SelectChoice

from magazine.i18n import LANGUAGES


class ConfirmForm(FlaskForm):
    """A button that changes something: only the CSRF token travels with it."""


class LanguageForm(FlaskForm):
    locale = SelectField(
        _l("Language"), choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()]
    )
    next = HiddenField()
