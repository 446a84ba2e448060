"""The coordinator's figures, each from a fixed number of aggregate queries (GROUP BY).

Nothing here loops over subscriptions, orders or payments in Python: the loops below run
over months, plans or buckets that the database already summed. So the number of SQL
statements for the desk does not grow with the data (tests/business/test_speed.py).

The definitions (also shown on the desk, in Dutch, next to each figure):

- *Running* subscription: active, graced, or cancelled (auto-renew off) with issues left.
- *Term price*: the subscription lines of the subscription's order without VAT — volume
  prices included, promo-code discounts and shipping left out.
- *MRR*: term price × ISSUES_PER_YEAR ÷ (issues per term × 12), per running paid
  subscription, rounded to the cent; complimentary and unpaid subscriptions count 0.
  Promo codes lower one order only (the first term), so they are time-limited and do not
  lower MRR; a lasting discount (a volume price, a cheaper plan) is part of the term price
  and does. ARR = 12 × MRR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from flask import current_app

from business.models import MonthTotals, RevenueMonth, SubscriptionMonth
from business.months import Period, month_no, month_of, month_of_day, month_start_utc
from editorial.models import Issue, IssueState
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from subscriptions import models as sub_models
from subscriptions.models import (
    CreditNote,
    DeliveryAddress,
    Dispatch,
    DispatchEntry,
    Invoice,
    Order,
    OrderLine,
    Payment,
    Plan,
    PlanKind,
    Refund,
    RenewalOrder,
    Subscription,
)
from subscriptions.states import OrderState, PaymentState, SubscriptionState

# The payments developer adds chargebacks; until then the figures simply have none.
Chargeback = getattr(sub_models, "Chargeback", None)

KINDS = ("individual", "organisation", "student", "gift", "complimentary")
AGEING_BUCKETS = ("0-30", "31-60", "61-90", "90+")


# ---------------------------------------------------------------- shared SQL pieces

def running_condition():
    return sa.or_(
        Subscription.state.in_([SubscriptionState.ACTIVE, SubscriptionState.GRACED]),
        sa.and_(Subscription.state == SubscriptionState.CANCELLED,
                Subscription.issues_remaining > 0),
    )


def kind_expression():
    """individual / organisation / student / gift / complimentary (needs Plan joined)."""
    return sa.case(
        (Subscription.complimentary.is_(True), "complimentary"),
        (sa.or_(Plan.kind == PlanKind.GIFT, Subscription.gift_recipient_email != ""), "gift"),
        (Plan.kind == PlanKind.ORGANISATION, "organisation"),
        (Plan.kind == PlanKind.STUDENT, "student"),
        else_="individual",
    )


@dataclass(frozen=True)
class TermPrices:
    """The price of each subscription's current term: the subscription lines of the order
    that paid it — the latest applied renewal order, else the order it was bought with.
    Joined in two steps (`renewal_on`, then `order_on`) onto queries over Subscription;
    `c` has `order_id`, `gross` and `net`."""

    renewal: sa.Subquery
    by_order: sa.Subquery

    @property
    def c(self):
        return self.by_order.c

    @property
    def renewal_on(self):
        return self.renewal.c.subscription_id == Subscription.id

    @property
    def order_on(self):
        return self.by_order.c.order_id == sa.func.coalesce(self.renewal.c.id,
                                                            Subscription.order_id)


def term_prices() -> TermPrices:
    renewal = (
        sa.select(RenewalOrder.subscription_id, sa.func.max(RenewalOrder.order_id).label("id"))
        .where(RenewalOrder.applied_at.is_not(None))
        .group_by(RenewalOrder.subscription_id)
        .subquery("renewal")
    )
    by_order = (
        sa.select(
            OrderLine.order_id.label("order_id"),
            sa.func.sum(OrderLine.gross_cents).label("gross"),
            sa.func.sum(OrderLine.gross_cents - OrderLine.vat_cents).label("net"),
        )
        .where(OrderLine.kind == "subscription")
        .group_by(OrderLine.order_id)
        .subquery("term_prices")
    )
    return TermPrices(renewal, by_order)


def mrr_expression(term, issues_per_year: int):
    """MRR of one subscription in cents (rounded half up), 0 unless running and paid."""
    net = sa.func.coalesce(term.c.net, 0)
    months_x2 = Plan.issues_per_term * 24
    paid_running = sa.and_(
        running_condition(), Subscription.complimentary.is_(False),
        term.c.order_id.is_not(None),
    )
    return sa.case(
        (paid_running, (net * issues_per_year * 2 + Plan.issues_per_term * 12) // months_x2),
        else_=0,
    )


def subscriber_key_expression():
    return sa.func.coalesce(Subscription.subscriber_id, -Subscription.id)


def issues_per_year() -> int:
    return current_app.config["ISSUES_PER_YEAR"]


# ---------------------------------------------------------------- now

@dataclass
class Breakdown:
    """Counts per label: subscriptions, copies and MRR."""

    rows: list[tuple[str, int, int, int]] = field(default_factory=list)

    @property
    def subscriptions(self) -> int:
        return sum(row[1] for row in self.rows)

    @property
    def copies(self) -> int:
        return sum(row[2] for row in self.rows)

    @property
    def mrr_cents(self) -> int:
        return sum(row[3] for row in self.rows)


@dataclass
class Now:
    by_plan: Breakdown
    by_kind: Breakdown
    by_status: Breakdown
    by_country: Breakdown
    mrr_cents: int
    deferred_cents: int
    # Now only: the paid subscriptions with 1, 2 or 3 issues left (see `upcoming_renewals`),
    # counted by the same query: issues left → (subscriptions, term price, auto-renew).
    ending: dict[int, tuple[int, int, int]] | None = None

    @property
    def arr_cents(self) -> int:
        return self.mrr_cents * 12

    @property
    def active(self) -> int:
        """Running subscriptions (pending payment not included)."""
        return sum(row[1] for row in self.by_status.rows if row[0] != "pending_payment")


def status_expression():
    return sa.case(
        (Subscription.state == SubscriptionState.CANCELLED, "renewal_off"),
        else_=sa.cast(Subscription.state, sa.String),
    )


def _split(rows) -> tuple[Breakdown, Breakdown, Breakdown, Breakdown]:
    """By plan, kind, status and country from one query grouped by all four at once (a few
    hundred groups at most, summed here): the subscriptions are read once, not four times.
    Awaiting payment appears in the split by status only."""
    sums: list[dict[str, list[int]]] = [{}, {}, {}, {}]
    for plan, kind, status, country, count, copies, mrr in rows:
        labels = (plan, kind, status, country)
        for dimension, label in enumerate(labels):
            if status == SubscriptionState.PENDING_PAYMENT.value and dimension != 2:
                continue
            total = sums[dimension].setdefault(str(label), [0, 0, 0])
            total[0] += int(count)
            total[1] += int(copies or 0)
            total[2] += int(mrr or 0)
    by_plan, by_kind, by_status, by_country = (
        Breakdown([(label, *sums[dimension][label]) for label in sorted(sums[dimension])])
        for dimension in range(4))
    return by_plan, by_kind, by_status, by_country


def _ending_expression():
    """SQL: the issues left of a paid subscription whose term ends with one of the next
    three issues (1–3), else 0 (see `upcoming_renewals`)."""
    ending = sa.and_(Subscription.state.in_([SubscriptionState.ACTIVE,
                                             SubscriptionState.CANCELLED]),
                     Subscription.complimentary.is_(False),
                     Subscription.issues_remaining.between(1, 3))
    return sa.case((ending, Subscription.issues_remaining), else_=0)


def _deferred_expression(term):
    """SQL: a subscription's deferred revenue (see `deferred_revenue`), 0 when it has none."""
    deferred = sa.and_(running_condition(), Subscription.complimentary.is_(False),
                       Subscription.state != SubscriptionState.GRACED,
                       term.c.order_id.is_not(None))
    return sa.case((deferred, sa.func.coalesce(term.c.net, 0) * Subscription.issues_remaining
                    // Plan.issues_per_term), else_=0)


def now_figures() -> Now:
    """Running subscriptions (and those awaiting payment, in the status split) now; with
    the deferred revenue and the renewals of the next issues, which sum the same rows (one
    scan of the subscriptions and their term prices instead of three)."""
    term = term_prices()
    ipy = issues_per_year()
    mrr = mrr_expression(term, ipy)
    latest_address = _latest_address_country()
    country = sa.func.coalesce(DeliveryAddress.country, Order.billing_country, "BE")
    counted = sa.or_(running_condition(),
                     Subscription.state == SubscriptionState.PENDING_PAYMENT)
    ending = _ending_expression()
    labels = (Plan.code, kind_expression(), status_expression(), country, ending)
    query = (
        sa.select(*labels, sa.func.count(Subscription.id),
                  sa.func.coalesce(sa.func.sum(Subscription.copies), 0),
                  sa.func.coalesce(sa.func.sum(mrr), 0),
                  sa.func.coalesce(sa.func.sum(_deferred_expression(term)), 0),
                  sa.func.coalesce(sa.func.sum(sa.func.coalesce(term.c.gross, 0)), 0),
                  sa.func.coalesce(sa.func.sum(
                      sa.case((Subscription.auto_renew.is_(True), 1), else_=0)), 0))
        .select_from(Subscription)
        .join(Plan, Plan.id == Subscription.plan_id)
        .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
        .outerjoin(Order, Order.id == Subscription.order_id)
        .outerjoin(latest_address, latest_address.c.subscription_id == Subscription.id)
        .outerjoin(DeliveryAddress, DeliveryAddress.id == latest_address.c.id)
        .where(counted)
        .group_by(*labels)
    )
    rows = db.session.execute(query).all()
    by_plan, by_kind, by_status, by_country = _split(
        (plan, kind, status, country, count, copies, mrr)
        for plan, kind, status, country, _left, count, copies, mrr, *_rest in rows)
    deferred = sum(int(row[8] or 0) for row in rows)
    ending_sums: dict[int, list[int]] = {}
    for *_labels, left, count, _copies, _mrr, _deferred, gross, auto in rows:
        if int(left):
            total = ending_sums.setdefault(int(left), [0, 0, 0])
            total[0] += int(count)
            total[1] += int(gross or 0)
            total[2] += int(auto or 0)
    return Now(by_plan=by_plan, by_kind=by_kind, by_status=by_status, by_country=by_country,
               mrr_cents=by_plan.mrr_cents, deferred_cents=deferred,
               ending={left: tuple(total) for left, total in ending_sums.items()})


def deferred_revenue() -> int:
    """Paid, not yet delivered, now: the term's net price for the issues left."""
    term = term_prices()
    deferred = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(_deferred_expression(term)), 0))
        .select_from(Subscription)
        .join(Plan, Plan.id == Subscription.plan_id)
        # An outer join and a test for the term's order, not an inner join: with an inner
        # join SQLite starts from the grouped order lines and rescans the subscriptions for
        # each (seconds at 1k subscriptions, hours at 100k; bench/dashboard.py).
        .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
        .where(running_condition(), Subscription.complimentary.is_(False),
               Subscription.state != SubscriptionState.GRACED, term.c.order_id.is_not(None))
    )
    return int(deferred or 0)


