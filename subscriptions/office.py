"""The coordinator's back office for subscriptions, under /business/subscriptions/: plans,
promo codes, subscribers and their timeline, recording payments, complimentary
subscriptions, extensions, addresses on someone's behalf, resending invoices."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from editorial.models import Issue
from magazine.db import db
from magazine.errors import DomainError
from magazine.forms import ConfirmForm
from magazine.i18n import current_locale
from magazine.models import User
from magazine.roles import BUSINESS_ROLES
from magazine.security import roles_required
from subscriptions import reconciliation, services
from subscriptions.forms import (
    AddressChangeForm,
    ComplimentaryForm,
    ComplimentaryNewForm,
    ExtendForm,
    OfferForm,
    PlanForm,
    PromoCodeForm,
    RecordPaymentForm,
)
from subscriptions.models import Invoice, Order, Plan, PlanKind, PromoCode, PromoKind, Subscription
from subscriptions.states import OrderState, SubscriptionState
from subscriptions.views import _address_input, show_error

bp = Blueprint("subscriptions_office", __name__, url_prefix="/business/subscriptions")

PAGE_SIZE = 30


@bp.before_request
@roles_required(BUSINESS_ROLES)
def _coordinators_only():
    """Every page here is for the business coordinator (and admins)."""


def _actor() -> User:
    return current_user._get_current_object()


def _cents(value: Decimal | None) -> int:
    if value is None:
        return 0
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------- subscribers

@bp.route("/")
def index():
    query = request.args.get("q", "").strip()
    page = max(request.args.get("page", 1, type=int), 1)
    state_value = request.args.get("state", "")
    state = SubscriptionState(state_value) if state_value in set(SubscriptionState) else None
    plan_id = request.args.get("plan", type=int)
    people = db.paginate(
        services.subscriber_search(query, state=state, plan_id=plan_id), page=page,
        per_page=PAGE_SIZE, error_out=False)
    return render_template(
        "subscriptions/office/index.html", query=query, people=people, state=state,
        plan_id=plan_id, plans=services.all_plans(), locale=current_locale(),
        awaiting=services.awaiting_orders(), counts=services.subscription_counts(),
        SubscriptionState=SubscriptionState,
    )


@bp.route("/subscribers/<int:user_id>")
def subscriber(user_id: int):
    person = db.get_or_404(User, user_id)
    today = services.today_brussels()
    return render_template(
        "subscriptions/office/subscriber.html", person=person,
        subscriptions=[(s, services.schedule_for(s, today))
                       for s in services.subscriptions_of(person)],
        orders=services.orders_of(person), timeline=services.timeline_for(person),
        locale=current_locale(), extend_form=ExtendForm(formdata=None),
        services_groups=services.address_groups,
        OrderState=OrderState, SubscriptionState=SubscriptionState,
    )


@bp.route("/subscribers/<int:user_id>/complimentary", methods=["GET", "POST"])
def complimentary(user_id: int):
    person = db.get_or_404(User, user_id)
    form = ComplimentaryForm()
    if request.method == "GET":
        form.address.form.name.data = person.name
    return _give_complimentary(form, person)


@bp.route("/complimentary", methods=["GET", "POST"])
def complimentary_new():
    """A complimentary subscription for a partner, a board member or the legal deposit who
    has no account yet: the account is made and they are invited to choose a password."""
    return _give_complimentary(ComplimentaryNewForm(), None)


def _give_complimentary(form, person: User | None):
    """The complimentary form for someone known (`person`) or someone new (invited first)."""
    locale = current_locale()
    form.plan.choices = [SelectChoice(p.id, p.name(locale))
                         for p in services.all_plans() if not p.is_gift]
    if form.validate_on_submit():
        plan = db.session.get(Plan, form.plan.data)
        try:
            recipient = person or services.invite_subscriber(
                form.email.data, form.name.data, actor=_actor())
            services.give_complimentary(
                recipient, plan, copies=form.copies.data, issues=form.issues.data,
                address=_address_input(form.address.form) if plan.includes_print else None,
                reason=form.reason.data, actor=_actor())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            flash(_("%(name)s has a complimentary subscription.", name=recipient.name),
                  "success")
            return redirect(url_for(".subscriber", user_id=recipient.id))
    return render_template("subscriptions/office/complimentary.html", form=form,
                           person=person), 400 if form.errors else 200


@bp.route("/subscriptions/<int:subscription_id>/extend", methods=["POST"])
def extend(subscription_id: int):
    subscription = db.get_or_404(Subscription, subscription_id)
    form = ExtendForm()
    if form.validate():
        try:
            services.extend_subscription(subscription, form.issues.data, actor=_actor(),
                                         reason=form.reason.data or "")
        except DomainError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("The subscription has %(n)d more issues.", n=form.issues.data), "success")
    else:
        flash(_("Give a number of issues between 1 and 60."), "error")
    return redirect(url_for(".subscriber", user_id=subscription.subscriber_id or 0))


@bp.route("/subscriptions/<int:subscription_id>/address", methods=["GET", "POST"])
def change_address(subscription_id: int):
    subscription = db.get_or_404(Subscription, subscription_id)
    today = services.today_brussels()
    schedule = services.schedule_for(subscription, today)
    groups = services.address_groups(subscription, schedule)
    if not groups:
        abort(404)
    form = AddressChangeForm()
    form.group_no.choices = [SelectChoice(g.group_no, f"{g.current.name}, {g.current.city}")
                             for g in groups]
    if form.validate_on_submit():
        try:
            issue = services.change_address(subscription, form.group_no.data,
                                            _address_input(form.address.form), actor=_actor())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            flash(_("The new address is saved. It applies from issue %(code)s.",
                    code=issue.code) if issue else _("The new address is saved."), "success")
            return redirect(url_for(".subscriber", user_id=subscription.subscriber_id or 0))
    return render_template(
        "subscriptions/office/address.html", form=form, subscription=subscription,
        schedule=schedule, groups=groups, locale=current_locale(),
    ), 400 if form.errors else 200


# ---------------------------------------------------------------- orders and invoices

@bp.route("/orders/<int:order_id>")
def order(order_id: int):
    order = db.get_or_404(Order, order_id)
    return render_template(
        "subscriptions/office/order.html", order=order, OrderState=OrderState,
        payment_form=RecordPaymentForm(formdata=None), confirm_form=ConfirmForm(formdata=None),
        locale=current_locale(), bank_entries=reconciliation.entries_of(order),
        still_due=reconciliation.amount_due(order),
    )


def _record(order_id: int, how: str):
    order = db.get_or_404(Order, order_id)
    form = RecordPaymentForm()
    if not form.validate():
        flash(_("Check the date."), "error")
        return redirect(url_for(".order", order_id=order.id))
    try:
        if how == "manual":
            payment = services.record_manual_payment(
                order, actor=_actor(), note=form.note.data or "",
                received_on=form.received_on.data)
        else:
            payment = services.record_bank_transfer(
                order, actor=_actor(), note=form.note.data or "",
                received_on=form.received_on.data)
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        if payment is None:
            flash(_("This order was paid already."), "info")
        else:
            flash(_("Payment recorded: order %(ref)s is paid and its subscription active.",
                    ref=order.reference), "success")
    return redirect(url_for(".order", order_id=order.id))


@bp.route("/orders/<int:order_id>/transfer", methods=["POST"])
def record_transfer(order_id: int):
    return _record(order_id, "bank_transfer")


@bp.route("/orders/<int:order_id>/manual", methods=["POST"])
def record_manual(order_id: int):
    return _record(order_id, "manual")


@bp.route("/orders/<int:order_id>/cancel", methods=["POST"])
def cancel_order(order_id: int):
    order = db.get_or_404(Order, order_id)
    try:
        services.close_unpaid_order(order, to=OrderState.CANCELLED, actor=_actor(),
                                    reason="cancelled by the coordinator")
    except DomainError as error:
        db.session.rollback()
        flash(error.message, "error")
    else:
        db.session.commit()
        flash(_("Order %(ref)s is cancelled; its invoice is credited.", ref=order.reference),
              "success")
    return redirect(url_for(".order", order_id=order.id))


@bp.route("/invoices/<int:invoice_id>/resend", methods=["POST"])
def resend_invoice(invoice_id: int):
    invoice = db.get_or_404(Invoice, invoice_id)
    services.resend_invoice(invoice, actor=_actor())
    db.session.commit()
    flash(_("Invoice %(number)s has been sent again to %(email)s.", number=invoice.number,
            email=invoice.buyer_email), "success")
    return redirect(url_for(".order", order_id=invoice.order_id))


# ---------------------------------------------------------------- back issues

@bp.route("/back-issues", methods=["GET", "POST"])
def offers():
    """Single copies and back issues: price, stock, for sale or not. One form per issue."""
    form = OfferForm()
    form.issue.choices = [SelectChoice(i.id, i.code) for i in db.session.scalars(
        sa.select(Issue).order_by(Issue.print_date.desc()))]
    if form.validate_on_submit():
        issue = db.session.get(Issue, form.issue.data)
        try:
            services.save_offer(issue, price_cents=_cents(form.price.data),
                                stock=form.stock.data, active=form.active.data,
                                actor=_actor())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            flash(_("Issue %(code)s: saved.", code=issue.code), "success")
            return redirect(url_for(".offers"))
    elif request.method == "POST":
        flash(_("Check the price and the stock."), "error")
    return render_template(
        "subscriptions/office/offers.html", offers=services.all_offers(),
        issues=services.issues_without_offer(), form=form,
    ), 400 if form.errors else 200


# ---------------------------------------------------------------- plans

def _parse_bands(text: str) -> list[tuple[int, int]]:
    bands = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*(\d+)\s*[:=]\s*(?:€\s*)?(\d+(?:[.,]\d{1,2})?)\s*", line)
        if not match:
            raise DomainError(_("Write each volume price as “5: 55,00”."), field="bands")
        bands.append((int(match.group(1)), _cents(Decimal(match.group(2).replace(",", ".")))))
    return bands


def _format_bands(plan: Plan) -> str:
    return "\n".join(f"{b.min_copies}: {b.price_cents / 100:.2f}".replace(".", ",")
                     for b in plan.price_bands)


@bp.route("/plans")
def plans():
    return render_template("subscriptions/office/plans.html", plans=services.all_plans(),
                           locale=current_locale())


@bp.route("/plans/new", methods=["GET", "POST"])
@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
def plan_edit(plan_id: int | None = None):
    plan = db.get_or_404(Plan, plan_id) if plan_id is not None else None
    form = PlanForm(obj=plan if request.method == "GET" else None)
    if request.method == "GET" and plan is not None:
        form.kind.data = plan.kind.value
        form.price.data = Decimal(plan.price_cents).scaleb(-2)
        form.vat_rate.data = Decimal(plan.vat_rate_bp).scaleb(-2)
        form.shipping_be.data = Decimal(plan.shipping_be_cents).scaleb(-2)
        form.shipping_nl.data = Decimal(plan.shipping_nl_cents).scaleb(-2)
        form.shipping_eu.data = Decimal(plan.shipping_eu_cents).scaleb(-2)
        form.bands.data = _format_bands(plan)
    elif request.method == "GET":
        form.includes_print.data = True
    if form.validate_on_submit():
        try:
            data = services.PlanData(
                code=form.code.data, name_nl=form.name_nl.data, name_en=form.name_en.data,
                description_nl=form.description_nl.data or "",
                description_en=form.description_en.data or "",
                kind=PlanKind(form.kind.data), price_cents=_cents(form.price.data),
                vat_rate_bp=_cents(form.vat_rate.data),
                issues_per_term=form.issues_per_term.data,
                includes_print=form.includes_print.data,
                includes_digital=form.includes_digital.data,
                shipping_be_cents=_cents(form.shipping_be.data),
                shipping_nl_cents=_cents(form.shipping_nl.data),
                shipping_eu_cents=_cents(form.shipping_eu.data),
                active=form.active.data, position=form.position.data or 0,
                bands=_parse_bands(form.bands.data),
            )
            saved = services.save_plan(plan, data, actor=_actor())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            flash(_("Plan %(name)s is saved.", name=saved.name(current_locale())), "success")
            return redirect(url_for(".plans"))
    return render_template("subscriptions/office/plan_form.html", form=form, plan=plan), (
        400 if form.errors else 200)


# ---------------------------------------------------------------- promo codes

@bp.route("/promo-codes")
def promo_codes():
    return render_template("subscriptions/office/promo_codes.html",
                           promos=services.all_promo_codes(), PromoKind=PromoKind,
                           today=services.today_brussels())


@bp.route("/promo-codes/new", methods=["GET", "POST"])
@bp.route("/promo-codes/<int:promo_id>", methods=["GET", "POST"])
def promo_edit(promo_id: int | None = None):
    promo = db.get_or_404(PromoCode, promo_id) if promo_id is not None else None
    form = PromoCodeForm(obj=promo if request.method == "GET" else None)
    locale = current_locale()
    form.plans.choices = [SelectChoice(p.id, p.name(locale)) for p in services.all_plans()]
    if request.method == "GET" and promo is not None:
        form.kind.data = promo.kind.value
        form.value.data = Decimal(promo.percent_bp if promo.kind == PromoKind.PERCENT
                                  else promo.amount_cents).scaleb(-2)
        form.plans.data = [p.id for p in promo.plans]
    if form.validate_on_submit():
        kind = PromoKind(form.kind.data)
        try:
            saved = services.save_promo_code(promo, services.PromoData(
                code=form.code.data, kind=kind,
                percent_bp=_cents(form.value.data) if kind == PromoKind.PERCENT else 0,
                amount_cents=_cents(form.value.data) if kind == PromoKind.FIXED else 0,
                valid_from=form.valid_from.data, valid_until=form.valid_until.data,
                max_uses=form.max_uses.data, plan_ids=form.plans.data or [],
                description=form.description.data or "", active=form.active.data,
            ), actor=_actor())
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
        else:
            db.session.commit()
            flash(_("Promo code %(code)s is saved.", code=saved.code), "success")
            return redirect(url_for(".promo_codes"))
    return render_template("subscriptions/office/promo_form.html", form=form, promo=promo), (
        400 if form.errors else 200)
