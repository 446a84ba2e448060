"""Plans, checkout and the subscriber's own pages (orders, invoices, subscriptions, data).

Every page under /account shows only the person's own things: someone else's id is a 404.
"""

from __future__ import annotations

import io
from datetime import date

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice

from magazine.db import db
from magazine.errors import DomainError
from magazine.i18n import current_locale
from magazine.views import show_domain_error
from subscriptions import documents, services
from subscriptions import jobs as _jobs  # noqa: F401  (registers the scheduled jobs)
from subscriptions.forms import (
    AddressChangeForm,
    AutoRenewForm,
    BackIssueForm,
    CheckoutForm,
    DeleteAccountForm,
    NextPlanForm,
)
from subscriptions.models import Plan, SingleCopyOffer
from subscriptions.providers import checkout_providers
from subscriptions.providers.bank_transfer import epc_qr
from subscriptions.states import OrderState, SubscriptionState

bp = Blueprint("subscriptions", __name__)

# Field names of the account services, as they are called on the checkout form.
CHECKOUT_FIELD_NAMES = {"email": "account_email", "name": "account_name",
                        "addresses": "addresses-0-name", "plan": "plan"}
CHECKOUT_FIELD_NAMES["password"] = "account_password"  # nosec B105 # a form field's name


def show_error(form: FlaskForm, error: DomainError, renames: dict[str, str] | None = None):
    """Like `show_domain_error`, but also finds fields inside lists and sub-forms
    (`addresses-0-postcode`)."""
    name = (renames or {}).get(error.field or "", error.field)
    if name:
        for field in _all_fields(form):
            if field.id == name:
                field.errors = [*field.errors, error.message]
                return
    show_domain_error(form, error)


def _all_fields(form):
    for field in form:
        if hasattr(field, "entries"):
            for entry in field.entries:
                yield from _all_fields(entry.form) if hasattr(entry, "form") else [entry]
        elif hasattr(field, "form") and field.type == "FormField":
            yield from _all_fields(field.form)
        else:
            yield field


def _user():
    return current_user._get_current_object()


# ---------------------------------------------------------------- plans

@bp.route("/plans")
def plans():
    locale = current_locale()
    return render_template(
        "subscriptions/plans.html", plans=services.active_plans(), locale=locale,
        per_issue=services.price_per_issue_cents,
        online=any(p.name in ("stripe", "mollie") for p in checkout_providers(current_app)),
    )


# ---------------------------------------------------------------- checkout

def _checkout_request(form: CheckoutForm, locale: str) -> services.CheckoutRequest:
    addresses = [
        services.AddressInput(
            name=entry.form.name.data or "", street=entry.form.street.data or "",
            postcode=entry.form.postcode.data or "", city=entry.form.city.data or "",
            country=entry.form.country.data or "BE",
            organisation=entry.form.organisation.data or "", copies=entry.form.copies.data,
        )
        for entry in form.addresses.entries
    ]
    return services.CheckoutRequest(
        plan_id=form.plan.data or 0, copies=form.copies.data or 1, addresses=addresses,
        billing_name=form.billing_name.data or "",
        billing_email=form.account_email.data or "",
        billing_organisation=form.billing_organisation.data or "",
        billing_vat_number=form.billing_vat_number.data or "",
        billing_po_reference=form.billing_po_reference.data or "",
        billing_street=form.billing_street.data or "",
        billing_postcode=form.billing_postcode.data or "",
        billing_city=form.billing_city.data or "",
        billing_country=form.billing_country.data or "BE",
        promo_code=form.promo_code.data or "",
        first_issue_id=int(form.first_issue.data) if form.first_issue.data else None,
        gift_recipient_name=form.gift_recipient_name.data or "",
        gift_recipient_email=form.gift_recipient_email.data or "",
        gift_message=form.gift_message.data or "",
        provider=form.provider.data or "bank_transfer", locale=locale,
        save_method=bool(form.save_method.data),
    )


