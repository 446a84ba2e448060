"""Forms of the subscriptions area. The shape of the input here; the rules in services."""

from __future__ import annotations

from decimal import Decimal

from babel import Locale
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget, TextInput

from magazine.auth.forms import strip
from subscriptions.models import EU_COUNTRIES, PlanKind, PromoKind


def country_choices() -> list[SelectChoice]:
    names = Locale.parse(str(get_locale())).territories
    first = [SelectChoice("BE", names.get("BE", "BE")), SelectChoice("NL", names.get("NL", "NL"))]
    rest = sorted((SelectChoice(code, names.get(code, code)) for code in EU_COUNTRIES[2:]),
                  key=lambda choice: choice.label)
    return first + rest


class AmountField(DecimalField):
    """A decimal that also takes a comma (Flemish: 65,00) and a leading euro sign.

    A text input, not `type=number`: browsers refuse "65,00" in a number input."""

    widget = TextInput()

    def __init__(self, *args, **kwargs):
        render_kw = kwargs.setdefault("render_kw", {})
        render_kw.setdefault("inputmode", "decimal")
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist):
        if valuelist:
            valuelist = [value.replace("€", "").replace(" ", "").replace(",", ".")
                         for value in valuelist]
        super().process_formdata(valuelist)


class AddressForm(Form):
    """One delivery address (a group of copies). Every part is optional here: the service
    decides which are needed (print plans) and says so next to the field."""

    copies = IntegerField(_l("Copies to this address"), validators=[
        Optional(), NumberRange(min=1, max=500, message=_l("Choose between 1 and 500."))],
        description=_l("Only needed when the copies go to several addresses."))
    name = StringField(_l("Name"), filters=[strip], validators=[Length(max=200)],
                       render_kw={"autocomplete": "name"})
    organisation = StringField(_l("Organisation (optional)"), filters=[strip],
                               validators=[Length(max=200)],
                               render_kw={"autocomplete": "organization"})
    street = StringField(_l("Street and number"), filters=[strip], validators=[Length(max=200)],
                         render_kw={"autocomplete": "street-address"})
    postcode = StringField(_l("Postcode"), filters=[strip], validators=[Length(max=12)],
                           render_kw={"autocomplete": "postal-code"})
    city = StringField(_l("City"), filters=[strip], validators=[Length(max=100)],
                       render_kw={"autocomplete": "address-level2"})
    country = SelectField(_l("Country"), default="BE", render_kw={"autocomplete": "country"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.country.choices = country_choices()


class AccountFields(FlaskForm):
    """A newcomer's account, made in the same form as the order."""

    account_name = StringField(_l("Your name"), filters=[strip], validators=[Length(max=200)],
                               render_kw={"autocomplete": "name"})
    account_email = EmailField(_l("E-mail"), filters=[strip], validators=[
        Optional(), Email(_l("This is not a valid e-mail address."),
                          check_deliverability=False), Length(max=254)],
        render_kw={"autocomplete": "email"})
    account_password = PasswordField(
        _l("Choose a password"), validators=[Length(max=128)],
        description=_l("At least 10 characters. You log in with it to see your subscription "
                       "and invoices."),
        render_kw={"autocomplete": "new-password"})


class BillingForm(FlaskForm):
    """Who the invoice is for; the address may stay empty (the delivery address is used)."""

    billing_name = StringField(_l("Name on the invoice"), filters=[strip],
                               validators=[Length(max=200)])
    billing_organisation = StringField(_l("Organisation"), filters=[strip],
                                       validators=[Length(max=200)])
    billing_vat_number = StringField(
        _l("Enterprise or VAT number"), filters=[strip], validators=[Length(max=20)],
        description=_l("For example BE0403.019.261. Only for organisations."))
    billing_po_reference = StringField(
        _l("Your reference (purchase order)"), filters=[strip], validators=[Length(max=60)],
        description=_l("We print it on the invoice."))
    billing_street = StringField(_l("Street and number"), filters=[strip],
                                 validators=[Length(max=200)],
                                 description=_l("Leave empty to use the delivery address."))
    billing_postcode = StringField(_l("Postcode"), filters=[strip], validators=[Length(max=12)])
    billing_city = StringField(_l("City"), filters=[strip], validators=[Length(max=100)])
    billing_country = SelectField(_l("Country"), default="BE")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.billing_country.choices = country_choices()


class CheckoutForm(BillingForm, AccountFields):
    plan = RadioField(_l("Plan"), coerce=int, validators=[
        InputRequired(_l("Choose one of the plans."))])
    copies = IntegerField(_l("Number of copies"), default=1, validators=[
        InputRequired(_l("How many copies?")),
        NumberRange(min=1, max=500, message=_l("Choose between 1 and 500 copies."))],
        description=_l("Organisations: the price per copy drops from 5 and from 10 copies."))
    first_issue = SelectField(_l("Start with"), coerce=str, default="")
    addresses = FieldList(FormField(AddressForm), min_entries=3, max_entries=3)

    promo_code = StringField(_l("Promo code"), filters=[strip], validators=[Length(max=40)])

    gift_recipient_name = StringField(_l("Name of the person who receives the gift"),
                                      filters=[strip], validators=[Length(max=200)])
    gift_recipient_email = EmailField(
        _l("Their e-mail address"), filters=[strip], validators=[
            Optional(), Email(_l("This is not a valid e-mail address."),
                              check_deliverability=False), Length(max=254)],
        description=_l("We mail them your message when the gift starts."))
    gift_message = TextAreaField(_l("Your message (optional)"), filters=[strip],
                                 validators=[Length(max=1000)])

    provider = RadioField(_l("Payment"), default="bank_transfer")
    save_method = BooleanField(
        _l("Renew automatically with this card or bank account"),
        description=_l("Online payments only: the payment method is saved for the next term; "
                       "you can remove it in your account at any time."))


class BackIssueForm(BillingForm, AccountFields):
    quantity = IntegerField(_l("Number of copies"), default=1, validators=[
        InputRequired(_l("How many copies?")),
        NumberRange(min=1, max=50, message=_l("Choose between 1 and 50 copies."))])
    address = FormField(AddressForm)
    provider = RadioField(_l("Payment"), default="bank_transfer")


class OfferForm(FlaskForm):
    issue = SelectField(_l("Issue"), coerce=int)
    price = AmountField(_l("Price per copy, VAT and shipping included (€)"), places=2,
                        validators=[InputRequired(_l("Fill in the price.")),
                                    NumberRange(min=0.01, max=1000,
                                                message=_l("A price above zero, please."))])
    stock = IntegerField(_l("Copies in stock"), validators=[
        InputRequired(_l("How many copies?")),
        NumberRange(min=0, max=100000, message=_l("Zero or more."))])
    active = BooleanField(_l("For sale"), default=True)


class PlanForm(FlaskForm):
    code = StringField(_l("Code"), filters=[strip], validators=[
        DataRequired(_l("Give the plan a short code.")), Length(max=40)],
        description=_l("Letters, digits and dashes, e.g. individual-print."))
    name_nl = StringField(_l("Name (Dutch)"), filters=[strip], validators=[
        DataRequired(_l("Fill in the name.")), Length(max=120)])
    name_en = StringField(_l("Name (English)"), filters=[strip], validators=[
        DataRequired(_l("Fill in the name.")), Length(max=120)])
    description_nl = TextAreaField(_l("Description (Dutch)"), filters=[strip],
                                   validators=[Length(max=2000)])
    description_en = TextAreaField(_l("Description (English)"), filters=[strip],
                                   validators=[Length(max=2000)])
    kind = SelectField(_l("Kind"), choices=[
        SelectChoice(PlanKind.PRINT.value, _l("Print")),
        SelectChoice(PlanKind.DIGITAL.value, _l("Digital")),
        SelectChoice(PlanKind.PRINT_DIGITAL.value, _l("Print and digital")),
        SelectChoice(PlanKind.ORGANISATION.value, _l("Organisation")),
        SelectChoice(PlanKind.STUDENT.value, _l("Student")),
        SelectChoice(PlanKind.GIFT.value, _l("Gift"))])
    price = AmountField(_l("Price per term, VAT included (€)"), places=2, validators=[
        InputRequired(_l("Fill in the price.")),
        NumberRange(min=0.01, max=100000, message=_l("A price above zero, please."))])
    vat_rate = AmountField(_l("VAT rate (%)"), places=2, default=Decimal(6), validators=[
        InputRequired(_l("Fill in the VAT rate.")),
        NumberRange(min=0, max=100, message=_l("Between 0 and 100."))])
    issues_per_term = IntegerField(_l("Issues per term"), default=5, validators=[
        InputRequired(_l("How many issues in a term?")),
        NumberRange(min=1, max=60, message=_l("Between 1 and 60."))])
    includes_print = BooleanField(_l("Includes the printed magazine"))
    includes_digital = BooleanField(_l("Includes the digital magazine"))
    shipping_be = AmountField(_l("Shipping per copy to Belgium (€)"), places=2, default=Decimal(0),
                               validators=[Optional(), NumberRange(min=0, max=1000)])
    shipping_nl = AmountField(_l("Shipping per copy to the Netherlands (€)"), places=2,
                               default=Decimal(0),
                               validators=[Optional(), NumberRange(min=0, max=1000)])
    shipping_eu = AmountField(_l("Shipping per copy to the rest of the EU (€)"), places=2,
                               default=Decimal(0),
                               validators=[Optional(), NumberRange(min=0, max=1000)])
    bands = TextAreaField(
        _l("Volume prices (organisations)"), filters=[strip],
        description=_l("One per line: from how many copies, and the price per copy, e.g. "
                       "“5: 55,00”."))
    position = IntegerField(_l("Order on the plans page"), default=0,
                            validators=[Optional()])
    active = BooleanField(_l("Offered on the plans page"), default=True)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class PromoCodeForm(FlaskForm):
    code = StringField(_l("Code"), filters=[strip], validators=[
        DataRequired(_l("Fill in the code.")), Length(max=40)])
    description = StringField(_l("Campaign"), filters=[strip], validators=[Length(max=200)])
    kind = RadioField(_l("Discount"), default=PromoKind.PERCENT.value, choices=[
        SelectChoice(PromoKind.PERCENT.value, _l("Percentage")),
        SelectChoice(PromoKind.FIXED.value, _l("Fixed amount"))])
    value = AmountField(_l("Percentage or amount (€)"), places=2, validators=[
        InputRequired(_l("Fill in how much.")),
        NumberRange(min=0.01, max=100000, message=_l("More than zero, please."))])
    valid_from = DateField(_l("Valid from"), validators=[Optional()])
    valid_until = DateField(_l("Valid until"), validators=[Optional()])
    max_uses = IntegerField(_l("Maximum uses"), validators=[
        Optional(), NumberRange(min=1, message=_l("At least one."))],
        description=_l("Leave empty for no limit."))
    plans = MultiCheckboxField(_l("Only for these plans"), coerce=int,
                               description=_l("None ticked: every plan."))
    active = BooleanField(_l("Active"), default=True)


class AutoRenewForm(FlaskForm):
    reason = TextAreaField(_l("Why do you stop? (optional)"), filters=[strip],
                           validators=[Length(max=500)])


class NextPlanForm(FlaskForm):
    plan = SelectField(_l("Plan for the next term"), coerce=int)


class AddressChangeForm(FlaskForm):
    group_no = SelectField(_l("Address"), coerce=int)
    address = FormField(AddressForm)


class RecordPaymentForm(FlaskForm):
    received_on = DateField(_l("Received on"), validators=[Optional()])
    note = StringField(_l("Note"), filters=[strip], validators=[Length(max=300)])


class StatementForm(FlaskForm):
    # The format is told from the content, not from the name: no FileAllowed here.
    statement = FileField(_l("Bank statement (camt.053 or CODA)"), validators=[
        FileRequired(_l("Choose the statement file."))],
        description=_l("Export it from your bank's online banking as CAMT.053 (XML) or as "
                       "CODA (a .cod or .txt file)."))


class BankEntryLinkForm(FlaskForm):
    order_id = IntegerField(validators=[InputRequired(), NumberRange(min=1, max=2**31 - 1)])


class BankEntryNoteForm(FlaskForm):
    note = StringField(_l("Note"), filters=[strip], validators=[Length(max=300)])


class ExtendForm(FlaskForm):
    issues = IntegerField(_l("Extra issues"), validators=[
        InputRequired(_l("How many issues?")),
        NumberRange(min=1, max=60, message=_l("Between 1 and 60."))])
    reason = StringField(_l("Reason"), filters=[strip], validators=[Length(max=300)])


class ComplimentaryForm(FlaskForm):
    plan = SelectField(_l("Plan"), coerce=int)
    copies = IntegerField(_l("Copies"), default=1, validators=[
        InputRequired(), NumberRange(min=1, max=500, message=_l("Between 1 and 500."))])
    issues = IntegerField(_l("Issues"), default=5, validators=[
        InputRequired(), NumberRange(min=1, max=60, message=_l("Between 1 and 60."))])
    reason = StringField(_l("For whom or why"), filters=[strip], validators=[
        DataRequired(_l("Say why: a partner, a board member, the legal deposit …")),
        Length(max=300)])
    address = FormField(AddressForm)


class ComplimentaryNewForm(ComplimentaryForm):
    """A complimentary subscription for someone without an account yet."""

    name = StringField(_l("Name"), filters=[strip], validators=[
        DataRequired(_l("Fill in the name.")), Length(max=200)])
    email = EmailField(_l("E-mail"), filters=[strip], validators=[
        DataRequired(_l("Fill in the e-mail address.")),
        Email(_l("This is not a valid e-mail address."), check_deliverability=False),
        Length(max=254)],
        description=_l("They get a mail to choose a password, and one about the subscription."))


class DeleteAccountForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[
        DataRequired(_l("Fill in your password."))],
        render_kw={"autocomplete": "current-password"})
    confirm = BooleanField(_l("Yes, delete my account"), validators=[
        DataRequired(_l("Tick the box to confirm."))])
