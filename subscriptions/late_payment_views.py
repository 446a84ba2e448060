"""Renewals paid too late, in the coordinator's back office
(/business/subscriptions/late-payments): each waiting payment with its two ways out."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.i18n import current_locale
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions import late_payments
from subscriptions.fulfilment_models import LateRenewalPayment
from subscriptions.providers import get_provider

bp = Blueprint("late_payments_office", __name__,
               url_prefix="/business/subscriptions/late-payments")


class LateRefundForm(FlaskForm):
    reason = StringField(_l("Reason (printed on the credit note)"),
                         default=_l("Renewal paid after the subscription had ended"),
                         validators=[DataRequired(_l("Say why.")), Length(max=300)])


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _coordinators_only():
    """Late payments are the coordinator's (and admins')."""


def _late_or_404(late_id: int) -> LateRenewalPayment:
    late = db.session.get(LateRenewalPayment, late_id)
    if late is None:
        abort(404)
    return late


@bp.route("/")
def index():
    waiting = late_payments.waiting()
    return render_template(
        "subscriptions/office/late_payments.html", waiting=waiting,
        payments={late.id: late_payments.paid_payment(late) for late in waiting},
        settled=late_payments.settled(), confirm=ConfirmForm(), refund_form=LateRefundForm(),
        locale=current_locale(),
        provider_label=lambda name: get_provider(name).label)


@bp.route("/<int:late_id>/restart", methods=["POST"])
def restart(late_id: int):
    late = _late_or_404(late_id)
    if ConfirmForm().validate_on_submit():
        try:
            subscription = late_payments.restart_subscription(
                late, actor=current_user._get_current_object())
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("A new subscription starts with issue %(code)s.",
                    code=subscription.first_issue.code if subscription.first_issue else "—"),
                  "success")
    return redirect(url_for(".index"))


@bp.route("/<int:late_id>/refund", methods=["POST"])
def refund(late_id: int):
    late = _late_or_404(late_id)
    form = LateRefundForm()
    if not form.validate_on_submit():
        flash(_("Say why the payment is refunded."), "error")
        return redirect(url_for(".index"))
    try:
        late_payments.refund_late_payment(late, actor=current_user._get_current_object(),
                                          reason=form.reason.data or "")
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("The payment is refunded."), "success")
    return redirect(url_for(".index"))
