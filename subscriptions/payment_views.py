"""Pages of online payments: the page the buyer returns to from Stripe or Mollie (with its
JSON status for the small polling script, and a retry), the subscriber's saved payment
method, and the coordinator's refunds.

Every page shows only the person's own payment (someone else's id is a 404); the refund is
for the business coordinator. A provider that is down or slow never shows as an error page:
the payment stays visible with a message and a button to try again.
"""

from __future__ import annotations

import secrets
from decimal import ROUND_HALF_UP, Decimal

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp
from wtforms.widgets import TextInput

from magazine.auth.forms import strip
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.forms import ConfirmForm
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from magazine.views import CSRF_ONLY_FORM, CsrfOnlyForm
from subscriptions import payment_jobs as _payment_jobs  # noqa: F401  (registers the job)
from subscriptions import payments, services
from subscriptions.forms import AmountField
from subscriptions.models import Mandate, Payment
from subscriptions.providers.base import ProviderError, ProviderUnavailable
from subscriptions.states import OrderState, PaymentState

bp = Blueprint("payments", __name__)


class RefundForm(FlaskForm):
    # A text field: a number field refuses the Flemish comma (15,00) in the browser.
    amount = AmountField(_l("Amount to refund (€)"), places=2, widget=TextInput(),
                         render_kw={"inputmode": "decimal", "autocomplete": "off"},
                         validators=[InputRequired(), NumberRange(min=Decimal("0.01"))])
    reason = StringField(_l("Reason (printed on the credit note)"), filters=[strip],
                         validators=[InputRequired(), Length(max=200)])
    # Made when the form is shown: the same form sent twice is one refund (idempotency key).
    request_key = HiddenField(validators=[Optional(), Regexp(r"^[0-9a-f]{16,64}$")])


def _user():
    return current_user._get_current_object()


def _own_payment_or_404(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or services.own_order(_user(), payment.order_id) is None:
        abort(404)
    return payment


# ---------------------------------------------------------------- the return page

@bp.route("/payments/<int:payment_id>")
@login_required
def payment_return(payment_id: int):
    """Where the provider sends the buyer back: paid, waiting for the bank, or not paid
    (yet). The page asks the provider itself, so it does not wait for the webhook."""
    payment = _own_payment_or_404(payment_id)
    unavailable = False
    if payments.is_online(payment) and payment.state in payments.OPEN_STATES \
            and payment.provider_ref and payments.provider_available(payment.provider):
        try:
            payments.sync_payment(payment)
            db.session.commit()
        except ProviderUnavailable:
            db.session.rollback()
            unavailable = True
        except (DomainError, ProviderError) as error:
            # A refusal (e.g. a key that changed): show what we know, log the cause.
            db.session.rollback()
            current_app.logger.warning("payment %s not refreshed: %s", payment_id, error)
    payment = db.session.get(Payment, payment_id)
    return render_template(
        "subscriptions/payment_return.html", payment=payment, order=payment.order,
        PaymentState=PaymentState, OrderState=OrderState,
        unavailable=unavailable or payment.last_error == "unavailable",
        confirm_form=ConfirmForm(formdata=None),
    )


@bp.route("/payments/<int:payment_id>/go")
@login_required
def payment_go(payment_id: int):
    """On to the provider's payment page (see `payments.go_url` for why a page of ours)."""
    payment = _own_payment_or_404(payment_id)
    if payment.state != PaymentState.OPEN or not payment.checkout_url \
            or payment.order.state != OrderState.AWAITING_PAYMENT:
        return redirect(url_for(".payment_return", payment_id=payment.id))
    return render_template("subscriptions/payment_go.html", payment=payment,
                           order=payment.order)


@bp.route("/payments/<int:payment_id>/status.json")
@login_required
def payment_status(payment_id: int):
    """For the polling script: the state as we know it (webhooks keep it current)."""
    payment = _own_payment_or_404(payment_id)
    return jsonify(state=payment.state.value, order_state=payment.order.state.value,
                   done=payment.state not in payments.OPEN_STATES)


@bp.route("/payments/<int:payment_id>/retry", methods=["POST"])
@login_required
def payment_retry(payment_id: int):
    payment = _own_payment_or_404(payment_id)
    form = ConfirmForm()
    if not form.validate() or not payments.is_online(payment):
        abort(400)
    try:
        target = payments.retry_online_payment(payment, actor=_user())
    except DomainError as error:
        db.session.commit()  # keep the attempt and its error for the coordinator
        flash(error.message, "error")
        return redirect(url_for(".payment_return", payment_id=payment.id))
    db.session.commit()
    if target:
        latest = payments.latest_payment(payment.order) or payment
        return redirect(url_for(".payment_go", payment_id=latest.id))
    latest = payments.latest_payment(payment.order) or payment
    return redirect(url_for(".payment_return", payment_id=latest.id))


# ---------------------------------------------------------------- saved payment method

@bp.route("/account/payment-methods/<int:mandate_id>/remove", methods=["POST"])
@login_required
def remove_method(mandate_id: int):
    mandate = db.session.get(Mandate, mandate_id)
    if mandate is None or mandate.user_id != current_user.id:
        abort(404)
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    try:
        payments.remove_mandate(mandate, actor=_user())
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("Your payment method is removed. We will send you a payment link when your "
                "subscription is up for renewal."), "success")
    return redirect(url_for("core.account"))