@bp.route("/checkout", methods=["GET", "POST"])
def checkout():
    """One page: plan, copies, addresses, billing, promo code, start, payment. "Show the
    summary" prices it; "Place the order" places it (and makes the account of a newcomer)."""
    locale = current_locale()
    plans_offered = services.active_plans()
    if not plans_offered:
        flash(_("There are no plans on offer at the moment."), "info")
        return redirect(url_for("subscriptions.plans"))
    today = services.today_brussels()
    issues = services.upcoming_issues(today)
    form = CheckoutForm()
    form.plan.choices = [SelectChoice(plan.id, plan.name(locale)) for plan in plans_offered]
    form.first_issue.choices = [SelectChoice("", _("The next issue"))] + [
        SelectChoice(str(issue.id), _("Issue %(code)s (%(date)s)", code=issue.code,
                          date=issue.print_date.strftime("%d/%m/%Y")))
        for issue in issues
    ]
    providers = checkout_providers(current_app)
    form.provider.choices = [SelectChoice(p.name, str(p.label)) for p in providers]
    if request.method == "GET":
        wanted = request.args.get("plan", "")
        chosen = next((p for p in plans_offered if p.code == wanted), plans_offered[0])
        form.plan.data = chosen.id
        if current_user.is_authenticated:
            form.billing_name.data = current_user.name
            form.addresses.entries[0].form.name.data = current_user.name
    plan = next((p for p in plans_offered if p.id == form.plan.data), plans_offered[0])

    quote = None
    status = 200
    if request.method == "POST" and "update" in request.form:
        pass  # another plan chosen: show its parts, keep what was typed, judge nothing yet
    elif request.method == "POST":
        if form.validate():
            checkout_request = _checkout_request(form, locale)
            try:
                if "place" in request.form:
                    return _place(form, checkout_request, locale)
                quote = services.quote_checkout(checkout_request, today=today)
            except DomainError as error:
                db.session.rollback()
                show_error(form, error, CHECKOUT_FIELD_NAMES)
                status = 400
        else:
            status = 400
    return render_template(
        "subscriptions/checkout.html", form=form, plan=plan, plans=plans_offered, quote=quote,
        locale=locale, next_issue=issues[0] if issues else None,
        per_issue=services.price_per_issue_cents,
    ), status


def _place(form: CheckoutForm, checkout_request: services.CheckoutRequest, locale: str):
    new_account = not current_user.is_authenticated
    if new_account:
        buyer = services.create_buyer_account(
            form.account_name.data or "", form.account_email.data or "",
            form.account_password.data or "", locale=locale)
    else:
        buyer = _user()
    placed = services.place_order(checkout_request, buyer=buyer)
    db.session.commit()
    if new_account:
        _start_session(buyer)
    return _after_placing(placed)


def _start_session(buyer) -> None:
    """Log a newcomer in right after the order that made their account (the foundation's
    login: a fresh server-side session)."""
    from magazine.auth.views import _log_in

    _log_in(buyer)
    flash(_("Your account is made. We mailed you a link to confirm your e-mail address: "
            "you need it to log in next time."), "info")


def _after_placing(placed: services.PlacedOrder):
    """To the provider's payment page (online providers), or to the order page with the
    bank transfer instructions."""
    if placed.redirect_url:
        return redirect(placed.redirect_url)
    flash(_("Thank you! Your order has been placed. Below is how to pay."), "success")
    return redirect(url_for("subscriptions.order_detail", order_id=placed.order.id))


# ---------------------------------------------------------------- single copies

@bp.route("/back-issues")
def back_issues():
    return render_template("subscriptions/back_issues.html", offers=services.offers_for_sale())


def _billing_fields(form, locale: str, provider: str) -> services.CheckoutRequest:
    return services.CheckoutRequest(
        plan_id=0, billing_name=form.billing_name.data or "",
        billing_organisation=form.billing_organisation.data or "",
        billing_vat_number=form.billing_vat_number.data or "",
        billing_po_reference=form.billing_po_reference.data or "",
        billing_street=form.billing_street.data or "",
        billing_postcode=form.billing_postcode.data or "",
        billing_city=form.billing_city.data or "",
        billing_country=form.billing_country.data or "BE", provider=provider, locale=locale,
    )