def _latest_address_country():
    latest_address = (
        sa.select(DeliveryAddress.subscription_id, sa.func.max(DeliveryAddress.id).label("id"))
        .where(DeliveryAddress.group_no == 1)
        .group_by(DeliveryAddress.subscription_id)
        .subquery("latest_address")
    )
    return latest_address


def figures_at_month_end(number: int) -> Now:
    """The running subscriptions at the end of a finished month, from its monthly count
    (the roll-up; see models): by plan, kind, status (awaiting payment is not counted there)
    and country, with the copies and MRR of the term each was on then. Deferred revenue is
    not known for a past moment: 0 here (the desk shows today's)."""
    term_order = term_order_at(Subscription.id,
                               sa.literal(month_start_utc(number + 1), Dispatch.locked_at.type))
    latest_address = _latest_address_country()
    counted = (
        sa.select(
            Plan.code.label("plan"), kind_expression().label("kind"),
            sa.case((SubscriptionMonth.state == SubscriptionState.CANCELLED.value,
                     "renewal_off"), else_=SubscriptionMonth.state).label("status"),
            sa.func.coalesce(DeliveryAddress.country, Order.billing_country, "BE")
            .label("country"),
            Subscription.copies.label("copies_now"), SubscriptionMonth.mrr_cents.label("mrr"),
            term_order.label("term_order"),
        )
        .select_from(SubscriptionMonth)
        .join(Subscription, Subscription.id == SubscriptionMonth.subscription_id)
        .join(Plan, Plan.id == SubscriptionMonth.plan_id)
        .outerjoin(Order, Order.id == Subscription.order_id)
        .outerjoin(latest_address, latest_address.c.subscription_id == Subscription.id)
        .outerjoin(DeliveryAddress, DeliveryAddress.id == latest_address.c.id)
        .where(SubscriptionMonth.month_no == number)
        .subquery("counted")
    )
    quantities = (
        sa.select(OrderLine.order_id, sa.func.sum(OrderLine.quantity).label("copies"))
        .where(OrderLine.kind == "subscription").group_by(OrderLine.order_id)
        .subquery("quantities")
    )
    copies = sa.func.coalesce(quantities.c.copies, counted.c.copies_now)
    labels = (counted.c.plan, counted.c.kind, counted.c.status, counted.c.country)
    query = (
        sa.select(*labels, sa.func.count(), sa.func.coalesce(sa.func.sum(copies), 0),
                  sa.func.coalesce(sa.func.sum(counted.c.mrr), 0))
        .select_from(counted)
        .outerjoin(quantities, quantities.c.order_id == counted.c.term_order)
        .group_by(*labels)
    )
    by_plan, by_kind, by_status, by_country = _split(db.session.execute(query))
    return Now(by_plan=by_plan, by_kind=by_kind, by_status=by_status, by_country=by_country,
               mrr_cents=by_plan.mrr_cents, deferred_cents=0)


