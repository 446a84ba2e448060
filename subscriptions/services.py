"""The business actions of subscriptions: plans and promo codes, checkout, payments,
invoices and credit notes, and the subscriber's own changes.

Services flush; the view (or job) commits. Every state change goes through `move_order`,
`move_payment` or `move_subscription`: each checks the transition table, moves the row with
a conditional update (so two requests racing for the same move change it once), writes the
audit record, and the caller's function queues the mails.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy.orm.attributes import set_committed_value

from editorial.models import Issue, IssueState, next_issue_for_changes
from magazine import audit
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.i18n import money
from magazine.mail import Mail, queue_mail, queue_mails
from magazine.models import User, UserRole
from magazine.roles import BUSINESS_ROLES, Role
from magazine.urls import external_url
from subscriptions import peppol_sender, pricing
from subscriptions.models import (
    EU_COUNTRIES,
    CreditNote,
    DeliveryAddress,
    DocumentCounter,
    Invoice,
    Order,
    OrderLine,
    Payment,
    Plan,
    PlanKind,
    PromoCode,
    PromoKind,
    SingleCopyOffer,
    Subscription,
    zone_for_country,
)
from subscriptions.providers import get_provider
from subscriptions.providers.bank_transfer import structured_communication
from subscriptions.states import (
    ORDER_TRANSITIONS,
    PAYMENT_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    OrderState,
    PaymentState,
    SubscriptionState,
)

MAX_COPIES = 500
MAX_ADDRESS_GROUPS = 3


class StaleState(DomainError):
    """Someone else moved the object first (a second click, a webhook racing the browser)."""


def today_brussels() -> date:
    return now_utc().astimezone(BRUSSELS).date()


def is_coordinator(user: User | None) -> bool:
    return user is not None and user.has_any_role(BUSINESS_ROLES)


def _require_coordinator(actor: User | None) -> None:
    if not is_coordinator(actor):
        raise PermissionDenied(_("Only the business coordinator can do this."))


# ---------------------------------------------------------------- state moves

def _move(obj, to, table: dict, model, label: str, actor: User | None, **details) -> None:
    _move_all([obj], to, table, model, label, actor, **details)


def _move_all(objs, to, table: dict, model, label: str, actor: User | None,
              each: Sequence[dict] | None = None, **details) -> None:
    """Move every object in `objs` to `to`: each transition checked, one conditional UPDATE
    per state they come from (a batch of one for a single move), the state written once (the
    object in memory is told without a second UPDATE by the unit of work), one audit record
    each (with `details`, and `each[i]` for the i-th object). Someone else moved one first:
    StaleState (the caller's transaction rolls back)."""
    by_state: dict = {}
    for obj in objs:
        current = obj.state
        if to not in table[current]:
            raise DomainError(
                _("This cannot change from %(current)s to %(target)s.",
                  current=current.value, target=to.value)
            )
        by_state.setdefault(current, []).append(obj)
    for current, group in by_state.items():
        ids = [obj.id for obj in group]
        moved = db.session.execute(
            sa.update(model)
            .where(model.id.in_(ids) if len(ids) > 1 else model.id == ids[0],
                   model.state == current)
            .values(state=to)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != len(group):
            for obj in group:
                db.session.refresh(obj)
            raise StaleState(
                _("This was changed by someone else a moment ago. Reload the page."))
    for i, obj in enumerate(objs):
        current = obj.state
        # The row changed in the database; say so to the object in memory, as loaded (the
        # unit of work would otherwise write the same state a second time).
        set_committed_value(obj, "state", to)
        audit.record(f"{label}.{to.value}", label, obj.id, actor=actor,
                     **{"from": current.value}, **details, **(each[i] if each else {}))


def move_order(order: Order, to: OrderState, *, actor: User | None, **details) -> None:
    _move(order, to, ORDER_TRANSITIONS, Order, "order", actor, **details)


def move_orders(orders: Sequence[Order], to: OrderState, *, actor: User | None,
                **details) -> None:
    """`move_order` for many orders at once."""
    _move_all(orders, to, ORDER_TRANSITIONS, Order, "order", actor, **details)


def move_payment(payment: Payment, to: PaymentState, *, actor: User | None, **details) -> None:
    _move(payment, to, PAYMENT_TRANSITIONS, Payment, "payment", actor, **details)


def move_payments(payments: Sequence[Payment], to: PaymentState, *, actor: User | None,
                  each: Sequence[dict] | None = None, **details) -> None:
    """`move_payment` for many payments at once (`each`: details of each one's audit)."""
    _move_all(payments, to, PAYMENT_TRANSITIONS, Payment, "payment", actor, each=each,
              **details)


def move_subscription(
    subscription: Subscription, to: SubscriptionState, *, actor: User | None, **details
) -> None:
    _move(subscription, to, SUBSCRIPTION_TRANSITIONS, Subscription, "subscription", actor,
          **details)


def move_subscriptions(subscriptions: Sequence[Subscription], to: SubscriptionState, *,
                       actor: User | None, **details) -> None:
    """`move_subscription` for many subscriptions at once."""
    _move_all(subscriptions, to, SUBSCRIPTION_TRANSITIONS, Subscription, "subscription",
              actor, **details)


# ---------------------------------------------------------------- document numbers

INVOICE_SERIES = "invoice"
CREDIT_NOTE_SERIES = "credit_note"
SERIES_PREFIX = {INVOICE_SERIES: "", CREDIT_NOTE_SERIES: "CN"}


def next_document_number(series: str, year: int) -> tuple[int, str]:
    """The next number of a series in a year: `2026-000123` (credit notes `CN2026-000004`).
    See `next_document_numbers`."""
    return next_document_numbers(series, year, 1)[0]


def next_document_numbers(series: str, year: int, count: int) -> list[tuple[int, str]]:
    """The next `count` numbers of a series in a year, in order.

    One statement, `INSERT … ON CONFLICT DO UPDATE … RETURNING`: the year's first numbers
    create the counter row, every later call moves it by `count`, and the row lock is held
    until this transaction ends: a second checkout waits, and a rolled-back one gives its
    numbers back. No gaps, no doubles."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    last = db.session.execute(
        insert(DocumentCounter)
        .values(series=series, year=year, last_number=count)
        .on_conflict_do_update(index_elements=["series", "year"],
                               set_={"last_number": DocumentCounter.last_number + count})
        .returning(DocumentCounter.last_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return [(number, f"{SERIES_PREFIX[series]}{year}-{number:06d}")
            for number in range(last - count + 1, last + 1)]


# ---------------------------------------------------------------- plans and promo codes

@dataclass
class PlanData:
    code: str
    name_nl: str
    name_en: str
    kind: PlanKind
    price_cents: int
    issues_per_term: int
    description_nl: str = ""
    description_en: str = ""
    vat_rate_bp: int = 600
    includes_print: bool = True
    includes_digital: bool = False
    shipping_be_cents: int = 0
    shipping_nl_cents: int = 0
    shipping_eu_cents: int = 0
    active: bool = True
    position: int = 0
    bands: list[tuple[int, int]] = field(default_factory=list)


def save_plan(plan: Plan | None, data: PlanData, *, actor: User | None) -> Plan:
    """Create or change a plan. Orders keep the price they were placed at."""
    if actor is not None:
        _require_coordinator(actor)
    code = data.code.strip().lower()
    clash = db.session.scalar(sa.select(Plan).where(Plan.code == code))
    if clash is not None and clash is not plan:
        raise DomainError(_("Another plan has this code already."), field="code")
    if data.price_cents <= 0:
        raise DomainError(_("A plan needs a price above zero."), field="price")
    if data.issues_per_term <= 0:
        raise DomainError(_("A term has at least one issue."), field="issues_per_term")
    if not (data.includes_print or data.includes_digital):
        raise DomainError(_("A plan includes print, digital or both."), field="includes_print")
    seen: set[int] = set()
    for min_copies, price in data.bands:
        if min_copies < 2 or price <= 0 or min_copies in seen:
            raise DomainError(
                _("Each volume price needs a number of copies from 2 and a price above zero, "
                  "once per number of copies."), field="bands"
            )
        seen.add(min_copies)
    if data.bands and data.kind != PlanKind.ORGANISATION:
        raise DomainError(_("Only organisation plans have volume prices."), field="bands")
    created = plan is None
    if plan is None:
        plan = Plan(code=code, kind=data.kind, price_cents=data.price_cents,
                    issues_per_term=data.issues_per_term, name_nl=data.name_nl,
                    name_en=data.name_en)
        db.session.add(plan)
    for name in ("name_nl", "name_en", "description_nl", "description_en", "kind",
                 "price_cents", "issues_per_term", "vat_rate_bp", "includes_print",
                 "includes_digital", "shipping_be_cents", "shipping_nl_cents",
                 "shipping_eu_cents", "active", "position"):
        setattr(plan, name, getattr(data, name))
    plan.code = code
    existing = {band.min_copies: band for band in plan.price_bands}
    wanted = dict(data.bands)
    for min_copies, band in existing.items():
        if min_copies not in wanted:
            plan.price_bands.remove(band)
    for min_copies, price in sorted(wanted.items()):
        if min_copies in existing:
            existing[min_copies].price_cents = price
        else:
            from subscriptions.models import PlanPriceBand

            plan.price_bands.append(PlanPriceBand(min_copies=min_copies, price_cents=price))
    db.session.flush()
    audit.record("plan.created" if created else "plan.changed", "plan", plan.id, actor=actor,
                 price_cents=plan.price_cents, active=plan.active)
    return plan


def active_plans() -> Sequence[Plan]:
    return db.session.scalars(
        sa.select(Plan).where(Plan.active.is_(True)).order_by(Plan.position, Plan.id)
    ).all()


def all_plans() -> Sequence[Plan]:
    return db.session.scalars(sa.select(Plan).order_by(Plan.active.desc(), Plan.position,
                                                       Plan.id)).all()


def price_per_issue_cents(plan: Plan) -> int:
    return pricing._divide_half_away_from_zero(plan.price_cents, plan.issues_per_term)


@dataclass
class PromoData:
    code: str
    kind: PromoKind
    percent_bp: int = 0
    amount_cents: int = 0
    valid_from: date | None = None
    valid_until: date | None = None
    max_uses: int | None = None
    plan_ids: list[int] = field(default_factory=list)
    description: str = ""
    active: bool = True


def normalize_code(code: str) -> str:
    return "".join(code.split()).upper()


def save_promo_code(promo: PromoCode | None, data: PromoData, *, actor: User | None) -> PromoCode:
    if actor is not None:
        _require_coordinator(actor)
    code = normalize_code(data.code)
    if not code or (not code.isalnum() and not code.replace("-", "").isalnum()):
        raise DomainError(_("Use letters, digits and dashes for a code."), field="code")
    clash = db.session.scalar(sa.select(PromoCode).where(PromoCode.code == code))
    if clash is not None and clash is not promo:
        raise DomainError(_("This code exists already."), field="code")
    if data.kind == PromoKind.PERCENT and not 0 < data.percent_bp <= 10_000:
        raise DomainError(_("A percentage lies between 0 and 100."), field="value")
    if data.kind == PromoKind.FIXED and data.amount_cents <= 0:
        raise DomainError(_("A discount needs an amount above zero."), field="value")
    if data.valid_from and data.valid_until and data.valid_until < data.valid_from:
        raise DomainError(_("The end date lies before the start date."), field="valid_until")
    if data.max_uses is not None and data.max_uses < 1:
        raise DomainError(_("Allow at least one use, or leave it empty for no limit."),
                          field="max_uses")
    if promo is not None and data.max_uses is not None and data.max_uses < promo.used_count:
        raise DomainError(
            _("This code has been used %(n)d times already.", n=promo.used_count),
            field="max_uses",
        )
    created = promo is None
    if promo is None:
        promo = PromoCode(code=code, kind=data.kind)
        db.session.add(promo)
    promo.code = code
    promo.kind = data.kind
    promo.percent_bp = data.percent_bp if data.kind == PromoKind.PERCENT else 0
    promo.amount_cents = data.amount_cents if data.kind == PromoKind.FIXED else 0
    promo.valid_from, promo.valid_until = data.valid_from, data.valid_until
    promo.max_uses = data.max_uses
    promo.description = data.description.strip()
    promo.active = data.active
    promo.plans = list(db.session.scalars(sa.select(Plan).where(Plan.id.in_(data.plan_ids))))
    db.session.flush()
    audit.record("promo_code.created" if created else "promo_code.changed", "promo_code",
                 promo.id, actor=actor, code=code)
    return promo


def all_promo_codes() -> Sequence[PromoCode]:
    return db.session.scalars(sa.select(PromoCode).order_by(PromoCode.created_at.desc(),
                                                            PromoCode.id.desc())).all()


def find_promo_code(code: str, plan: Plan, today: date) -> PromoCode:
    """The promo code that may apply to `plan` today, or a DomainError saying why not."""
    promo = db.session.scalar(sa.select(PromoCode).where(PromoCode.code == normalize_code(code)))
    if promo is None or not promo.active:
        raise DomainError(_("This promo code does not exist. Check how you typed it."),
                          field="promo_code")
    if promo.valid_from and today < promo.valid_from:
        raise DomainError(
            _("This promo code is valid from %(date)s.", date=promo.valid_from.isoformat()),
            field="promo_code",
        )
    if promo.valid_until and today > promo.valid_until:
        raise DomainError(_("This promo code has expired."), field="promo_code")
    if promo.max_uses is not None and promo.used_count >= promo.max_uses:
        raise DomainError(_("This promo code has been used up."), field="promo_code")
    if promo.plans and plan not in promo.plans:
        raise DomainError(_("This promo code is not valid for this plan."), field="promo_code")
    return promo


def claim_promo_code(promo: PromoCode) -> None:
    """Count one use, only if a use is left: a conditional update, so concurrent checkouts
    never exceed `max_uses`."""
    claimed = db.session.execute(
        sa.update(PromoCode)
        .where(PromoCode.id == promo.id,
               sa.or_(PromoCode.max_uses.is_(None), PromoCode.used_count < PromoCode.max_uses))
        .values(used_count=PromoCode.used_count + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise DomainError(_("This promo code has been used up."), field="promo_code")
    db.session.refresh(promo)


def release_promo_code(promo: PromoCode) -> None:
    db.session.execute(
        sa.update(PromoCode).where(PromoCode.id == promo.id, PromoCode.used_count > 0)
        .values(used_count=PromoCode.used_count - 1)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- issues

def upcoming_issues(today: date, limit: int = 6) -> Sequence[Issue]:
    """Issues a new subscription can still start with (their dispatch cut-off not passed)."""
    return db.session.scalars(
        sa.select(Issue)
        .where(Issue.dispatch_cutoff >= today, Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.dispatch_cutoff, Issue.id)
        .limit(limit)
    ).all()


def issues_to_come(first: Issue, count: int) -> Sequence[Issue]:
    """The next `count` issues not dispatched yet, from `first` on, as far as planned."""
    return db.session.scalars(
        sa.select(Issue)
        .where(sa.or_(Issue.print_date > first.print_date,
                      sa.and_(Issue.print_date == first.print_date, Issue.id >= first.id)),
               Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.print_date, Issue.id)
        .limit(count)
    ).all()


@dataclass(frozen=True)
class SubscriptionSchedule:
    next_issue: Issue | None      # the next issue this subscription receives
    last_issue: Issue | None      # its last issue, when it is planned already
    changes_apply_to: Issue | None  # an address change made today applies from this issue


def schedule_for(subscription: Subscription, today: date) -> SubscriptionSchedule:
    """Which issues a subscription still receives, as far as they are planned: from its
    first issue (or, without one, the next issue open for changes), not yet dispatched."""
    change_issue = next_issue_for_changes(today)
    next_issue = last_issue = None
    start = subscription.first_issue or change_issue
    if subscription.issues_remaining > 0 and start is not None:
        upcoming = issues_to_come(start, subscription.issues_remaining)
        next_issue = upcoming[0] if upcoming else None
        if len(upcoming) == subscription.issues_remaining:
            last_issue = upcoming[-1]
    return SubscriptionSchedule(next_issue, last_issue, change_issue)


def schedules_for(subscriptions: Sequence[Subscription], today: date
                  ) -> list[SubscriptionSchedule]:
    """`schedule_for` of each subscription with one query for all of them (the account
    page): the issues not dispatched yet (the few planned ahead) and the subscriptions' first
    issues; each subscription takes its own from those."""
    first_ids = {s.first_issue_id for s in subscriptions if s.first_issue_id is not None}
    condition = Issue.state != IssueState.DISPATCHED
    if first_ids:
        condition = sa.or_(condition, Issue.id.in_(first_ids))
    issues = db.session.scalars(
        sa.select(Issue).where(condition).order_by(Issue.print_date, Issue.id)).all()
    by_id = {issue.id: issue for issue in issues}
    upcoming = [issue for issue in issues if issue.state != IssueState.DISPATCHED]
    # next_issue_for_changes(today), from the same rows
    open_for_changes = [issue for issue in upcoming
                        if issue.dispatch_cutoff is not None and issue.dispatch_cutoff >= today]
    change_issue = min(open_for_changes, key=lambda issue: (issue.dispatch_cutoff, issue.id),
                       default=None)
    schedules = []
    for subscription in subscriptions:
        next_issue = last_issue = None
        start = (by_id[subscription.first_issue_id] if subscription.first_issue_id is not None
                 else change_issue)
        if subscription.issues_remaining > 0 and start is not None:
            key = (start.print_date, start.id)
            mine = [issue for issue in upcoming if (issue.print_date, issue.id) >= key]
            mine = mine[:subscription.issues_remaining]
            next_issue = mine[0] if mine else None
            if len(mine) == subscription.issues_remaining:
                last_issue = mine[-1]
        schedules.append(SubscriptionSchedule(next_issue, last_issue, change_issue))
    return schedules


# ---------------------------------------------------------------- checkout

@dataclass
class AddressInput:
    name: str
    street: str
    postcode: str
    city: str
    country: str = "BE"
    organisation: str = ""
    copies: int | None = None


@dataclass
class CheckoutRequest:
    plan_id: int
    copies: int = 1
    addresses: list[AddressInput] = field(default_factory=list)
    billing_name: str = ""
    billing_email: str = ""
    billing_organisation: str = ""
    billing_vat_number: str = ""
    billing_po_reference: str = ""
    billing_street: str = ""
    billing_postcode: str = ""
    billing_city: str = ""
    billing_country: str = "BE"
    promo_code: str = ""
    first_issue_id: int | None = None
    gift_recipient_name: str = ""
    gift_recipient_email: str = ""
    gift_message: str = ""
    provider: str = "bank_transfer"
    locale: str = "nl_BE"
    # Online payments: save the method (a mandate) for automatic renewals.
    save_method: bool = False


def validate_postcode(postcode: str, country: str, field_name: str) -> str:
    postcode = postcode.strip().upper()
    patterns = {"BE": r"[1-9]\d{3}", "NL": r"[1-9]\d{3} ?[A-Z]{2}", "LU": r"(L-)?\d{4}",
                "FR": r"\d{5}", "DE": r"\d{5}"}
    pattern = patterns.get(country, r"[A-Z0-9][A-Z0-9 -]{1,10}")
    if not re.fullmatch(pattern, postcode):
        raise DomainError(_("This postcode is not valid for the country."), field=field_name)
    if country == "NL" and " " not in postcode:
        postcode = f"{postcode[:4]} {postcode[4:]}"
    return postcode


def validate_vat_number(number: str) -> str:
    """A Belgian enterprise or VAT number (`BE0403019261`), or another EU VAT number;
    checked with python-stdnum. Returns it in its compact form, with country code."""
    from stdnum import exceptions
    from stdnum.be import vat as be_vat
    from stdnum.eu import vat as eu_vat

    compact = "".join(ch for ch in number.upper() if ch.isalnum())
    if not compact:
        return ""
    try:
        if compact[:2].isalpha() and compact[:2] != "BE":
            return eu_vat.validate(compact)
        return "BE" + be_vat.validate(compact)
    except exceptions.ValidationError as error:
        raise DomainError(
            _("This is not a valid enterprise or VAT number (e.g. BE0403.019.261)."),
            field="billing_vat_number",
        ) from error


@dataclass
class Quote:
    plan: Plan
    copies: int
    lines: list[pricing.PricedLine]
    totals: pricing.Totals
    promo: PromoCode | None
    first_issue: Issue | None
    addresses: list[AddressInput]


def _line_texts(plan: Plan, locale: str) -> dict[str, str]:
    with force_locale(locale):
        return {
            "subscription": _("%(plan)s, %(issues)s", plan=plan.name(locale),
                              issues=ngettext("%(num)d issue", "%(num)d issues",
                                              plan.issues_per_term)),
            "shipping": _("Shipping"),
            "discount": _("Promo code"),
        }


def quote_checkout(request: CheckoutRequest, *, today: date) -> Quote:
    """Check a checkout request and price it; writes nothing."""
    plan = db.session.get(Plan, request.plan_id)
    if plan is None or not plan.active:
        raise DomainError(_("Choose one of the plans."), field="plan")
    copies = request.copies
    if copies < 1 or copies > MAX_COPIES:
        raise DomainError(_("Choose between 1 and %(n)d copies.", n=MAX_COPIES), field="copies")
    if copies > 1 and not plan.allows_copies:
        raise DomainError(_("Several copies are for organisation plans. Choose one copy."),
                          field="copies")
    addresses: list[AddressInput] = []
    if plan.includes_print:
        # The form's address groups that were filled in, with their place on the form (for
        # putting a message next to the right field).
        filled = [(index, a) for index, a in enumerate(request.addresses)
                  if any((a.name, a.street, a.postcode, a.city))]
        if not filled:
            raise DomainError(_("Fill in the delivery address."), field="addresses")
        for index, address in filled:
            prefix = f"addresses-{index}-"
            _check_address(address, prefix)
            if len(filled) == 1:
                address.copies = copies
            elif not address.copies or address.copies < 1:
                raise DomainError(_("How many copies go to this address?"),
                                  field=prefix + "copies")
            addresses.append(address)
        if sum(a.copies or 0 for a in addresses) != copies:
            raise DomainError(
                _("The copies per address add up to %(sum)d, not %(copies)d.",
                  sum=sum(a.copies or 0 for a in addresses), copies=copies),
                field="copies",
            )
    if plan.is_gift:
        if not request.gift_recipient_name.strip():
            raise DomainError(_("Who receives the gift?"), field="gift_recipient_name")
        if "@" not in request.gift_recipient_email:
            raise DomainError(_("Fill in the e-mail address of the person who receives the "
                                "gift."), field="gift_recipient_email")
    first_issue = None
    if request.first_issue_id:
        first_issue = db.session.get(Issue, request.first_issue_id)
        if first_issue is None or first_issue not in upcoming_issues(today):
            raise DomainError(_("Choose one of the coming issues."), field="first_issue")
    else:
        first_issue = next_issue_for_changes(today)

    texts = _line_texts(plan, request.locale)
    unit = pricing.unit_price_for_copies(plan.price_cents, plan.band_tuples(), copies)
    lines = [pricing.price_line("subscription", texts["subscription"], copies, unit,
                                plan.vat_rate_bp)]
    promo = None
    if request.promo_code.strip():
        promo = find_promo_code(request.promo_code, plan, today)
        off = pricing.discount_cents(lines[0].gross_cents, percent_bp=promo.percent_bp,
                                     fixed_cents=promo.amount_cents)
        if off:
            lines.append(pricing.price_line(
                "discount", f"{texts['discount']} {promo.code}", 1, -off, plan.vat_rate_bp))
    shipping: dict[int, int] = {}
    for address in addresses:
        per_copy = plan.shipping_cents(zone_for_country(address.country))
        if per_copy:
            shipping[per_copy] = shipping.get(per_copy, 0) + (address.copies or 0)
    for per_copy, count in sorted(shipping.items()):
        # Shipping follows the VAT rate of what is shipped (an accessory supply).
        lines.append(pricing.price_line("shipping", texts["shipping"], count, per_copy,
                                        plan.vat_rate_bp))
    return Quote(plan=plan, copies=copies, lines=lines, totals=pricing.totals(lines),
                 promo=promo, first_issue=first_issue, addresses=addresses)


def _new_communications(count: int) -> list[str]:
    """`count` new structured communications, none in use (one SELECT per round)."""
    # Random rather than counted: the number of orders is nobody's business.
    chosen: list[str] = []
    while len(chosen) < count:
        candidates = {structured_communication(secrets.randbelow(9 * 10**9) + 10**9)
                      for _ in range(count - len(chosen))} - set(chosen)
        taken = set(db.session.scalars(
            sa.select(Order.structured_communication)
            .where(Order.structured_communication.in_(sorted(candidates)))))
        chosen += sorted(candidates - taken)
    return chosen


def _become_subscriber(user: User, actor: User | None) -> None:
    if not user.has_role(Role.SUBSCRIBER):
        user.role_rows.append(UserRole(role=Role.SUBSCRIBER))
        audit.record("user.roles_changed", "user", user.id, actor=actor,
                     granted=[Role.SUBSCRIBER.value], removed=[], via="checkout")


@dataclass(frozen=True)
class PlacedOrder:
    """A placed order, and where the buyer goes to pay: `redirect_url` for an online
    provider's page, None to show the bank transfer instructions on the order page."""

    order: Order
    redirect_url: str | None = None


def _checked_provider(name: str):
    try:
        provider = get_provider(name)
    except LookupError:
        provider = None
    if provider is None or not provider.is_available(current_app):
        raise DomainError(_("Choose one of the payment methods."), field="provider")
    return provider


def _checked_billing(request: CheckoutRequest, addresses: list[AddressInput]) -> str:
    """Check the billing details (completing the address from the delivery address when
    left empty); returns the VAT number in its compact form."""
    vat_number = validate_vat_number(request.billing_vat_number)
    if request.billing_street.strip() or request.billing_postcode.strip():
        if not request.billing_street.strip():
            raise DomainError(_("Fill in this part of the address."), field="billing_street")
        if not request.billing_city.strip():
            raise DomainError(_("Fill in this part of the address."), field="billing_city")
        request.billing_postcode = validate_postcode(
            request.billing_postcode, request.billing_country, "billing_postcode")
    elif addresses:
        first = addresses[0]
        request.billing_street, request.billing_postcode = first.street, first.postcode
        request.billing_city, request.billing_country = first.city, first.country
    elif request.billing_organisation.strip():
        raise DomainError(_("An organisation's invoice needs its address."),
                          field="billing_street")
    return vat_number


def _new_order(request: CheckoutRequest, *, buyer: User, provider_name: str, vat_number: str,
               lines: list[pricing.PricedLine], plan_id: int | None = None,
               offer_id: int | None = None, promo: PromoCode | None = None) -> Order:
    return _new_orders([NewOrder(request, buyer, provider_name, vat_number, lines, plan_id,
                                 offer_id, promo)])[0]


@dataclass
class NewOrder:
    """What `_new_orders` makes an order of."""

    request: CheckoutRequest
    buyer: User
    provider_name: str
    vat_number: str
    lines: list[pricing.PricedLine]
    plan_id: int | None = None
    offer_id: int | None = None
    promo: PromoCode | None = None


def _new_orders(specs: Sequence[NewOrder]) -> list[Order]:
    """New orders with their lines, flushed together (one INSERT per table)."""
    communications = _new_communications(len(specs))
    expires_at = now_utc() + timedelta(days=current_app.config["ORDER_PAYMENT_DAYS"])
    orders = []
    for spec, communication in zip(specs, communications, strict=True):
        request, buyer = spec.request, spec.buyer
        totals = pricing.totals(spec.lines)
        order = Order(
            user_id=buyer.id, locale=request.locale,
            structured_communication=communication, provider=spec.provider_name,
            billing_name=request.billing_name.strip() or buyer.name,
            billing_email=buyer.email,
            billing_organisation=request.billing_organisation.strip(),
            billing_vat_number=spec.vat_number,
            billing_po_reference=request.billing_po_reference.strip(),
            billing_street=request.billing_street.strip(),
            billing_postcode=request.billing_postcode.strip(),
            billing_city=request.billing_city.strip(),
            billing_country=request.billing_country,
            promo_code_id=spec.promo.id if spec.promo else None,
            total_cents=totals.gross_cents, vat_cents=totals.vat_cents,
            expires_at=expires_at,
        )
        for position, line in enumerate(spec.lines):
            order.lines.append(OrderLine(
                position=position, kind=line.kind, description=line.description,
                plan_id=spec.plan_id,
                offer_id=spec.offer_id if line.kind == "single_copy" else None,
                quantity=line.quantity, unit_cents=line.unit_cents, vat_rate_bp=line.rate_bp,
                gross_cents=line.gross_cents, vat_cents=line.vat_cents,
            ))
        db.session.add(order)
        orders.append(order)
    db.session.flush()
    return orders


def _open_payment(order: Order, provider, *, buyer: User,
                  save_method: bool = False) -> PlacedOrder:
    """Open the payment with the provider, issue the invoice, mail how to pay."""
    if provider.online and order.total_cents > 0:
        from subscriptions import payments

        return payments.open_online_payment(order, provider, buyer=buyer,
                                            save_method=save_method)
    payment = Payment(order_id=order.id, provider=provider.name, amount_cents=order.total_cents)
    db.session.add(payment)
    db.session.flush()
    start = provider.start_payment(
        payment, return_url=external_url("subscriptions.order_detail", order_id=order.id))
    payment.provider_ref = start.provider_ref
    invoice = issue_invoice(order, actor=buyer)
    if order.total_cents == 0:
        record_payment(order, provider_name="manual", amount_cents=0, actor=None,
                       note="free with promo code")
        return PlacedOrder(order)
    _mail_order_confirmation(order, invoice)
    return PlacedOrder(order, start.redirect_url)


def place_order(request: CheckoutRequest, *, buyer: User) -> PlacedOrder:
    """Place a subscription order: price it, claim the promo code, create the order with
    its lines, the pending subscription and its delivery addresses, open the payment with the
    chosen provider, issue the invoice, and mail the confirmation with how to pay.

    The subscription stays `pending_payment` until the payment is recorded."""
    today = today_brussels()
    quote = quote_checkout(request, today=today)
    provider = _checked_provider(request.provider)
    vat_number = _checked_billing(request, quote.addresses)
    if quote.promo is not None:
        claim_promo_code(quote.promo)
    order = _new_order(request, buyer=buyer, provider_name=provider.name,
                       vat_number=vat_number, lines=quote.lines, plan_id=quote.plan.id,
                       promo=quote.promo)

    subscription = Subscription(
        subscriber_id=buyer.id, plan_id=quote.plan.id, order_id=order.id,
        state=SubscriptionState.PENDING_PAYMENT, copies=quote.copies,
        issues_granted=quote.plan.issues_per_term, issues_remaining=quote.plan.issues_per_term,
        first_issue_id=quote.first_issue.id if quote.first_issue else None,
        auto_renew=not quote.plan.is_gift,
        gift_recipient_name=request.gift_recipient_name.strip() if quote.plan.is_gift else "",
        gift_recipient_email=request.gift_recipient_email.strip().lower()
        if quote.plan.is_gift else "",
        gift_message=request.gift_message.strip() if quote.plan.is_gift else "",
    )
    for group_no, address in enumerate(quote.addresses, start=1):
        subscription.addresses.append(DeliveryAddress(
            group_no=group_no, copies=address.copies or 1, name=address.name.strip(),
            organisation=address.organisation.strip(), street=address.street.strip(),
            postcode=address.postcode, city=address.city.strip(), country=address.country,
        ))
    db.session.add(subscription)
    _become_subscriber(buyer, buyer)
    db.session.flush()
    audit.record("order.placed", "order", order.id, actor=buyer, total_cents=order.total_cents,
                 plan=quote.plan.code, copies=quote.copies)
    return _open_payment(order, provider, buyer=buyer,
                         save_method=request.save_method and subscription.auto_renew)


# ---------------------------------------------------------------- single copies

MAX_SINGLE_COPIES = 50


def offers_for_sale() -> Sequence[SingleCopyOffer]:
    return db.session.scalars(
        sa.select(SingleCopyOffer).join(Issue).where(SingleCopyOffer.active.is_(True))
        .order_by(Issue.print_date.desc(), Issue.id.desc())
    ).all()


def place_single_copy_order(
    offer: SingleCopyOffer, quantity: int, address: AddressInput, request: CheckoutRequest,
    *, buyer: User,
) -> PlacedOrder:
    """Buy copies of one issue (a back issue or a single copy) while stock lasts. The stock
    is taken by a conditional update, so it never goes below zero; an unpaid order that
    expires gives its copies back. The price includes shipping."""
    if not offer.active:
        raise DomainError(_("This issue is not for sale."), field="quantity")
    if not 1 <= quantity <= MAX_SINGLE_COPIES:
        raise DomainError(_("Choose between 1 and %(n)d copies.", n=MAX_SINGLE_COPIES),
                          field="quantity")
    _check_address(address, "address-")
    provider = _checked_provider(request.provider)
    vat_number = _checked_billing(request, [address])
    take_stock(offer.id, quantity)
    with force_locale(request.locale):
        description = _("Kinderopvang Magazine %(code)s", code=offer.issue.code)
        if offer.issue.theme:
            description += f" — {offer.issue.theme}"
        destination = _("Delivery: %(address)s", address=", ".join(
            x for x in (address.name, address.organisation, address.street,
                        f"{address.postcode} {address.city}", address.country) if x))
    line = pricing.price_line("single_copy", f"{description} ({destination})"[:300], quantity,
                              offer.price_cents, offer.vat_rate_bp)
    order = _new_order(request, buyer=buyer, provider_name=provider.name,
                       vat_number=vat_number, lines=[line], offer_id=offer.id)
    from subscriptions.fulfilment_models import OrderDelivery

    # Kept apart for the mailing file (subscriptions.dispatch), street split there.
    db.session.add(OrderDelivery(
        order_id=order.id, name=address.name.strip(),
        organisation=address.organisation.strip(), street=address.street.strip(),
        postcode=address.postcode, city=address.city.strip(), country=address.country))
    audit.record("order.placed", "order", order.id, actor=buyer, total_cents=order.total_cents,
                 issue=offer.issue.code, copies=quantity)
    return _open_payment(order, provider, buyer=buyer)


def _mail_order_confirmation(order: Order, invoice: Invoice) -> None:
    config = current_app.config
    queue_mail(
        order.billing_email, "subscriptions_order_confirmation", key=f"order-placed:{order.id}",
        locale=order.locale, order=order, invoice=invoice,
        iban=config["BANK_IBAN"], bic=config["BANK_BIC"], beneficiary=config["PUBLISHER_NAME"],
        due_date=invoice.due_date,
        order_url=external_url("subscriptions.order_detail", order_id=order.id),
    )


# ---------------------------------------------------------------- invoices

def _buyer_address(order: Order) -> str:
    parts = [order.billing_street, f"{order.billing_postcode} {order.billing_city}".strip(),
             order.billing_country if order.billing_street else ""]
    return "\n".join(p for p in parts if p)


def issue_invoice(order: Order, *, actor: User | None) -> Invoice:
    """Issue the order's invoice (once): the next number of the year, the buyer's details
    as they are now, the due date of the order."""
    return issue_invoices([order], actor=actor)[0]


def issue_invoices(orders: Sequence[Order], *, actor: User | None) -> list[Invoice]:
    """`issue_invoice` for many orders at once: the orders without an invoice get the next
    numbers of the year, in the order given (one counter statement, one flush); returns
    each order's invoice."""
    new = [order for order in orders if order.invoice is None]
    if new:
        today = today_brussels()
        numbers = next_document_numbers(INVOICE_SERIES, today.year, len(new))
        for order, (sequence, number) in zip(new, numbers, strict=True):
            invoice = Invoice(
                number=number, year=today.year, sequence=sequence, order_id=order.id,
                issue_date=today, due_date=order.expires_at.astimezone(BRUSSELS).date(),
                total_cents=order.total_cents, vat_cents=order.vat_cents,
                buyer_name=order.billing_name, buyer_organisation=order.billing_organisation,
                buyer_vat_number=order.billing_vat_number, buyer_address=_buyer_address(order),
                buyer_email=order.billing_email, locale=order.locale,
            )
            db.session.add(invoice)
            order.invoice = invoice
        db.session.flush()
        for order in new:
            invoice = order.invoice
            audit.record("invoice.issued", "invoice", invoice.id, actor=actor,
                         number=invoice.number, order=order.id)
            peppol_sender.queue_if_configured(invoice)
    return [order.invoice for order in orders]


def issue_credit_note(
    invoice: Invoice, *, amount_cents: int | None = None, reason: str, actor: User | None
) -> CreditNote:
    """Credit (part of) an invoice. The whole invoice when no amount is given; VAT in the
    same proportion, by the pricing rule."""
    credited = sum(note.total_cents for note in invoice.credit_notes)
    amount = invoice.total_cents - credited if amount_cents is None else amount_cents
    if amount <= 0 or credited + amount > invoice.total_cents:
        raise DomainError(_("A credit note cannot credit more than the invoice."),
                          field="amount")
    if amount == invoice.total_cents:
        vat = invoice.vat_cents
    else:
        rate = invoice.order.lines[0].vat_rate_bp if invoice.order.lines else 0
        vat = pricing.vat_in_gross(amount, rate)
    today = today_brussels()
    sequence, number = next_document_number(CREDIT_NOTE_SERIES, today.year)
    note = CreditNote(
        number=number, year=today.year, sequence=sequence, invoice_id=invoice.id,
        issue_date=today, reason=reason, total_cents=amount, vat_cents=vat,
        buyer_name=invoice.buyer_name, buyer_organisation=invoice.buyer_organisation,
        buyer_vat_number=invoice.buyer_vat_number, buyer_address=invoice.buyer_address,
        buyer_email=invoice.buyer_email, locale=invoice.locale,
    )
    db.session.add(note)
    invoice.credit_notes.append(note)
    db.session.flush()
    audit.record("credit_note.issued", "credit_note", note.id, actor=actor, number=number,
                 invoice=invoice.number, amount_cents=amount)
    peppol_sender.queue_if_configured(note)
    return note


def resend_invoice(invoice: Invoice, *, actor: User) -> None:
    _require_coordinator(actor)
    order = invoice.order
    queue_mail(
        invoice.buyer_email, "subscriptions_invoice",
        key=f"invoice-resent:{invoice.id}:{now_utc().isoformat()}", locale=invoice.locale,
        invoice=invoice, order=order,
        invoice_url=external_url("subscriptions.invoice_pdf", invoice_id=invoice.id),
    )
    audit.record("invoice.resent", "invoice", invoice.id, actor=actor)


# ---------------------------------------------------------------- payments

def _locked_order(order_id: int) -> Order:
    """The order, read again under a lock held to the end of the transaction, so a webhook
    and the coordinator (or two clicks) confirm it once.

    The lock is taken by writing the row (a no-op update) before reading it: on PostgreSQL
    that is a row lock like SELECT … FOR UPDATE; on SQLite it takes the database's write
    lock, and a second writer waits (busy timeout) instead of working on a stale read."""
    orders = _locked_orders([order_id])
    if not orders:
        raise DomainError(_("This order does not exist."))
    return orders[0]


def _locked_orders(order_ids: Sequence[int], options: Sequence = ()) -> list[Order]:
    """`_locked_order` for many orders (in ascending id order, as every path locks them):
    two statements for all, and `options` (loader options) for what the caller reads."""
    ids = sorted(set(order_ids))
    where = Order.id.in_(ids) if len(ids) > 1 else Order.id == ids[0]
    db.session.execute(
        sa.update(Order).where(where).values(state=Order.state)
        .execution_options(synchronize_session=False)
    )
    return list(db.session.scalars(
        sa.select(Order).where(where).order_by(Order.id).with_for_update(of=Order)
        .options(*options).execution_options(populate_existing=True)
    ))


def record_payment(
    order: Order, *, provider_name: str, amount_cents: int | None = None,
    actor: User | None, received_on: date | None = None, note: str = "",
    provider_ref: str | None = None, payment: Payment | None = None, locked: bool = False,
) -> Payment | None:
    """Money came in for an order: the payment becomes paid, the order paid, its
    subscriptions active; the buyer (and a gift's recipient) are mailed. Recording it a
    second time changes nothing and returns None. `locked`: the caller holds the order's
    lock and read it under it (`_locked_order`), so it is not locked and read again."""
    return record_payments([PaymentReceived(order, provider_name, amount_cents, received_on,
                                            note, provider_ref, payment)],
                           actor=actor, locked=locked)[0]


@dataclass
class PaymentReceived:
    """One order's money, for `record_payments` (the arguments of `record_payment`)."""

    order: Order
    provider_name: str
    amount_cents: int | None = None
    received_on: date | None = None
    note: str = ""
    provider_ref: str | None = None
    payment: Payment | None = None


def record_payments(received: Sequence[PaymentReceived], *, actor: User | None,
                    locked: bool = False) -> list[Payment | None]:
    """`record_payment` for the money of many orders (one each) at once: the payments and
    the orders moved to paid with one conditional UPDATE each. Returns each one's payment
    (None: it was recorded before)."""
    if actor is not None:
        _require_coordinator(actor)
    if locked:
        orders = [r.order for r in received]
    else:
        by_id = {o.id: o for o in _locked_orders([r.order.id for r in received])}
        if len(by_id) != len({r.order.id for r in received}):
            raise DomainError(_("This order does not exist."))
        orders = [by_id[r.order.id] for r in received]
    if len({order.id for order in orders}) != len(orders):
        raise DomainError(_("This was changed by someone else a moment ago. Reload the page."))
    results: list[Payment | None] = []
    paying: list[tuple[Order, Payment, int]] = []
    now = now_utc()
    for entry, order in zip(received, orders, strict=True):
        if order.state == OrderState.PAID:
            results.append(None)
            continue
        if order.state != OrderState.AWAITING_PAYMENT:
            raise DomainError(_("This order is %(state)s: it cannot be paid any more.",
                                state=order.state.value))
        amount = order.total_cents if entry.amount_cents is None else entry.amount_cents
        if amount != order.total_cents:
            raise DomainError(
                _("The amount differs from the order's total; record the exact total."),
                field="amount",
            )
        # An online provider names its payment (the one its webhook is about).
        payment = entry.payment or next(
            (p for p in order.payments if p.provider == entry.provider_name
             and p.state in (PaymentState.OPEN, PaymentState.PENDING)), None)
        if payment is None:
            payment = Payment(order_id=order.id, provider=entry.provider_name,
                              amount_cents=amount)
            db.session.add(payment)
            db.session.flush()
        for other in order.payments:
            if other is not payment and other.state in (PaymentState.OPEN,
                                                        PaymentState.PENDING):
                move_payment(other, PaymentState.CANCELLED, actor=actor,
                             reason="paid otherwise")
        payment.received_on = entry.received_on or today_brussels()
        payment.paid_at = now
        payment.recorded_by_id = actor.id if actor else None
        payment.note = entry.note[:300]
        if entry.provider_ref:
            payment.provider_ref = entry.provider_ref
        paying.append((order, payment, amount))
        results.append(payment)
    if not paying:
        return results
    move_payments([payment for _o, payment, _a in paying], PaymentState.PAID, actor=actor,
                  each=[{"amount_cents": amount} for _o, _p, amount in paying])
    for order, _payment, _amount in paying:
        order.paid_at = now
    move_orders([order for order, _p, _a in paying], OrderState.PAID, actor=actor)
    for order, _payment, _amount in paying:
        for subscription in order.subscriptions:
            activate_subscription(subscription, actor=actor)
    account_url = external_url("core.account")
    queue_mails([Mail(order.billing_email, "subscriptions_payment_received",
                      f"order-paid:{order.id}", order.locale,
                      {"order": order, "account_url": account_url})
                 for order, _payment, _amount in paying])
    return results


def activate_subscription(subscription: Subscription, *, actor: User | None) -> None:
    if subscription.state != SubscriptionState.PENDING_PAYMENT:
        return
    move_subscription(subscription, SubscriptionState.ACTIVE, actor=actor)
    subscription.activated_at = now_utc()
    if subscription.is_gift and subscription.gift_announced_at is None:
        subscription.gift_announced_at = now_utc()
        buyer = subscription.subscriber
        queue_mail(
            subscription.gift_recipient_email, "subscriptions_gift_started",
            key=f"gift-started:{subscription.id}",
            locale=subscription.order.locale if subscription.order else "nl_BE",
            subscription=subscription, buyer_name=buyer.name if buyer else "",
            plan_name=subscription.plan.name(
                subscription.order.locale if subscription.order else "nl_BE"),
            first_issue=subscription.first_issue,
        )


# ---------------------------------------------------------------- unpaid orders (job)

def remind_unpaid_order(order: Order) -> bool:
    """Mail one reminder for an unpaid order, claimed by a conditional update."""
    claimed = db.session.execute(
        sa.update(Order)
        .where(Order.id == order.id, Order.state == OrderState.AWAITING_PAYMENT,
               Order.reminder_sent_at.is_(None))
        .values(reminder_sent_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return False
    db.session.refresh(order)
    queue_mail(
        order.billing_email, "subscriptions_order_reminder", key=f"order-reminder:{order.id}",
        locale=order.locale, order=order, invoice=order.invoice,
        iban=current_app.config["BANK_IBAN"], bic=current_app.config["BANK_BIC"],
        beneficiary=current_app.config["PUBLISHER_NAME"],
        expires_on=order.expires_at.astimezone(BRUSSELS).date(),
        order_url=external_url("subscriptions.order_detail", order_id=order.id),
    )
    audit.record("order.reminded", "order", order.id, actor=None)
    return True


def close_unpaid_order(order: Order, *, to: OrderState, actor: User | None,
                       reason: str) -> None:
    """Expire (not paid in time) or cancel an unpaid order: its payment stops, its
    subscriptions expire, stock and promo use come back, and its invoice is credited."""
    if actor is not None:
        _require_coordinator(actor)
    move_order(order, to, actor=actor, reason=reason)
    order.closed_at = now_utc()
    for payment in order.payments:
        if payment.state in (PaymentState.OPEN, PaymentState.PENDING):
            if payment.state == PaymentState.OPEN and payment.provider_ref:
                from subscriptions.payments import cancel_at_provider

                cancel_at_provider(payment)  # so the buyer cannot pay it afterwards
            move_payment(payment, PaymentState.EXPIRED if to == OrderState.EXPIRED
                         else PaymentState.CANCELLED, actor=actor)
    for subscription in order.subscriptions:
        if subscription.state == SubscriptionState.PENDING_PAYMENT:
            move_subscription(subscription, SubscriptionState.EXPIRED, actor=actor)
    for line in order.lines:
        if line.offer_id is not None:
            release_stock(line.offer_id, line.quantity)
    if order.promo_code is not None:
        release_promo_code(order.promo_code)
    if order.invoice is not None:
        with force_locale(order.locale):
            text = (_("Order not paid in time") if to == OrderState.EXPIRED
                    else _("Order cancelled"))
        issue_credit_note(order.invoice, reason=text, actor=actor)
    if to == OrderState.EXPIRED:
        queue_mail(order.billing_email, "subscriptions_order_expired",
                   key=f"order-expired:{order.id}", locale=order.locale, order=order,
                   plans_url=external_url("subscriptions.plans"))


# ---------------------------------------------------------------- stock

def take_stock(offer_id: int, quantity: int) -> None:
    """Take `quantity` copies, only if that many are left (a conditional update: never
    below zero, whatever runs at the same time)."""
    if quantity < 1:
        raise DomainError(_("Choose at least one copy."), field="quantity")
    taken = db.session.execute(
        sa.update(SingleCopyOffer)
        .where(SingleCopyOffer.id == offer_id, SingleCopyOffer.active.is_(True),
               SingleCopyOffer.stock >= quantity)
        .values(stock=SingleCopyOffer.stock - quantity)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise DomainError(_("Not enough copies of this issue are left."), field="quantity")


def release_stock(offer_id: int, quantity: int) -> None:
    db.session.execute(
        sa.update(SingleCopyOffer).where(SingleCopyOffer.id == offer_id)
        .values(stock=SingleCopyOffer.stock + quantity)
        .execution_options(synchronize_session=False)
    )


def save_offer(issue: Issue, *, price_cents: int, stock: int, active: bool,
               actor: User | None) -> SingleCopyOffer:
    """Put an issue up for sale (or change its price, stock or availability). The stock
    set here is the count on the shelf now; orders take from it one conditional update at
    a time."""
    if actor is not None:
        _require_coordinator(actor)
    if price_cents <= 0:
        raise DomainError(_("A price above zero, please."), field="price")
    if stock < 0:
        raise DomainError(_("Zero or more."), field="stock")
    offer = db.session.scalar(sa.select(SingleCopyOffer).where(
        SingleCopyOffer.issue_id == issue.id))
    if offer is None:
        offer = SingleCopyOffer(issue_id=issue.id, price_cents=price_cents)
        db.session.add(offer)
    offer.price_cents, offer.stock, offer.active = price_cents, stock, active
    db.session.flush()
    audit.record("offer.saved", "offer", offer.id, actor=actor, issue=issue.code,
                 price_cents=price_cents, stock=stock, active=active)
    return offer


def all_offers() -> Sequence[SingleCopyOffer]:
    return db.session.scalars(
        sa.select(SingleCopyOffer).join(Issue)
        .order_by(Issue.print_date.desc(), Issue.id.desc())).all()


def issues_without_offer() -> Sequence[Issue]:
    return db.session.scalars(
        sa.select(Issue).where(~Issue.id.in_(sa.select(SingleCopyOffer.issue_id)))
        .order_by(Issue.print_date.desc(), Issue.id.desc())).all()


# ---------------------------------------------------------------- queries for pages

def subscriptions_of(user: User) -> Sequence[Subscription]:
    return db.session.scalars(
        sa.select(Subscription).where(Subscription.subscriber_id == user.id)
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ).all()


def account_subscriptions(user: User) -> Sequence[Subscription]:
    """`subscriptions_of` with what the account page shows loaded in the same round."""
    return db.session.scalars(
        sa.select(Subscription).where(Subscription.subscriber_id == user.id)
        .options(sa.orm.joinedload(Subscription.plan).lazyload(Plan.price_bands))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ).all()


def account_orders(user: User) -> Sequence[Order]:
    """`orders_of` with the invoices and credit notes (not the lines) the account page shows."""
    return db.session.scalars(
        sa.select(Order).where(Order.user_id == user.id)
        .options(sa.orm.lazyload(Order.lines),
                 sa.orm.joinedload(Order.invoice).selectinload(Invoice.credit_notes))
        .order_by(Order.created_at.desc(), Order.id.desc())
    ).all()


def orders_of(user: User) -> Sequence[Order]:
    return db.session.scalars(
        sa.select(Order).where(Order.user_id == user.id)
        .order_by(Order.created_at.desc(), Order.id.desc())
    ).all()


def own_order(user: User, order_id: int) -> Order | None:
    """The order if it is `user`'s (the coordinator sees every order), else None."""
    order = db.session.get(Order, order_id)
    if order is None or (order.user_id != user.id and not is_coordinator(user)):
        return None
    return order


def own_subscription(user: User, subscription_id: int) -> Subscription | None:
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None or subscription.subscriber_id != user.id:
        return None
    return subscription


def own_invoice(user: User, invoice_id: int) -> Invoice | None:
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or own_order(user, invoice.order_id) is None:
        return None
    return invoice


def own_credit_note(user: User, note_id: int) -> CreditNote | None:
    note = db.session.get(CreditNote, note_id)
    if note is None or own_invoice(user, note.invoice_id) is None:
        return None
    return note




# ---------------------------------------------------------------- accounts at checkout

def create_buyer_account(name: str, email: str, password: str, *, locale: str) -> User:
    """A newcomer's account, made in the checkout: subscriber role, a mail to confirm the
    address (needed for later logins)."""
    from magazine.auth.services import create_user, send_verification

    if not name.strip():
        raise DomainError(_("Fill in your name."), field="name")
    if not email.strip():
        raise DomainError(_("Fill in your e-mail address."), field="email")
    try:
        user = create_user(email, name, password, roles={Role.SUBSCRIBER}, locale=locale)
    except DomainError as error:
        if error.field == "email":
            raise DomainError(
                _("There is already an account with this e-mail address. Log in first, then "
                  "order."), field="email") from error
        raise
    send_verification(user)
    return user


# ---------------------------------------------------------------- addresses

@dataclass(frozen=True)
class AddressGroup:
    group_no: int
    copies: int
    current: DeliveryAddress          # where the next issue goes
    pending: DeliveryAddress | None   # a change that applies from a later issue


def _applies_to(row: DeliveryAddress, issue: Issue | None) -> bool:
    start = row.effective_from_issue
    if start is None:
        return True
    if issue is None:
        return False
    return (start.print_date, start.id) <= (issue.print_date, issue.id)


def address_for_issue(subscription: Subscription, group_no: int,
                      issue: Issue | None) -> DeliveryAddress | None:
    """The address of a copy group for one issue: the newest row that applies to it."""
    rows = [row for row in subscription.addresses if row.group_no == group_no]
    applying = [row for row in rows if _applies_to(row, issue)]
    if applying:
        return max(applying, key=lambda row: row.id)
    return min(rows, key=lambda row: row.id) if rows else None


def address_groups(subscription: Subscription,
                   schedule: SubscriptionSchedule) -> list[AddressGroup]:
    groups = []
    for group_no in sorted({row.group_no for row in subscription.addresses}):
        current = address_for_issue(subscription, group_no, schedule.next_issue)
        latest = max((row for row in subscription.addresses if row.group_no == group_no),
                     key=lambda row: row.id)
        pending = latest if latest is not current else None
        groups.append(AddressGroup(group_no, current.copies, current, pending))
    return groups


def _can_manage(subscription: Subscription, actor: User) -> None:
    if subscription.subscriber_id != actor.id and not is_coordinator(actor):
        raise PermissionDenied(_("This is not your subscription."))


def _check_address(address: AddressInput, prefix: str = "") -> AddressInput:
    for name in ("name", "street", "postcode", "city"):
        if not getattr(address, name).strip():
            raise DomainError(_("Fill in this part of the address."), field=prefix + name)
    if address.country not in EU_COUNTRIES:
        raise DomainError(_("We deliver print in the European Union."),
                          field=prefix + "country")
    address.postcode = validate_postcode(address.postcode, address.country, prefix + "postcode")
    return address


def change_address(subscription: Subscription, group_no: int, address: AddressInput, *,
                   actor: User) -> Issue | None:
    """A new delivery address for one copy group. It applies to the first issue whose
    dispatch cut-off has not passed (`next_issue_for_changes`): before the cut-off that is
    the next issue, after it the one after. Returns that issue (None: nothing planned)."""
    _can_manage(subscription, actor)
    rows = [row for row in subscription.addresses if row.group_no == group_no]
    if not rows:
        raise DomainError(_("Choose one of the addresses."), field="group_no")
    _check_address(address, "address-")
    issue = next_issue_for_changes(today_brussels())
    copies = max(rows, key=lambda row: row.id).copies
    subscription.addresses.append(DeliveryAddress(
        group_no=group_no, copies=copies, name=address.name.strip(),
        organisation=address.organisation.strip(), street=address.street.strip(),
        postcode=address.postcode, city=address.city.strip(), country=address.country,
        effective_from_issue_id=issue.id if issue else None,
    ))
    db.session.flush()
    audit.record("subscription.address_changed", "subscription", subscription.id, actor=actor,
                 group=group_no, from_issue=issue.code if issue else None)
    return issue


# ---------------------------------------------------------------- the subscriber's choices

def set_auto_renew(subscription: Subscription, on: bool, *, reason: str = "",
                   actor: User) -> None:
    """Auto-renew off: an active subscription becomes `cancelled` and ends after its last
    issue. Back on (while issues remain): it is active again."""
    _can_manage(subscription, actor)
    if subscription.is_gift or subscription.complimentary:
        raise DomainError(_("A gift or complimentary subscription does not renew."))
    if on:
        if subscription.state == SubscriptionState.CANCELLED:
            if subscription.issues_remaining == 0:
                raise DomainError(_("This subscription has ended. Subscribe again on the "
                                    "plans page."))
            move_subscription(subscription, SubscriptionState.ACTIVE, actor=actor,
                              auto_renew=True)
        subscription.auto_renew = True
        subscription.cancel_reason = ""
        audit.record("subscription.auto_renew_on", "subscription", subscription.id,
                     actor=actor)
        return
    subscription.auto_renew = False
    subscription.cancel_reason = reason.strip()[:500]
    if subscription.state == SubscriptionState.ACTIVE:
        move_subscription(subscription, SubscriptionState.CANCELLED, actor=actor,
                          reason=subscription.cancel_reason)
    else:
        audit.record("subscription.auto_renew_off", "subscription", subscription.id,
                     actor=actor, reason=subscription.cancel_reason)


def plans_for_next_term(subscription: Subscription) -> list[Plan]:
    return [plan for plan in active_plans()
            if not plan.is_gift and (plan.allows_copies or subscription.copies == 1)]


def change_next_plan(subscription: Subscription, plan: Plan | None, *, actor: User) -> None:
    """The plan the next term renews into (the current term is not changed)."""
    _can_manage(subscription, actor)
    if plan is None or plan not in plans_for_next_term(subscription):
        raise DomainError(_("Choose one of the plans."), field="plan")
    subscription.next_plan_id = None if plan.id == subscription.plan_id else plan.id
    audit.record("subscription.next_plan", "subscription", subscription.id, actor=actor,
                 plan=plan.code)


# ---------------------------------------------------------------- coordinator actions

def extend_subscription(subscription: Subscription, issues: int, *, actor: User,
                        reason: str = "") -> None:
    _require_coordinator(actor)
    if not 1 <= issues <= 60:
        raise DomainError(_("Between 1 and 60."), field="issues")
    if subscription.state in (SubscriptionState.EXPIRED, SubscriptionState.LAPSED):
        raise DomainError(_("This subscription has ended; give a complimentary one instead."))
    subscription.issues_granted += issues
    subscription.issues_remaining += issues
    audit.record("subscription.extended", "subscription", subscription.id, actor=actor,
                 issues=issues, reason=reason)


def invite_subscriber(email: str, name: str, *, actor: User) -> User:
    """An account for someone the coordinator gives a subscription to; they get the
    foundation's invitation to choose a password."""
    from magazine.auth.services import find_user_by_email, invite_user

    _require_coordinator(actor)
    if find_user_by_email(email) is not None:
        raise DomainError(_("This person has an account already: find them in the list and "
                            "give the subscription on their page."), field="email")
    return invite_user(email, name, {Role.SUBSCRIBER}, actor=actor)


def give_complimentary(user: User, plan: Plan, *, copies: int, issues: int,
                       address: AddressInput | None, reason: str, actor: User) -> Subscription:
    """A free subscription (partners, board members, the legal deposit): active at once,
    never renewed, no order or invoice."""
    _require_coordinator(actor)
    if copies < 1 or issues < 1:
        raise DomainError(_("Between 1 and 60."), field="issues")
    if plan.includes_print:
        if address is None:
            raise DomainError(_("Fill in the delivery address."), field="address-name")
        _check_address(address, "address-")
    first = next_issue_for_changes(today_brussels())
    subscription = Subscription(
        subscriber_id=user.id, plan_id=plan.id, copies=copies, issues_granted=issues,
        issues_remaining=issues, first_issue_id=first.id if first else None,
        auto_renew=False, complimentary=True, note=reason.strip()[:300],
        state=SubscriptionState.PENDING_PAYMENT,
    )
    if plan.includes_print and address is not None:
        subscription.addresses.append(DeliveryAddress(
            group_no=1, copies=copies, name=address.name.strip(),
            organisation=address.organisation.strip(), street=address.street.strip(),
            postcode=address.postcode, city=address.city.strip(), country=address.country))
    db.session.add(subscription)
    _become_subscriber(user, actor)
    db.session.flush()
    audit.record("subscription.complimentary", "subscription", subscription.id, actor=actor,
                 reason=reason, issues=issues, copies=copies)
    move_subscription(subscription, SubscriptionState.ACTIVE, actor=actor)
    subscription.activated_at = now_utc()
    queue_mail(user.email, "subscriptions_complimentary",
               key=f"complimentary:{subscription.id}", locale=user.locale, user=user,
               plan_name=plan.name(user.locale), issues=issues, first_issue=first,
               account_url=external_url("core.account"))
    return subscription


def record_manual_payment(order: Order, *, actor: User, note: str,
                          received_on: date | None = None) -> Payment | None:
    if not note.strip():
        raise DomainError(_("Say how it was paid (e.g. cash at the study day)."), field="note")
    return record_payment(order, provider_name="manual", actor=actor, note=note,
                          received_on=received_on)


def record_bank_transfer(order: Order, *, actor: User, received_on: date | None = None,
                         note: str = "") -> Payment | None:
    return record_payment(order, provider_name="bank_transfer", actor=actor, note=note,
                          received_on=received_on)


# ---------------------------------------------------------------- the coordinator's lists

def subscription_counts() -> dict[SubscriptionState, int]:
    return dict(db.session.execute(
        sa.select(Subscription.state, sa.func.count()).group_by(Subscription.state)).all())


def subscriber_search(query: str, *, state: SubscriptionState | None = None,
                      plan_id: int | None = None) -> sa.Select:
    """People with a subscription or an order, matching name, e-mail, organisation, a
    structured communication (with or without +++ and slashes) or an invoice number; and,
    when given, holding a subscription in that state and/or of that plan."""
    statement = sa.select(User).where(sa.or_(
        User.id.in_(sa.select(Subscription.subscriber_id)),
        User.id.in_(sa.select(Order.user_id)),
    ))
    if state is not None or plan_id is not None:
        holding = sa.select(Subscription.subscriber_id)
        if state is not None:
            holding = holding.where(Subscription.state == state)
        if plan_id is not None:
            holding = holding.where(Subscription.plan_id == plan_id)
        statement = statement.where(User.id.in_(holding))
    text = query.strip()
    if text:
        pattern = f"%{text.lower()}%"
        digits = "".join(ch for ch in text if ch.isdigit())
        conditions = [
            sa.func.lower(User.name).like(pattern),
            User.email.like(pattern),
            User.id.in_(sa.select(Order.user_id).where(
                sa.func.lower(Order.billing_organisation).like(pattern))),
            User.id.in_(sa.select(Subscription.subscriber_id).join(DeliveryAddress).where(
                sa.func.lower(DeliveryAddress.organisation).like(pattern))),
            User.id.in_(sa.select(Order.user_id).join(Invoice).where(
                Invoice.number.like(f"%{text}%"))),
        ]
        if len(digits) >= 6:
            conditions.append(User.id.in_(sa.select(Order.user_id).where(
                Order.structured_communication.like(f"%{digits}%"))))
        statement = statement.where(sa.or_(*conditions))
    return statement.order_by(User.name, User.id)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    text: str
    order_id: int | None = None
    invoice_id: int | None = None
    credit_note_id: int | None = None


def timeline_for(user: User) -> list[TimelineEntry]:
    """Orders, payments, invoices, credit notes, subscriptions and mails of one person,
    newest first."""
    from magazine.models import OutboxMail

    entries: list[TimelineEntry] = []
    for order in orders_of(user):
        entries.append(TimelineEntry(order.created_at, "order", _(
            "Order %(ref)s placed: %(amount)s", ref=order.reference,
            amount=money(order.total_cents)), order_id=order.id))
        if order.closed_at:
            entries.append(TimelineEntry(order.closed_at, "order", _(
                "Order %(ref)s %(state)s", ref=order.reference, state=order.state.value),
                order_id=order.id))
        for payment in order.payments:
            if payment.paid_at:
                entries.append(TimelineEntry(payment.paid_at, "payment", _(
                    "Payment received (%(provider)s) for %(ref)s", provider=payment.provider,
                    ref=order.reference), order_id=order.id))
        if order.invoice:
            entries.append(TimelineEntry(order.invoice.issued_at, "invoice", _(
                "Invoice %(number)s issued", number=order.invoice.number),
                order_id=order.id, invoice_id=order.invoice.id))
            for note in order.invoice.credit_notes:
                entries.append(TimelineEntry(note.issued_at, "credit_note", _(
                    "Credit note %(number)s: %(reason)s", number=note.number,
                    reason=note.reason), order_id=order.id, credit_note_id=note.id))
    for subscription in subscriptions_of(user):
        if subscription.complimentary:
            entries.append(TimelineEntry(subscription.created_at, "subscription", _(
                "Complimentary subscription: %(reason)s", reason=subscription.note)))
    mails = db.session.scalars(
        sa.select(OutboxMail).where(OutboxMail.to_address == user.email)
        .order_by(OutboxMail.created_at.desc()).limit(100)
    ).all()
    for mail in mails:
        entries.append(TimelineEntry(mail.created_at, "mail", _(
            "Mail: %(subject)s (%(status)s)", subject=mail.subject, status=mail.status.value)))
    return sorted(entries, key=lambda e: e.at, reverse=True)


def awaiting_orders(limit: int = 100) -> Sequence[Order]:
    return db.session.scalars(
        sa.select(Order).where(Order.state == OrderState.AWAITING_PAYMENT)
        .order_by(Order.created_at).limit(limit)
    ).all()


# ---------------------------------------------------------------- my data

def export_user_data(user: User) -> bytes:
    """Everything we hold about a person, as JSON in a zip (with their invoices as PDF)."""
    import io
    import json
    import zipfile

    from magazine.models import AuditEvent, OutboxMail
    from subscriptions import documents
    from subscriptions.models import to_dict

    orders = orders_of(user)
    subscriptions = subscriptions_of(user)
    data = {
        "exported_at": now_utc().isoformat(),
        "account": {
            **to_dict(user, exclude=("password_hash",)),
            "roles": sorted(role.value for role in user.roles),
        },
        "subscriptions": [
            {**to_dict(s), "plan": s.plan.code,
             "delivery_addresses": [to_dict(a) for a in s.addresses]}
            for s in subscriptions
        ],
        "orders": [
            {**to_dict(o), "lines": [to_dict(line) for line in o.lines],
             "payments": [to_dict(p) for p in o.payments],
             "invoice": to_dict(o.invoice) if o.invoice else None,
             "credit_notes": [to_dict(n) for n in o.invoice.credit_notes] if o.invoice else []}
            for o in orders
        ],
        "mails": [to_dict(m) for m in db.session.scalars(
            sa.select(OutboxMail).where(OutboxMail.to_address == user.email)
            .order_by(OutboxMail.id))],
        "activity": [to_dict(e) for e in db.session.scalars(
            sa.select(AuditEvent).where(sa.or_(
                AuditEvent.actor_id == user.id,
                sa.and_(AuditEvent.object_type == "user",
                        AuditEvent.object_id == str(user.id))))
            .order_by(AuditEvent.id))],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", json.dumps(data, indent=2, ensure_ascii=False,
                                                 default=str))
        for order in orders:
            if order.invoice:
                archive.writestr(f"invoices/{order.invoice.number}.pdf",
                                 documents.invoice_pdf(order.invoice))
                for note in order.invoice.credit_notes:
                    archive.writestr(f"credit-notes/{note.number}.pdf",
                                     documents.credit_note_pdf(note))
    audit.record("user.data_exported", "user", user.id, actor=user)
    return buffer.getvalue()


def delete_account(user: User, *, password: str) -> None:
    """Erase a person: their account, addresses, mails and the personal data of their
    orders. Invoices and credit notes keep the buyer's details, as the law requires us to
    keep them; unpaid orders are cancelled (and credited) and subscriptions stop."""
    from magazine.auth.services import _password_matches, revoke_sessions
    from magazine.models import LoginAttempt, OutboxMail

    if not _password_matches(user, password):
        raise DomainError(_("Your password is not right."), field="password")
    if user.has_role(Role.ADMIN):
        raise DomainError(_("An administrator's account cannot be deleted here."))
    email = user.email
    for order in orders_of(user):
        if order.state == OrderState.AWAITING_PAYMENT:
            close_unpaid_order(order, to=OrderState.CANCELLED, actor=None,
                               reason="account deleted")
        order.billing_name = ""
        order.billing_email = ""
        order.billing_street = order.billing_postcode = order.billing_city = ""
        order.billing_po_reference = ""
    for subscription in subscriptions_of(user):
        if subscription.state == SubscriptionState.ACTIVE:
            move_subscription(subscription, SubscriptionState.CANCELLED, actor=None,
                              reason="account deleted")
        subscription.auto_renew = False
        subscription.issues_remaining = 0
        subscription.cancel_reason = ""
        subscription.gift_recipient_name = ""
        subscription.gift_recipient_email = ""
        subscription.gift_message = ""
        for row in list(subscription.addresses):
            subscription.addresses.remove(row)
    db.session.execute(sa.delete(OutboxMail).where(OutboxMail.to_address == email))
    db.session.execute(sa.delete(LoginAttempt).where(LoginAttempt.email == email))
    revoke_sessions(user)
    user.role_rows.clear()
    user.name = _("Deleted account")
    user.email = f"deleted-{user.id}@deleted.invalid"
    user.password_hash = "!"  # nosec B105 # not a hash, so it matches no password
    user.is_blocked = True
    audit.record("user.deleted", "user", user.id, actor=None)
    db.session.flush()