@bp.route("/back-issues/<int:offer_id>", methods=["GET", "POST"])
def order_back_issue(offer_id: int):
    """One page, like the checkout: a newcomer makes the account in the same form."""
    offer = db.get_or_404(SingleCopyOffer, offer_id)
    if not offer.active:
        abort(404)
    locale = current_locale()
    form = BackIssueForm()
    providers = checkout_providers(current_app)
    form.provider.choices = [SelectChoice(p.name, str(p.label)) for p in providers]
    if request.method == "GET" and current_user.is_authenticated:
        form.billing_name.data = current_user.name
        form.address.form.name.data = current_user.name
    if form.validate_on_submit():
        new_account = not current_user.is_authenticated
        try:
            buyer = services.create_buyer_account(
                form.account_name.data or "", form.account_email.data or "",
                form.account_password.data or "", locale=locale) if new_account else _user()
            placed = services.place_single_copy_order(
                offer, form.quantity.data, _address_input(form.address.form),
                _billing_fields(form, locale, form.provider.data or "bank_transfer"),
                buyer=buyer)
        except DomainError as error:
            db.session.rollback()
            show_error(form, error, CHECKOUT_FIELD_NAMES)
        else:
            db.session.commit()
            if new_account:
                _start_session(buyer)
            return _after_placing(placed)
    return render_template("subscriptions/back_issue_order.html", form=form, offer=offer), (
        400 if form.errors else 200)


# ---------------------------------------------------------------- orders and documents

def _own_order_or_404(order_id: int):
    order = services.own_order(_user(), order_id)
    if order is None:
        abort(404)
    return order


@bp.route("/account/orders/<int:order_id>")
@login_required
def order_detail(order_id: int):
    order = _own_order_or_404(order_id)
    return render_template(
        "subscriptions/order.html", order=order, OrderState=OrderState,
        iban=current_app.config["BANK_IBAN"], bic=current_app.config["BANK_BIC"],
        beneficiary=current_app.config["PUBLISHER_NAME"], locale=current_locale(),
    )


@bp.route("/account/orders/<int:order_id>/qr.svg")
@login_required
def order_qr(order_id: int):
    """The EPC QR code of an unpaid order (an <img> on the order page: no inline script)."""
    order = _own_order_or_404(order_id)
    if order.state != OrderState.AWAITING_PAYMENT:
        abort(404)
    config = current_app.config
    qr = epc_qr(name=config["PUBLISHER_NAME"], iban=config["BANK_IBAN"], bic=config["BANK_BIC"],
                amount_cents=order.total_cents, communication=order.structured_communication)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=5, border=2, xmldecl=False,
            title=_("QR code to pay order %(ref)s", ref=order.reference))
    return Response(buffer.getvalue(), mimetype="image/svg+xml")


def _pdf(data: bytes, filename: str):
    return send_file(io.BytesIO(data), mimetype="application/pdf", download_name=filename,
                     as_attachment=False)


@bp.route("/account/invoices/<int:invoice_id>.pdf")
@login_required
def invoice_pdf(invoice_id: int):
    invoice = services.own_invoice(_user(), invoice_id)
    if invoice is None:
        abort(404)
    return _pdf(documents.invoice_pdf(invoice), f"factuur-{invoice.number}.pdf")


@bp.route("/account/credit-notes/<int:note_id>.pdf")
@login_required
def credit_note_pdf(note_id: int):
    note = services.own_credit_note(_user(), note_id)
    if note is None:
        abort(404)
    return _pdf(documents.credit_note_pdf(note), f"creditnota-{note.number}.pdf")


# ---------------------------------------------------------------- subscriptions

def _own_subscription_or_404(subscription_id: int):
    subscription = services.own_subscription(_user(), subscription_id)
    if subscription is None:
        abort(404)
    return subscription


def _subscription_page(subscription, *, address_form=None, renew_form=None, plan_form=None,
                       status=200):
    locale = current_locale()
    today = services.today_brussels()
    schedule = services.schedule_for(subscription, today)
    groups = services.address_groups(subscription, schedule)
    if address_form is None:
        address_form = AddressChangeForm(formdata=None)
        if groups:
            # Start from the newest address of the first group: most changes are small.
            latest = groups[0].pending or groups[0].current
            for name in ("name", "organisation", "street", "postcode", "city", "country"):
                getattr(address_form.address.form, name).data = getattr(latest, name)
    address_form.group_no.choices = [
        SelectChoice(group.group_no, f"{group.current.name}, {group.current.city}")
        for group in groups]
    if plan_form is None:
        plan_form = NextPlanForm(formdata=None)
        plan_form.plan.data = subscription.next_plan_id or subscription.plan_id
    plan_form.plan.choices = [SelectChoice(p.id, p.name(locale))
                              for p in services.plans_for_next_term(subscription)]
    return render_template(
        "subscriptions/subscription.html", subscription=subscription, schedule=schedule,
        groups=groups, address_form=address_form, renew_form=renew_form or AutoRenewForm(
            formdata=None), plan_form=plan_form, locale=locale, SubscriptionState=SubscriptionState,
        today=today,
    ), status