@dataclass
class PrintRun:
    issue: Issue | None
    paid_copies: int = 0
    complimentary_copies: int = 0
    stock_copies: int = 0

    @property
    def total(self) -> int:
        return self.paid_copies + self.complimentary_copies + self.stock_copies


def print_run(today: date) -> PrintRun:
    """Copies for the next issue: running print subscriptions that start no later than it,
    complimentary ones apart, plus the stock copies of the setting PRINT_STOCK_COPIES."""
    issue = db.session.scalar(
        sa.select(Issue).where(Issue.dispatch_cutoff >= today,
                               Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.dispatch_cutoff, Issue.id).limit(1))
    if issue is None:
        return PrintRun(None)
    first = sa.orm.aliased(Issue)
    rows = db.session.execute(
        sa.select(Subscription.complimentary, sa.func.sum(Subscription.copies))
        .join(Plan, Plan.id == Subscription.plan_id)
        .outerjoin(first, first.id == Subscription.first_issue_id)
        .where(running_condition(), Plan.includes_print.is_(True),
               sa.or_(first.id.is_(None), first.print_date <= issue.print_date))
        .group_by(Subscription.complimentary)
    ).all()
    counts = {bool(flag): int(total or 0) for flag, total in rows}
    return PrintRun(issue, paid_copies=counts.get(False, 0),
                    complimentary_copies=counts.get(True, 0),
                    stock_copies=current_app.config["PRINT_STOCK_COPIES"])


# ---------------------------------------------------------------- movements per month

@dataclass
class MonthMovement:
    month: int
    active_start: int = 0
    new: int = 0
    reactivated: int = 0
    churned: int = 0
    active_end: int = 0
    mrr_start: int = 0
    mrr_new: int = 0
    mrr_reactivation: int = 0
    mrr_expansion: int = 0
    mrr_contraction: int = 0
    mrr_churn: int = 0
    mrr_end: int = 0

    @property
    def mrr_net(self) -> int:
        return (self.mrr_new + self.mrr_reactivation + self.mrr_expansion
                - self.mrr_contraction - self.mrr_churn)

    @property
    def churn_rate(self) -> float | None:
        base = self.active_start + self.new
        return self.churned / base if base else None


