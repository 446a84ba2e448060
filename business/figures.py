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

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from flask import current_app

from business.models import SubscriptionMonth
from business.months import Period, month_of
from editorial.models import Issue, IssueState
from magazine.db import db
from subscriptions import models as sub_models
from subscriptions.models import (
    CreditNote,
    DeliveryAddress,
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


def now_figures() -> Now:
    """Running subscriptions (and those awaiting payment, in the status split) now."""
    term = term_prices()
    ipy = issues_per_year()
    mrr = mrr_expression(term, ipy)
    latest_address = (
        sa.select(DeliveryAddress.subscription_id, sa.func.max(DeliveryAddress.id).label("id"))
        .where(DeliveryAddress.group_no == 1)
        .group_by(DeliveryAddress.subscription_id)
        .subquery("latest_address")
    )
    country = sa.func.coalesce(DeliveryAddress.country, Order.billing_country, "BE")
    counted = sa.or_(running_condition(),
                     Subscription.state == SubscriptionState.PENDING_PAYMENT)

    def breakdown(label, *, only_running: bool = True) -> Breakdown:
        query = (
            sa.select(label.label("label"), sa.func.count(Subscription.id),
                      sa.func.coalesce(sa.func.sum(Subscription.copies), 0),
                      sa.func.coalesce(sa.func.sum(mrr), 0))
            .select_from(Subscription)
            .join(Plan, Plan.id == Subscription.plan_id)
            .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
            .outerjoin(Order, Order.id == Subscription.order_id)
            .outerjoin(latest_address, latest_address.c.subscription_id == Subscription.id)
            .outerjoin(DeliveryAddress, DeliveryAddress.id == latest_address.c.id)
            .where(running_condition() if only_running else counted)
            .group_by(label)
            .order_by(label)
        )
        return Breakdown([(str(r[0]), int(r[1]), int(r[2]), int(r[3]))
                          for r in db.session.execute(query)])

    by_plan = breakdown(Plan.code)
    by_kind = breakdown(kind_expression())
    by_status = breakdown(status_expression(), only_running=False)
    by_country = breakdown(country)

    # Deferred: paid, not yet delivered — the term's net price for the issues left.
    deferred = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(
            sa.func.coalesce(term.c.net, 0) * Subscription.issues_remaining
            // Plan.issues_per_term), 0))
        .select_from(Subscription)
        .join(Plan, Plan.id == Subscription.plan_id)
        .outerjoin(term.renewal, term.renewal_on).join(term.by_order, term.order_on)
        .where(running_condition(), Subscription.complimentary.is_(False),
               Subscription.state != SubscriptionState.GRACED)
    )
    return Now(by_plan=by_plan, by_kind=by_kind, by_status=by_status, by_country=by_country,
               mrr_cents=by_plan.mrr_cents, deferred_cents=int(deferred or 0))


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


def movements(period: Period) -> Movements:
    """Subscriber and MRR movements per month, from the monthly roll-up: a paying subscriber
    (complimentary subscriptions left out) counted in month m and not in m − 1 is new (never
    counted before) or reactivated; counted in m − 1 and not in m has churned; counted in
    both with a higher (lower) MRR has expanded (contracted)."""
    # No self-join (SQLite has no index on a CTE and would compare every pair): each
    # subscriber-month appears once as "this month" and once, shifted, as "the month
    # before" of the next month; grouping puts the two side by side.
    base = (
        sa.select(SubscriptionMonth.month_no.label("m"),
                  SubscriptionMonth.subscriber_key.label("k"),
                  sa.func.sum(SubscriptionMonth.mrr_cents).label("mrr"))
        .where(SubscriptionMonth.complimentary.is_(False),
               SubscriptionMonth.month_no <= period.last)
        .group_by(SubscriptionMonth.month_no, SubscriptionMonth.subscriber_key)
        .subquery("base")
    )
    with_first = sa.select(
        base.c.m, base.c.k, base.c.mrr,
        sa.func.min(base.c.m).over(partition_by=base.c.k).label("first"),
    ).cte("with_first")
    w = with_first.c
    pairs = sa.union_all(
        sa.select(w.m.label("month"), w.k, w.first, w.mrr.label("cm"),
                  sa.literal(0).label("pm"), sa.literal(1).label("c"),
                  sa.literal(0).label("p"))
        .where(w.m.between(period.first, period.last)),
        sa.select((w.m + 1).label("month"), w.k, w.first, sa.literal(0), w.mrr,
                  sa.literal(0), sa.literal(1))
        .where((w.m + 1).between(period.first, period.last)),
    ).subquery("pairs")
    joined = (
        sa.select(pairs.c.month, pairs.c.first,
                  sa.func.sum(pairs.c.cm).label("cm"), sa.func.sum(pairs.c.pm).label("pm"),
                  sa.func.max(pairs.c.c).label("c"), sa.func.max(pairs.c.p).label("p"))
        .group_by(pairs.c.month, pairs.c.k, pairs.c.first)
        .subquery("joined")
    )
    j = joined.c
    is_new = sa.and_(j.p == 0, j.first == j.month)
    is_back = sa.and_(j.p == 0, j.first < j.month)
    both = sa.and_(j.c == 1, j.p == 1)

    def count_if(condition):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    def sum_if(condition, value):
        return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)

    query = (
        sa.select(
            j.month,
            count_if(j.p == 1), count_if(is_new), count_if(is_back),
            count_if(j.c == 0), count_if(j.c == 1),
            sum_if(j.p == 1, j.pm), sum_if(is_new, j.cm), sum_if(is_back, j.cm),
            sum_if(sa.and_(both, j.cm > j.pm), j.cm - j.pm),
            sum_if(sa.and_(both, j.cm < j.pm), j.pm - j.cm),
            sum_if(j.c == 0, j.pm), sum_if(j.c == 1, j.cm),
        )
        .group_by(j.month)
    )
    found = {int(row[0]): MonthMovement(*(int(x) for x in row))
             for row in db.session.execute(query)}
    return Movements([found.get(m, MonthMovement(m)) for m in period.months])


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
        else_=(amount * order_vat * 2 + order_total) // (order_total * 2),
    )


