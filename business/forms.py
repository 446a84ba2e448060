"""The desk's forms: the period filter (a GET form, nothing changes) and the reminder."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import ValidationError

from business.months import Period, month_no, parse_month
from magazine.forms import ConfirmForm

MAX_MONTHS = 60
DEFAULT_MONTHS = 12


class PeriodForm(FlaskForm):
    """From month … to month (inclusive), as `YYYY-MM` (a month picker in most browsers)."""

    class Meta:
        csrf = False  # a filter in the address bar changes nothing

    start = StringField(_l("From month"), description=_l("e.g. 2026-01"),
                        render_kw={"type": "month", "placeholder": "2026-01"})
    end = StringField(_l("To month"), description=_l("e.g. 2026-12"),
                      render_kw={"type": "month", "placeholder": "2026-12"})

    def validate_start(self, field):
        if field.data and parse_month(field.data) is None:
            raise ValidationError(_l("Write the month as year-month, e.g. 2026-01."))

    def validate_end(self, field):
        if field.data and parse_month(field.data) is None:
            raise ValidationError(_l("Write the month as year-month, e.g. 2026-12."))
        start = parse_month(self.start.data or "")
        end = parse_month(field.data or "")
        if start is not None and end is not None:
            if end < start:
                raise ValidationError(_l("The period ends before it starts."))
            if end - start + 1 > MAX_MONTHS:
                raise ValidationError(_l("Choose at most %(n)d months.", n=MAX_MONTHS))

    def period(self, today) -> Period:
        """The chosen period; the last twelve months up to this one when left empty or
        wrong (the errors are shown next to the fields)."""
        current = month_no(today)
        valid = not self.errors
        end = parse_month(self.end.data or "") if valid else None
        start = parse_month(self.start.data or "") if valid else None
        end = end if end is not None else current
        start = start if start is not None else end - DEFAULT_MONTHS + 1
        return Period(start, end)


class ReminderForm(ConfirmForm):
    """Send a payment reminder for one invoice (idempotent per invoice per day)."""