@dataclass
class Movements:
    months: list[MonthMovement]

    @property
    def churned(self) -> int:
        return sum(m.churned for m in self.months)

    @property
    def new(self) -> int:
        return sum(m.new for m in self.months)

    @property
    def reactivated(self) -> int:
        return sum(m.reactivated for m in self.months)

    @property
    def churn_rate(self) -> float | None:
        """Over the whole period: churned ÷ (active at its start + new in it)."""
        if not self.months:
            return None
        base = self.months[0].active_start + self.new
        return self.churned / base if base else None


# What a month's totals hold, in this order (see business/models.py: MonthTotals).
MONTH_FIELDS = ("subscribers", "mrr_cents", "new", "mrr_new", "reactivated",
                "mrr_reactivation", "mrr_expansion", "mrr_contraction", "stayed",
                "mrr_stayed_before")
_NOTHING = (0,) * len(MONTH_FIELDS)
# `closed` not given: ask the table which months are closed.
_ASK = object()


def month_totals(first: int, last: int) -> dict[int, tuple[int, ...]]:
    """Per month `first`..`last` that counted paying subscribers: MONTH_FIELDS summed from
    the subscription rows of the roll-up. The closing of a month stores exactly this; the
    desk runs it live for the months not closed yet (the running one).

    A subscriber-month (summed over the subscriber's subscriptions; complimentary ones left
    out) is put next to the subscriber's previous counted month in the window from the
    month before `first` (LAG, one sort): the month just before means they stayed; an
    earlier one in the window, or any earlier row at all (an index lookup, made only for
    those not counted in the window before), means reactivated; none means new. So the
    totals of a month do not depend on where the window starts, and a month or two are
    counted from their own rows and the month before, not from the whole history. No
    self-join (SQLite has no index on a subquery and would compare every pair)."""
    base = (
        sa.select(SubscriptionMonth.month_no.label("m"),
                  SubscriptionMonth.subscriber_key.label("k"),
                  sa.func.sum(SubscriptionMonth.mrr_cents).label("mrr"))
        .where(SubscriptionMonth.complimentary.is_(False),
               SubscriptionMonth.month_no.between(first - 1, last))
        .group_by(SubscriptionMonth.month_no, SubscriptionMonth.subscriber_key)
        .subquery("base")
    )
    window = {"partition_by": base.c.k, "order_by": base.c.m}
    linked = sa.select(
        base.c.m, base.c.k, base.c.mrr,
        sa.func.lag(base.c.m).over(**window).label("pm"),
        sa.func.lag(base.c.mrr).over(**window).label("pmrr"),
    ).subquery("linked")
    j = linked.c
    earlier = sa.orm.aliased(SubscriptionMonth, name="earlier")
    counted_before = sa.exists().where(earlier.subscriber_key == j.k,
                                       earlier.complimentary.is_(False),
                                       earlier.month_no < j.m)
    status = sa.case(
        (j.pm == j.m - 1, "stay"),
        (j.pm.is_not(None), "back"),
        (counted_before, "back"),
        else_="new",
    )
    classified = (
        sa.select(j.m, j.mrr, j.pmrr, status.label("status"))
        .where(j.m >= first)
        .subquery("classified")
    )
    c = classified.c
    stays, is_new, is_back = c.status == "stay", c.status == "new", c.status == "back"

    def count_if(condition):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    def sum_if(condition, value):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)

    query = (
        sa.select(
            c.m, sa.func.count(), sa.func.coalesce(sa.func.sum(c.mrr), 0),
            count_if(is_new), sum_if(is_new, c.mrr),
            count_if(is_back), sum_if(is_back, c.mrr),
            sum_if(sa.and_(stays, c.mrr > c.pmrr), c.mrr - c.pmrr),
            sum_if(sa.and_(stays, c.mrr < c.pmrr), c.pmrr - c.mrr),
            count_if(stays), sum_if(stays, c.pmrr),
        )
        .group_by(c.m)
    )
    return {int(row[0]): tuple(int(x) for x in row[1:]) for row in db.session.execute(query)}


def closed_month() -> int | None:
    """The latest month whose totals are stored (see MonthTotals), never the running one;
    None when none is."""
    latest = db.session.scalar(sa.select(sa.func.max(MonthTotals.month_no)))
    if latest is None:
        return None
    return min(int(latest), month_no(now_utc().astimezone(BRUSSELS).date()) - 1)


def _stored_or_live_months(first: int, last: int, closed) -> dict[int, tuple[int, ...]]:
    """MONTH_FIELDS of the months `first`..`last`: the closed ones from their stored totals
    (a closed month without a row counted nobody), the others live."""
    if closed is _ASK:
        closed = closed_month()
    rows: dict[int, tuple[int, ...]] = {}
    if closed is not None and closed >= first:
        columns = [getattr(MonthTotals, name) for name in MONTH_FIELDS]
        rows = {int(number): tuple(int(x) for x in values)
                for number, *values in db.session.execute(
                    sa.select(MonthTotals.month_no, *columns)
                    .where(MonthTotals.month_no.between(first, min(closed, last))))}
    live_from = first if closed is None else max(first, closed + 1)
    if live_from <= last:
        rows.update(month_totals(live_from, last))
    return rows