def _money_movements(period: Period):
    """Every euro that came in or went back in the period, signed: paid payments in the
    month they were paid; refunds and chargebacks in the month they happened."""
    order_plan = (
        sa.select(OrderLine.order_id.label("order_id"),
                  sa.func.max(OrderLine.plan_id).label("plan_id"))
        .group_by(OrderLine.order_id).subquery("order_plan")
    )

    def part(kind: str, amount, when, source, payment_join):
        query = (
            sa.select(sa.literal(kind).label("kind"), month_of(when).label("month"),
                      Payment.provider.label("provider"), order_plan.c.plan_id.label("plan_id"),
                      amount.label("amount"),
                      _proportional_vat(amount, Order.total_cents, Order.vat_cents).label("vat"))
            .select_from(source)
        )
        if payment_join is not None:
            query = query.join(Payment, payment_join)
        return (
            query.join(Order, Order.id == Payment.order_id)
            .outerjoin(order_plan, order_plan.c.order_id == Order.id)
            .where(when >= period.starts, when < period.ends)
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


def revenue(period: Period) -> Revenue:
    money = _money_movements(period)
    sign = sa.case((money.c.kind == "received", 1), else_=-1)

    def grouped(column) -> list[RevenueRow]:
        rows: dict[object, RevenueRow] = {}
        query = (
            sa.select(column, money.c.kind, sa.func.sum(money.c.amount),
                      sa.func.sum(money.c.vat * sign))
            .group_by(column, money.c.kind)
        )
        for label, kind, amount, vat in db.session.execute(query):
            row = rows.setdefault(label, RevenueRow(label))
            setattr(row, kind, getattr(row, kind) + int(amount or 0))
            row.vat += int(vat or 0)
        return list(rows.values())

    by_month = {row.label: row for row in grouped(money.c.month)}
    months = [by_month.get(m, RevenueRow(m)) for m in period.months]
    by_provider = sorted(grouped(money.c.provider), key=lambda row: str(row.label))
    plan_names = dict(db.session.execute(sa.select(Plan.id, Plan.code)).all())
    by_plan = grouped(money.c.plan_id)
    for row in by_plan:
        row.label = plan_names.get(row.label, "single_copies")
    by_plan.sort(key=lambda row: str(row.label))
    return Revenue(months=months, by_provider=by_provider, by_plan=by_plan)


# ---------------------------------------------------------------- dispatched issues

def dispatch_lines_table() -> sa.Table | None:
    """The dispatch records (which subscription received which issue), once the dispatch
    work adds them: a table with `issue_id` and `subscription_id` (`dispatch_entries`, one
    row per subscription and issue). None until then."""
    tables = sorted(db.metadata.sorted_tables, key=lambda t: t.name != "dispatch_entries")
    for table in tables:
        columns = table.c
        if ("dispatch" in table.name and "issue_id" in columns
                and "subscription_id" in columns):
            return table
    return None


@dataclass
class DispatchedIssue:
    issue_code: str
    print_date: date
    subscriptions: int
    recognised_cents: int


def recognised_per_issue(period: Period) -> list[DispatchedIssue] | None:
    """Per dispatched issue in the period: the term's net price ÷ issues per term for each
    paid subscription that received it. None while there are no dispatch records."""
    lines = dispatch_lines_table()
    if lines is None:
        return None
    term = term_prices()
    per_issue = sa.func.coalesce(term.c.net, 0) // Plan.issues_per_term
    query = (
        sa.select(Issue.volume, Issue.number, Issue.print_date,
                  sa.func.count(sa.distinct(lines.c.subscription_id)),
                  sa.func.coalesce(sa.func.sum(sa.case(
                      (Subscription.complimentary.is_(True), 0), else_=per_issue)), 0))
        .select_from(lines)
        .join(Issue, Issue.id == lines.c.issue_id)
        .join(Subscription, Subscription.id == lines.c.subscription_id)
        .join(Plan, Plan.id == Subscription.plan_id)
        .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
        .where(Issue.print_date.between(period.first_day, period.last_day))
        .group_by(Issue.id, Issue.volume, Issue.number, Issue.print_date)
        .order_by(Issue.print_date)
    )
    return [DispatchedIssue(f"{v}.{n}", d, int(c), int(r))
            for v, n, d, c, r in db.session.execute(query)]


@dataclass
class RenewalRate:
    issue_code: str
    previous: int  # paid subscriptions that received the previous dispatched issue
    kept: int      # of those, how many received this one too, not as a grace issue

    @property
    def rate(self) -> float | None:
        return self.kept / self.previous if self.previous else None


def renewal_rates(period: Period) -> list[RenewalRate] | None:
    """Per dispatched issue in the period: of the paid subscriptions that received the
    previous dispatched issue, the share that received this one on a paid term (not as a
    grace issue). Only subscriptions at the end of a term can leave, so this is the share
    that renewed (or had issues left). None while there are no dispatch records."""
    lines = dispatch_lines_table()
    if lines is None:
        return None
    dispatched = db.session.execute(
        sa.select(Issue.id, Issue.volume, Issue.number, Issue.print_date)
        .where(Issue.id.in_(sa.select(lines.c.issue_id).distinct()))
        .order_by(Issue.print_date, Issue.id)
    ).all()
    pairs = [(before.id, after) for before, after in itertools.pairwise(dispatched)
             if period.first_day <= after.print_date <= period.last_day]
    if not pairs:
        return []
    following = sa.case({before: after.id for before, after in pairs},
                        value=lines.c.issue_id)
    cur = lines.alias("cur")
    not_graced = cur.c.graced.is_(False) if "graced" in cur.c else sa.true()
    query = (
        sa.select(lines.c.issue_id, sa.func.count(),
                  sa.func.sum(sa.case((sa.and_(cur.c.subscription_id.is_not(None),
                                               not_graced), 1), else_=0)))
        .select_from(lines)
        .join(Subscription, Subscription.id == lines.c.subscription_id)
        .outerjoin(cur, sa.and_(cur.c.subscription_id == lines.c.subscription_id,
                                cur.c.issue_id == following))
        .where(lines.c.issue_id.in_([before for before, _ in pairs]),
               Subscription.complimentary.is_(False))
        .group_by(lines.c.issue_id)
    )
    counts = {issue_id: (int(n), int(kept or 0))
              for issue_id, n, kept in db.session.execute(query)}
    return [RenewalRate(f"{after.volume}.{after.number}", *counts.get(before, (0, 0)))
            for before, after in pairs]


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


@dataclass
class Unpaid:
    buckets: list[tuple[str, int, int]]  # bucket, invoices, cents
    invoices: list[UnpaidInvoice]

    @property
    def count(self) -> int:
        return sum(b[1] for b in self.buckets)

    @property
    def cents(self) -> int:
        return sum(b[2] for b in self.buckets)


UNPAID_LIST_LIMIT = 50


def unpaid_invoices(today: date) -> Unpaid:
    """Invoices of orders still awaiting payment, minus what was credited, by days since the
    invoice date (0–30, 31–60, 61–90, over 90)."""
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
    rows = db.session.execute(
        base.with_only_columns(Invoice.id, Invoice.number, Invoice.buyer_name,
                               Invoice.buyer_email, Invoice.issue_date, outstanding, bucket)
        .order_by(Invoice.issue_date, Invoice.id).limit(UNPAID_LIST_LIMIT)
    ).all()
    return Unpaid(buckets, [UnpaidInvoice(*row) for row in rows])


# ---------------------------------------------------------------- renewals

@dataclass
class Renewal:
    issue: Issue
    subscriptions: int
    amount_cents: int
    auto_renew: int


def upcoming_renewals(today: date) -> list[Renewal]:
    """For each of the next three issues: the paid subscriptions whose term ends with it
    (issues left = its place among the coming issues), what their next term costs (the
    current term's price, VAT included) and how many renew automatically."""
    issues = db.session.scalars(
        sa.select(Issue).where(Issue.dispatch_cutoff >= today,
                               Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.dispatch_cutoff, Issue.id).limit(3)
    ).all()
    term = term_prices()
    rows = {
        int(left): (int(n), int(cents or 0), int(auto or 0))
        for left, n, cents, auto in db.session.execute(
            sa.select(Subscription.issues_remaining, sa.func.count(Subscription.id),
                      sa.func.sum(sa.func.coalesce(term.c.gross, 0)),
                      sa.func.sum(sa.case((Subscription.auto_renew.is_(True), 1), else_=0)))
            .outerjoin(term.renewal, term.renewal_on).outerjoin(term.by_order, term.order_on)
            .where(Subscription.state.in_([SubscriptionState.ACTIVE,
                                           SubscriptionState.CANCELLED]),
                   Subscription.complimentary.is_(False),
                   Subscription.issues_remaining.between(1, 3))
            .group_by(Subscription.issues_remaining))
    }
    return [Renewal(issue, *rows.get(place, (0, 0, 0)))
            for place, issue in enumerate(issues, start=1)]


# ---------------------------------------------------------------- cohorts

@dataclass
class Cohort:
    month: int
    size: int
    retained: list[int]  # subscribers still counted 0, 1, 2 … months later

    def shares(self) -> list[float]:
        return [count / self.size if self.size else 0.0 for count in self.retained]


def cohorts(period: Period) -> list[Cohort]:
    """Paying subscribers grouped by the first month they were counted in; for each later
    month (up to the period's end), how many are still counted."""
    rows = (
        sa.select(SubscriptionMonth.month_no.label("m"),
                  SubscriptionMonth.subscriber_key.label("k"))
        .where(SubscriptionMonth.complimentary.is_(False))
        .group_by(SubscriptionMonth.month_no, SubscriptionMonth.subscriber_key)
        .cte("rows")
    )
    first_seen = (
        sa.select(rows.c.k, sa.func.min(rows.c.m).label("first"))
        .group_by(rows.c.k).cte("first_seen")
    )
    query = (
        sa.select(first_seen.c.first, rows.c.m - first_seen.c.first, sa.func.count())
        .join(rows, rows.c.k == first_seen.c.k)
        .where(first_seen.c.first.between(period.first, period.last),
               rows.c.m <= period.last)
        .group_by(first_seen.c.first, rows.c.m - first_seen.c.first)
    )
    table: dict[int, dict[int, int]] = {}
    for first, offset, count in db.session.execute(query):
        table.setdefault(int(first), {})[int(offset)] = int(count)
    result = []
    for month in sorted(table):
        counts = table[month]
        span = period.last - month + 1
        result.append(Cohort(month, counts.get(0, 0),
                             [counts.get(offset, 0) for offset in range(span)]))
    return result


# ---------------------------------------------------------------- the whole desk

@dataclass
class Desk:
    period: Period
    today: date
    now: Now
    print_run: PrintRun
    movements: Movements
    revenue: Revenue
    issues: list[DispatchedIssue] | None
    renewal_rates: list[RenewalRate] | None
    unpaid: Unpaid
    renewals: list[Renewal]
    cohorts: list[Cohort]
    plan_names: dict[str, str]


def desk(period: Period, today: date, locale: str) -> Desk:
    """Every figure of the desk: a fixed number of queries, whatever the data."""
    plan_names = {code: (name_en if locale.startswith("en") else name_nl)
                  for code, name_nl, name_en in db.session.execute(
                      sa.select(Plan.code, Plan.name_nl, Plan.name_en))}
    return Desk(
        period=period, today=today, now=now_figures(), print_run=print_run(today),
        movements=movements(period), revenue=revenue(period),
        issues=recognised_per_issue(period), renewal_rates=renewal_rates(period),
        unpaid=unpaid_invoices(today), renewals=upcoming_renewals(today),
        cohorts=cohorts(period), plan_names=plan_names,
    )