@bp.route("/account/subscriptions/<int:subscription_id>")
@login_required
def subscription_detail(subscription_id: int):
    return _subscription_page(_own_subscription_or_404(subscription_id))


@bp.route("/account/subscriptions/<int:subscription_id>/address", methods=["POST"])
@login_required
def change_address(subscription_id: int):
    subscription = _own_subscription_or_404(subscription_id)
    form = AddressChangeForm()
    groups = services.address_groups(
        subscription, services.schedule_for(subscription, services.today_brussels()))
    form.group_no.choices = [SelectChoice(g.group_no, str(g.group_no)) for g in groups]
    if form.validate():
        try:
            issue = services.change_address(
                subscription, form.group_no.data, _address_input(form.address.form),
                actor=_user())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error, {"address": "address-name"})
        else:
            db.session.commit()
            if issue is not None:
                flash(_("The new address is saved. It applies from issue %(code)s.",
                        code=issue.code), "success")
            else:
                flash(_("The new address is saved."), "success")
            return redirect(url_for("subscriptions.subscription_detail",
                                    subscription_id=subscription.id))
    return _subscription_page(subscription, address_form=form, status=400)


def _address_input(form) -> services.AddressInput:
    return services.AddressInput(
        name=form.name.data or "", street=form.street.data or "",
        postcode=form.postcode.data or "", city=form.city.data or "",
        country=form.country.data or "BE", organisation=form.organisation.data or "",
        copies=form.copies.data,
    )


@bp.route("/account/subscriptions/<int:subscription_id>/auto-renew", methods=["POST"])
@login_required
def set_auto_renew(subscription_id: int):
    subscription = _own_subscription_or_404(subscription_id)
    form = AutoRenewForm()
    turn_on = request.form.get("auto_renew") == "1"
    if form.validate():
        try:
            services.set_auto_renew(subscription, turn_on, reason=form.reason.data or "",
                                    actor=_user())
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Automatic renewal is on again.") if turn_on else
                  _("Automatic renewal is off: your subscription ends after its last issue."),
                  "success")
    return redirect(url_for("subscriptions.subscription_detail",
                            subscription_id=subscription.id))


@bp.route("/account/subscriptions/<int:subscription_id>/next-plan", methods=["POST"])
@login_required
def change_next_plan(subscription_id: int):
    subscription = _own_subscription_or_404(subscription_id)
    form = NextPlanForm()
    form.plan.choices = [SelectChoice(p.id, p.code)
                         for p in services.plans_for_next_term(subscription)]
    if form.validate():
        plan = db.session.get(Plan, form.plan.data)
        try:
            services.change_next_plan(subscription, plan, actor=_user())
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Your next term will be %(plan)s.", plan=plan.name(current_locale())),
                  "success")
    else:
        flash(_("Choose one of the plans."), "error")
    return redirect(url_for("subscriptions.subscription_detail",
                            subscription_id=subscription.id))


# ---------------------------------------------------------------- my data

@bp.route("/account/export")
@login_required
def export_data():
    data = services.export_user_data(_user())
    stamp = date.today().isoformat()
    return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                     download_name=f"kinderopvang-magazine-{stamp}.zip")


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            services.delete_account(_user(), password=form.password.data)
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            logout_user()
            from flask import session

            session.clear()
            flash(_("Your account has been deleted. Goodbye, and thank you for reading."),
                  "success")
            return redirect(url_for("core.home"))
    return render_template("subscriptions/delete_account.html", form=form), (
        400 if form.errors else 200)


def account_context(user) -> dict:
    """What /account (core.account) shows of subscriptions, orders and documents."""
    today = services.today_brussels()
    subscriptions = services.account_subscriptions(user)
    return {
        "subscriptions": list(zip(subscriptions, services.schedules_for(subscriptions, today),
                                  strict=True)),
        "orders": services.account_orders(user),
        "SubscriptionState": SubscriptionState,
        "OrderState": OrderState,
        "sub_locale": current_locale(),
        "today": today,
    }