def movements(period: Period, *, closed=_ASK, live: bool = False) -> Movements:
    """Subscriber and MRR movements per month, from the monthly roll-up: a paying subscriber
    (complimentary subscriptions left out) counted in month m and not in m − 1 is new (never
    counted before) or reactivated; counted in m − 1 and not in m has churned; counted in
    both with a higher (lower) MRR has expanded (contracted).

    The closed months come from their stored totals, the rest from the subscription rows
    (`month_totals`); `closed` is the latest closed month if the caller knows it, `live`
    counts every month from the rows (the stored totals must agree: tests/business)."""
    # Churned in m = counted in m − 1 − stayed into m (and their MRR then). The start of a
    # month is the end of the one before: shifted here, over the months only.
    rows = _stored_or_live_months(period.first - 1, period.last, None if live else closed)
    result = []
    for m in period.months:
        this = rows.get(m, _NOTHING)
        before = rows.get(m - 1, _NOTHING)
        result.append(MonthMovement(
            m, active_start=before[0], new=this[2], reactivated=this[4],
            churned=before[0] - this[8], active_end=this[0], mrr_start=before[1],
            mrr_new=this[3], mrr_reactivation=this[5], mrr_expansion=this[6],
            mrr_contraction=this[7], mrr_churn=before[1] - this[9], mrr_end=this[1]))
    return Movements(result)


# ---------------------------------------------------------------- revenue per month

@dataclass
class RevenueRow:
    label: object
    received: int = 0
    refunded: int = 0
    charged_back: int = 0
    vat: int = 0

    @property
    def gross(self) -> int:
        return self.received - self.refunded - self.charged_back

    @property
    def net(self) -> int:
        return self.gross - self.vat


@dataclass
class Revenue:
    months: list[RevenueRow]
    by_provider: list[RevenueRow]
    by_plan: list[RevenueRow]

    @property
    def total(self) -> RevenueRow:
        row = RevenueRow("total")
        for month in self.months:
            row.received += month.received
            row.refunded += month.refunded
            row.charged_back += month.charged_back
            row.vat += month.vat
        return row


def _proportional_vat(amount, order_total, order_vat):
    """The VAT in part of an order's amount, in the order's proportion (rounded half up)."""
    return sa.case(
        (order_total == 0, 0),
        # 64-bit: amount × VAT × 2 passes 2^31 from an order of about € 1,300 on (an
        # organisation's 25 copies), which PostgreSQL refuses in 32-bit integers.
        else_=(sa.cast(amount, sa.BigInteger) * order_vat * 2 + order_total)
        // (order_total * 2),
    )


def _money_movements(starts, ends):
    """Every euro that came in or went back from `starts` to `ends`, signed: paid payments
    in the month they were paid; refunds and chargebacks in the month they happened."""
    # The order's plan looked up per row (an index), not joined from all order lines grouped:
    # a month is a few thousand payments, and PostgreSQL grouped every line of every order
    # for each of the three kinds (0.4 s for the running month at 100k subscriptions).
    order_plan = (sa.select(sa.func.max(OrderLine.plan_id))
                  .where(OrderLine.order_id == Payment.order_id).scalar_subquery())

    def part(kind: str, amount, when, source, payment_join):
        query = (
            sa.select(sa.literal(kind).label("kind"), month_of(when).label("month"),
                      Payment.provider.label("provider"), order_plan.label("plan_id"),
                      amount.label("amount"),
                      _proportional_vat(amount, Order.total_cents, Order.vat_cents).label("vat"))
            .select_from(source)
        )
        if payment_join is not None:
            query = query.join(Payment, payment_join)
        return (
            query.join(Order, Order.id == Payment.order_id)
            .where(when >= starts, when < ends)
        )

    parts = [
        part("received", Payment.amount_cents, Payment.paid_at, Payment, None)
        .where(Payment.state == PaymentState.PAID),
        part("refunded", Refund.amount_cents, Refund.created_at, Refund,
             Payment.id == Refund.payment_id),
    ]
    if Chargeback is not None:
        parts.append(part("charged_back", Chargeback.amount_cents, Chargeback.created_at,
                          Chargeback, Payment.id == Chargeback.payment_id))
    return sa.union_all(*parts).cte("money")


def revenue_sums(first: int, last: int):
    """SQL: the money of the months `first`..`last` summed per month, provider, plan and
    kind (amount, and VAT signed: negative for money that went back) — what the closing of
    a month stores (RevenueMonth) and what the desk sums live for the months not closed."""
    money = _money_movements(month_start_utc(first), month_start_utc(last + 1))
    sign = sa.case((money.c.kind == "received", 1), else_=-1)
    return (
        sa.select(money.c.month, money.c.provider, money.c.plan_id, money.c.kind,
                  sa.func.sum(money.c.amount), sa.func.sum(money.c.vat * sign))
        .group_by(money.c.month, money.c.provider, money.c.plan_id, money.c.kind)
    )


def revenue(period: Period, *, closed=_ASK, live: bool = False) -> Revenue:
    """Received, refunded and charged back per month, provider and plan: the closed months
    from their stored sums (RevenueMonth), the others summed live from the payments, refunds
    and chargebacks (`live`: every month so; the stored sums must agree)."""
    if live:
        closed = None
    elif closed is _ASK:
        closed = closed_month()
    # One query (a few hundred rows), folded into the three splits here: the money is read
    # once instead of three times.
    parts = []
    if closed is not None and closed >= period.first:
        parts.append(
            sa.select(RevenueMonth.month_no, RevenueMonth.provider, RevenueMonth.plan_id,
                      RevenueMonth.kind, RevenueMonth.amount_cents, RevenueMonth.vat_cents)
            .where(RevenueMonth.month_no.between(period.first, min(closed, period.last))))
    live_from = period.first if closed is None else max(period.first, closed + 1)
    if live_from <= period.last:
        parts.append(revenue_sums(live_from, period.last))
    query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    sums = db.session.execute(query).all() if parts else []

    def grouped(index: int) -> list[RevenueRow]:
        rows: dict[object, RevenueRow] = {}
        for found in sums:
            label, kind, amount, vat = found[index], found[3], found[4], found[5]
            row = rows.setdefault(label, RevenueRow(label))
            setattr(row, kind, getattr(row, kind) + int(amount or 0))
            row.vat += int(vat or 0)
        return list(rows.values())

    by_month = {row.label: row for row in grouped(0)}
    months = [by_month.get(m, RevenueRow(m)) for m in period.months]
    by_provider = sorted(grouped(1), key=lambda row: str(row.label))
    plan_names = dict(db.session.execute(sa.select(Plan.id, Plan.code)).all())
    by_plan = grouped(2)
    for row in by_plan:
        row.label = plan_names.get(row.label, "single_copies")
    by_plan.sort(key=lambda row: str(row.label))
    return Revenue(months=months, by_provider=by_provider, by_plan=by_plan)


