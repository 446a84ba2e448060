"""Forms of the administration area."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from magazine.auth.forms import email_field
from magazine.roles import ROLE_LABELS, Role


class RoleChoicesField(SelectMultipleField):
    """A checkbox per role."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def process_formdata(self, valuelist):
        # No box ticked sends nothing at all: that means "none", not "keep the default".
        super().process_formdata(valuelist)
        if not valuelist:
            self.data = []


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


class RolesForm(FlaskForm):
    roles = RoleChoicesField(_l("Roles"), choices=role_choices, validate_choice=True)


class InviteForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Fill in the name.")),
                                               Length(max=200)])
    email = email_field()
    roles = RoleChoicesField(_l("Roles"), choices=role_choices, validate_choice=True)
    message = TextAreaField(
        _l("Personal message (optional)"), validators=[Length(max=2000)],
        description=_l("Added to the invitation mail."),
    )
