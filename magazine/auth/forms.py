"""Forms for accounts. Validation of form shape here; rules of the domain in services."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from magazine.auth.services import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


def strip(value: str | None) -> str | None:
    """Spaces around what people type or paste are never meant."""
    return value.strip() if isinstance(value, str) else value


def email_field() -> EmailField:
    return EmailField(
        _l("E-mail"),
        validators=[
            DataRequired(_l("Fill in your e-mail address.")),
            Email(_l("This is not a valid e-mail address."), check_deliverability=False),
            Length(max=254),
        ],
        filters=[strip],
        render_kw={"autocomplete": "email"},
    )


class LoginForm(FlaskForm):
    email = email_field()
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Fill in your password.")), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


def new_password_field(label) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(_l("Choose a password."))],
        description=_l("At least %(n)d characters. A sentence you remember is a good password.",
                       n=MIN_PASSWORD_LENGTH),
        render_kw={"autocomplete": "new-password"},
    )


def password_again_field(label) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            DataRequired(_l("Type the password again.")),
            EqualTo("password", _l("The two passwords are not the same.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class RegisterForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Fill in your name.")), Length(max=200)],
        filters=[strip],
        render_kw={"autocomplete": "name"},
    )
    email = email_field()
    password = new_password_field(_l("Password"))
    password_again = password_again_field(_l("Password again"))


class EmailForm(FlaskForm):
    email = email_field()


class NewPasswordForm(FlaskForm):
    password = new_password_field(_l("New password"))
    password_again = password_again_field(_l("New password again"))


class ProfileForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Fill in your name.")), Length(max=200)],
        filters=[strip],
        render_kw={"autocomplete": "name"},
    )


class EmailChangeForm(FlaskForm):
    email = email_field()
    password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Fill in your current password."))],
        render_kw={"autocomplete": "current-password"},
    )


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Fill in your current password."))],
        render_kw={"autocomplete": "current-password"},
    )