# ---------------------------------------------------------------- dispatched issues

def term_order_at(subscription_id, moment):
    """SQL: the order that paid a subscription's term at `moment` (a column or value): the
    latest renewal order applied by then, else the order it was bought with; with no moment
    (NULL), the current term's."""
    renewed = (
        sa.select(sa.func.max(RenewalOrder.order_id))
        .where(RenewalOrder.subscription_id == subscription_id,
               RenewalOrder.applied_at.is_not(None),
               sa.or_(moment.is_(None), RenewalOrder.applied_at <= moment))
        .scalar_subquery()
    )
    return sa.func.coalesce(renewed, Subscription.order_id)


def _term_net_by_order() -> sa.Subquery:
    return (
        sa.select(OrderLine.order_id.label("order_id"),
                  sa.func.sum(OrderLine.gross_cents - OrderLine.vat_cents).label("net"))
        .where(OrderLine.kind == "subscription")
        .group_by(OrderLine.order_id)
        .subquery("term_net")
    )


@dataclass
class DispatchedIssue:
    issue_code: str
    print_date: date
    subscriptions: int
    recognised_cents: int


def recognised_per_issue(period: Period) -> list[DispatchedIssue]:
    """Per dispatched issue printed in the period: the subscriptions that received it and,
    for each paid one, its term's net price ÷ issues per term — the term it was on when the
    list was locked (a renewal applied later does not change what was recognised)."""
    net = _term_net_by_order()
    term_order = term_order_at(DispatchEntry.subscription_id, Dispatch.locked_at)
    per_issue = sa.func.coalesce(net.c.net, 0) // Plan.issues_per_term
    query = (
        sa.select(Issue.volume, Issue.number, Issue.print_date,
                  sa.func.count(DispatchEntry.subscription_id),
                  sa.func.coalesce(sa.func.sum(sa.case(
                      (Subscription.complimentary.is_(True), 0), else_=per_issue)), 0))
        .select_from(DispatchEntry)
        .join(Issue, Issue.id == DispatchEntry.issue_id)
        .outerjoin(Dispatch, Dispatch.issue_id == DispatchEntry.issue_id)
        .join(Subscription, Subscription.id == DispatchEntry.subscription_id)
        .join(Plan, Plan.id == DispatchEntry.plan_id)
        .outerjoin(net, net.c.order_id == term_order)
        .where(Issue.print_date.between(period.first_day, period.last_day))
        .group_by(Issue.id, Issue.volume, Issue.number, Issue.print_date)
        .order_by(Issue.print_date, Issue.id)
    )
    return [DispatchedIssue(f"{v}.{n}", d, int(c), int(r))
            for v, n, d, c, r in db.session.execute(query)]


@dataclass
class RenewalRate:
    issue_code: str
    due: int      # paid subscriptions whose term ended with this issue
    renewed: int  # of those, how many had their next term paid (renewal order applied)

    @property
    def rate(self) -> float | None:
        return self.renewed / self.due if self.due else None


def renewal_rates(period: Period) -> list[RenewalRate]:
    """Per dispatched issue printed in the period: renewed ÷ due for renewal at that issue.

    Due: the paid subscriptions (complimentary ones apart) that received the issue as the
    last of a term — their n-th issue, counting every issue they received (grace issues
    too: a renewal paid during grace counts them in its term), with n a multiple of the
    plan's issues per term. Renewed: of those, the ones whose renewal order for the next
    term (term n ÷ issues per term + 1) was paid and applied, whenever that happened."""
    numbered = (
        sa.select(
            DispatchEntry.issue_id.label("issue_id"),
            DispatchEntry.subscription_id.label("subscription_id"),
            DispatchEntry.graced.label("graced"),
            Plan.issues_per_term.label("per_term"),
            sa.func.row_number().over(partition_by=DispatchEntry.subscription_id,
                                      order_by=(Issue.print_date, Issue.id)).label("n"),
        )
        .join(Issue, Issue.id == DispatchEntry.issue_id)
        .join(Plan, Plan.id == DispatchEntry.plan_id)
        .join(Subscription, Subscription.id == DispatchEntry.subscription_id)
        .where(Subscription.complimentary.is_(False))
        .subquery("numbered")
    )
    e = numbered.c
    renewed = sa.exists().where(RenewalOrder.subscription_id == e.subscription_id,
                                RenewalOrder.term == e.n / e.per_term + 1,
                                RenewalOrder.applied_at.is_not(None))
    due = sa.and_(e.graced.is_(False), e.n % e.per_term == 0)
    query = (
        sa.select(Issue.volume, Issue.number,
                  sa.func.coalesce(sa.func.sum(sa.case((due, 1), else_=0)), 0),
                  sa.func.coalesce(sa.func.sum(sa.case((sa.and_(due, renewed), 1),
                                                       else_=0)), 0))
        .select_from(numbered)
        .join(Issue, Issue.id == e.issue_id)
        .where(Issue.print_date.between(period.first_day, period.last_day))
        .group_by(Issue.id, Issue.volume, Issue.number, Issue.print_date)
        .order_by(Issue.print_date, Issue.id)
    )
    return [RenewalRate(f"{v}.{n}", int(d), int(r)) for v, n, d, r in db.session.execute(query)]