@bp.route("/account/payment-methods/new", methods=["POST"])
@login_required
def replace_method():
    """Save another card or account (it replaces the saved one once it is confirmed)."""
    form = ConfirmForm()
    if not form.validate():
        abort(400)
    try:
        url, reference = payments.start_method_replacement(
            _user(), request.form.get("provider", ""))
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
        return redirect(url_for("core.account"))
    db.session.commit()
    session["payment_setup"] = {"provider": request.form.get("provider"), "ref": reference}
    # Not a redirect: our CSP lets a form's answer lead only to us (see payments.go_url).
    return render_template("subscriptions/payment_setup_go.html", url=url)


@bp.route("/account/payment-methods/new/done")
@login_required
def method_return():
    setup = session.pop("payment_setup", None)
    if not setup:
        return redirect(url_for("core.account"))
    try:
        mandate = payments.finish_method_replacement(_user(), setup.get("provider", ""),
                                                     setup.get("ref", ""))
    except DomainError as error:
        db.session.rollback()
        session["payment_setup"] = setup  # the provider was down: try this page again
        flash(error.message, "error")
        return redirect(url_for("core.account"))
    db.session.commit()
    if mandate is None:
        flash(_("No new payment method was saved; your previous one (if any) stays."), "info")
    else:
        flash(_("Your new payment method %(label)s is saved for automatic renewal.",
                label=mandate.label), "success")
    return redirect(url_for("core.account"))


# ---------------------------------------------------------------- refunds (back office)

def _cents(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@bp.route("/business/subscriptions/payments/<int:payment_id>/refund", methods=["POST"])
@roles_required(BUSINESS_ROLES)
def refund(payment_id: int):
    payment = db.get_or_404(Payment, payment_id)
    form = RefundForm()
    back = redirect(url_for("subscriptions_office.order", order_id=payment.order_id))
    if not form.validate():
        message = next(iter(form.errors.values()))[0] if form.errors else _("Check the form.")
        flash(_("Refund not made: %(reason)s", reason=message), "error")
        return back
    try:
        made = payments.refund_payment(payment, _cents(form.amount.data),
                                       reason=form.reason.data, actor=_user(),
                                       request_key=form.request_key.data or "")
    except (DomainError, PermissionDenied) as error:
        db.session.rollback()
        flash(_("Refund not made: %(reason)s", reason=error.message), "error")
        return back
    db.session.commit()
    flash(_("%(amount)s refunded; credit note %(number)s issued.",
            amount=payments._money(made.amount_cents),
            number=made.credit_note.number if made.credit_note else "—"), "success")
    return back


# ---------------------------------------------------------------- for other pages' templates

@bp.app_template_global()
def payment_refund_form() -> RefundForm:
    form = RefundForm(formdata=None)
    form.request_key.data = secrets.token_hex(16)
    return form


@bp.app_template_global()
def payment_confirm_form() -> CsrfOnlyForm:
    # The template uses only its CSRF field: no WTForms form built for each account page.
    return CSRF_ONLY_FORM


@bp.app_template_global()
def online_payment_providers() -> list:
    from subscriptions.providers import checkout_providers

    return [p for p in checkout_providers(current_app) if p.online]


# How a payment was made, as the provider names it (Stripe and Mollie use their own words).
METHOD_LABELS = {
    "card": _l("card"), "creditcard": _l("card"), "bancontact": "Bancontact",
    "sepa_debit": _l("SEPA direct debit"), "directdebit": _l("SEPA direct debit"),
    "ideal": "iDEAL", "kbc": "KBC/CBC", "belfius": "Belfius",
}


@bp.app_template_filter("payment_method")
def payment_method_label(code: str) -> str:
    return str(METHOD_LABELS.get(code, code or ""))


@bp.app_template_global()
def saved_payment_method(user) -> Mandate | None:
    return payments.mandate_of(user) if user.is_authenticated else None