# ---------------------------------------------------------------- unpaid invoices

@dataclass
class UnpaidInvoice:
    id: int
    number: str
    buyer_name: str
    buyer_email: str
    issue_date: date
    outstanding_cents: int
    bucket: str


UNPAID_PAGE_SIZE = 50


@dataclass
class Unpaid:
    buckets: list[tuple[str, int, int]]  # bucket, invoices, cents
    invoices: list[UnpaidInvoice]
    page: int = 1
    per_page: int | None = UNPAID_PAGE_SIZE

    @property
    def count(self) -> int:
        return sum(b[1] for b in self.buckets)

    @property
    def cents(self) -> int:
        return sum(b[2] for b in self.buckets)

    @property
    def pages(self) -> int:
        if not self.per_page:
            return 1
        return max(1, -(-self.count // self.per_page))


def unpaid_invoices(today: date, *, page: int = 1,
                    per_page: int | None = UNPAID_PAGE_SIZE) -> Unpaid:
    """Invoices of orders still awaiting payment, minus what was credited, by days since the
    invoice date (0–30, 31–60, 61–90, over 90); the list oldest first, `per_page` a page
    (None: all of them, for the CSV). A page past the last shows the last."""
    credited = (
        sa.select(CreditNote.invoice_id, sa.func.sum(CreditNote.total_cents).label("cents"))
        .group_by(CreditNote.invoice_id).subquery("credited")
    )
    outstanding = Invoice.total_cents - sa.func.coalesce(credited.c.cents, 0)
    bucket = sa.case(
        (Invoice.issue_date >= today - timedelta(days=30), AGEING_BUCKETS[0]),
        (Invoice.issue_date >= today - timedelta(days=60), AGEING_BUCKETS[1]),
        (Invoice.issue_date >= today - timedelta(days=90), AGEING_BUCKETS[2]),
        else_=AGEING_BUCKETS[3],
    )
    base = (
        sa.select(Invoice)
        .join(Order, Order.id == Invoice.order_id)
        .outerjoin(credited, credited.c.invoice_id == Invoice.id)
        .where(Order.state == OrderState.AWAITING_PAYMENT, outstanding > 0)
    )
    counts = {
        label: (int(n), int(cents or 0))
        for label, n, cents in db.session.execute(
            base.with_only_columns(bucket.label("bucket"), sa.func.count(Invoice.id),
                                   sa.func.sum(outstanding))
            .group_by(bucket))
    }
    buckets = [(label, *counts.get(label, (0, 0))) for label in AGEING_BUCKETS]
    result = Unpaid(buckets, [], page=1, per_page=per_page)
    # The unpaid invoices first, then sorted: walking every invoice in date order until 50
    # unpaid ones turn up is what PostgreSQL chose otherwise (0.7 s at 200k invoices, most
    # of them paid). MATERIALIZED: PostgreSQL 12+, SQLite 3.35+.
    unpaid = (
        base.with_only_columns(Invoice.id.label("id"), Invoice.number.label("number"),
                               Invoice.buyer_name.label("buyer_name"),
                               Invoice.buyer_email.label("buyer_email"),
                               Invoice.issue_date.label("issue_date"),
                               outstanding.label("outstanding"), bucket.label("bucket"))
        .cte("unpaid").prefix_with("MATERIALIZED")
    )
    listing = sa.select(*unpaid.c).order_by(unpaid.c.issue_date, unpaid.c.id)
    if per_page:
        result.page = min(max(page, 1), result.pages)
        listing = listing.limit(per_page).offset((result.page - 1) * per_page)
    result.invoices = [UnpaidInvoice(*row) for row in db.session.execute(listing)]
    return result


# ---------------------------------------------------------------- renewals

@dataclass
class Renewal:
    issue: Issue
    subscriptions: int
    amount_cents: int
    auto_renew: int


def upcoming_renewals(today: date, ending: dict[int, tuple[int, int, int]] | None = None
                      ) -> list[Renewal]:
    """For each of the next three issues: the paid subscriptions whose term ends with it
    (issues left = its place among the coming issues), what their next term costs (the
    current term's price, VAT included) and how many renew automatically. `ending`: those
    counts by issues left when the caller has them (`now_figures`)."""
    issues = db.session.scalars(
        sa.select(Issue).where(Issue.dispatch_cutoff >= today,
                               Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.dispatch_cutoff, Issue.id).limit(3)
    ).all()
    if ending is None:
        term = term_prices()
        left = _ending_expression()
        ending = {
            int(place): (int(n), int(cents or 0), int(auto or 0))
            for place, n, cents, auto in db.session.execute(
                sa.select(left, sa.func.count(Subscription.id),
                          sa.func.sum(sa.func.coalesce(term.c.gross, 0)),
                          sa.func.sum(sa.case((Subscription.auto_renew.is_(True), 1),
                                              else_=0)))
                .outerjoin(term.renewal, term.renewal_on)
                .outerjoin(term.by_order, term.order_on)
                .where(left > 0)
                .group_by(left))
        }
    return [Renewal(issue, *ending.get(place, (0, 0, 0)))
            for place, issue in enumerate(issues, start=1)]


# ---------------------------------------------------------------- cohorts

@dataclass
class Cohort:
    month: int
    size: int
    retained: list[int]  # of them, how many received their first paid issue, the next …

    def shares(self) -> list[float]:
        return [count / self.size if self.size else 0.0 for count in self.retained]


def cohorts(period: Period) -> list[Cohort]:
    """Paying subscribers (complimentary subscriptions apart) grouped by the month of their
    first paid issue — the first dispatched issue they received on a paid subscription —
    in the period; for that issue and each dispatched issue after it (printed up to the
    period's end), how many of them received it (still subscribed; a grace issue counts).
    A subscriber who left and came back counts again from the issue they receive."""
    ranked = (
        sa.select(Issue.id.label("issue_id"), Issue.print_date.label("print_date"),
                  sa.func.row_number().over(order_by=(Issue.print_date, Issue.id))
                  .label("pos"))
        .where(Issue.id.in_(sa.select(DispatchEntry.issue_id).distinct()))
        .cte("ranked")
    )
    pairs = (
        sa.select(subscriber_key_expression().label("k"), ranked.c.pos.label("pos"))
        .select_from(DispatchEntry)
        .join(Subscription, Subscription.id == DispatchEntry.subscription_id)
        .join(ranked, ranked.c.issue_id == DispatchEntry.issue_id)
        .where(Subscription.complimentary.is_(False))
        .group_by(subscriber_key_expression(), ranked.c.pos)
        .subquery("pairs")
    )
    # Each subscriber's first paid issue next to every issue they received (a window, not
    # a join of the received issues with their minimum per subscriber: PostgreSQL has no
    # statistics on such derived tables and joined them in nested loops, seconds at 10k).
    received = sa.select(
        pairs.c.k, pairs.c.pos,
        sa.func.min(pairs.c.pos).over(partition_by=pairs.c.k).label("first"),
    ).subquery("received")
    first_issue = ranked.alias("first_issue")
    cohort_month = month_of_day(first_issue.c.print_date)
    query = (
        sa.select(cohort_month, received.c.first, received.c.pos - received.c.first,
                  sa.func.count())
        .select_from(received)
        .join(first_issue, first_issue.c.pos == received.c.first)
        .join(ranked, ranked.c.pos == received.c.pos)
        .where(first_issue.c.print_date.between(period.first_day, period.last_day),
               ranked.c.print_date <= period.last_day)
        .group_by(cohort_month, received.c.first, received.c.pos - received.c.first)
    )
    last_rank = db.session.scalar(
        sa.select(sa.func.max(ranked.c.pos)).where(ranked.c.print_date <= period.last_day))
    # Per cohort month and first issue (a month may have had two issues): the counts by
    # issues after the first. Loops over a handful of issues and months, not over rows.
    by_month: dict[int, dict[int, list[int]]] = {}
    for month, first_rank, offset, count in db.session.execute(query):
        spans = by_month.setdefault(int(month), {})
        counts = spans.setdefault(int(first_rank), [0] * (int(last_rank) - int(first_rank) + 1))
        counts[int(offset)] += int(count)
    result = []
    for month in sorted(by_month):
        groups = by_month[month]
        # The later first issue sets the width, so every column compares whole groups.
        width = min(len(counts) for counts in groups.values())
        retained = [sum(counts[i] for counts in groups.values() if i < len(counts))
                    for i in range(width)]
        result.append(Cohort(month, retained[0], retained))
    return result


# ---------------------------------------------------------------- the whole desk

@dataclass
class Desk:
    period: Period
    today: date
    now: Now  # at the end of the period (live when the period runs to this month)
    as_at: date | None  # the last day of a period that ended before this month; else None
    deferred_cents: int  # today, whatever the period
    print_run: PrintRun
    movements: Movements
    revenue: Revenue
    issues: list[DispatchedIssue]
    renewal_rates: list[RenewalRate]
    unpaid: Unpaid
    renewals: list[Renewal]
    cohorts: list[Cohort]
    plan_names: dict[str, str]


def desk(period: Period, today: date, locale: str, *, unpaid_page: int = 1,
         unpaid_per_page: int | None = UNPAID_PAGE_SIZE) -> Desk:
    """Every figure of the desk: a fixed number of queries, whatever the data."""
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL cannot estimate joins on COALESCE(renewal order, first order): it
        # expects millions of rows, so it JIT-compiles these queries, which took longer
        # than running them (8.8 s of 7.6 s for the figures now at 100k subscriptions).
        # For this transaction only.
        db.session.execute(sa.text("SET LOCAL jit = off"))
    plan_names = {code: (name_en if locale.startswith("en") else name_nl)
                  for code, name_nl, name_en in db.session.execute(
                      sa.select(Plan.code, Plan.name_nl, Plan.name_en))}
    closed = closed_month()
    if period.last < month_no(today):
        as_at, now = period.last_day, figures_at_month_end(period.last)
        deferred, renewals = deferred_revenue(), upcoming_renewals(today)
    else:
        as_at, now = None, now_figures()
        deferred, renewals = now.deferred_cents, upcoming_renewals(today, now.ending)
    return Desk(
        period=period, today=today, now=now, as_at=as_at, deferred_cents=deferred,
        print_run=print_run(today),
        movements=movements(period, closed=closed), revenue=revenue(period, closed=closed),
        issues=recognised_per_issue(period), renewal_rates=renewal_rates(period),
        unpaid=unpaid_invoices(today, page=unpaid_page, per_page=unpaid_per_page),
        renewals=renewals,
        cohorts=cohorts(period), plan_names=plan_names,
    )
