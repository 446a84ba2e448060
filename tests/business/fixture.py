"""A hand-built business history, January–April 2026 (today: 15 April 2026), whose every
figure is worked out by hand in tests/business/test_figures.py.

Plans: individual print, €65 for 5 issues (net 6132, VAT 368 → MRR 6132 × 5 ÷ 60 = 511);
organisation print, €50 a copy for 5 issues (3 copies: 15000, VAT 849, net 14151 → MRR
1179; 5 copies: 25000, VAT 1415, net 23585 → MRR 1965).

- A: individual, paid 10 Jan by transfer; auto-renew turned off (cancelled, 2 issues left).
- B: individual with a 15% promo code (total 5525, VAT 313), paid 20 Jan by stripe; €10
  refunded on 5 Feb; lapsed on 15 March (state changes are in the audit log, as the
  services write them: B lapsed, A's renewal turned off on 5 April).
- C: B again, a new individual subscription paid 3 April by mollie (a reactivation); 1 issue
  left.
- D: organisation 3 copies paid 15 Feb; renewed with 5 copies paid 10 March (expansion:
  a renewal order for term 2, applied when paid).
- H: organisation 5 copies paid 20 Feb; renewed with 3 copies paid 2 April (contraction).
- E: complimentary, 2 copies, from 2 January.
- F: an order awaiting payment, invoiced 5 January (over 90 days old).
- G: an order awaiting payment, invoiced 1 April, €15 credited (5000 outstanding).

Dispatched issues (the list locked three days before the print date):
- 2.1, printed 25 January: A, B, E.
- 2.2, printed 5 March: A, D (on its 3-copy term), H (5 copies), E.
- 2.3, printed 10 April: A, C, D (5 copies), H (3 copies), E.

Every month's count is made by the roll-up at the end of that month, as the job would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from business.jobs import roll_up_month
from business.months import month_no
from editorial.models import Issue, IssueState
from magazine.db import db
from magazine.models import AuditEvent, User
from subscriptions import pricing
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
from tests.factories import make_issue, make_user

TODAY = date(2026, 4, 15)
NOW = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)
JAN, FEB, MAR, APR = (month_no(date(2026, m, 1)) for m in (1, 2, 3, 4))


@dataclass
class History:
    users: dict[str, User]
    plans: dict[str, Plan]
    subscriptions: dict[str, Subscription]
    orders: dict[str, Order]
    invoices: dict[str, Invoice]
    payments: dict[str, Payment]


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


_sequence = iter(range(1, 1000))


def _order(user: User, plan: Plan, *, copies: int, placed: date, promo_bp: int = 0,
           paid: date | None = None, provider: str = "bank_transfer",
           country: str = "BE") -> tuple[Order, Invoice, Payment | None]:
    unit = plan.price_cents
    lines = [pricing.price_line("subscription", plan.code, copies, unit, plan.vat_rate_bp)]
    if promo_bp:
        off = pricing.discount_cents(lines[0].gross_cents, percent_bp=promo_bp)
        lines.append(pricing.price_line("discount", "promo", 1, -off, plan.vat_rate_bp))
    totals = pricing.totals(lines)
    number = next(_sequence)
    order = Order(
        user_id=user.id, structured_communication=f"{number:012d}", provider=provider,
        billing_name=user.name, billing_email=user.email, billing_country=country,
        total_cents=totals.gross_cents, vat_cents=totals.vat_cents,
        expires_at=_at(placed) + timedelta(days=30), created_at=_at(placed),
        state=OrderState.PAID if paid else OrderState.AWAITING_PAYMENT,
        paid_at=_at(paid) if paid else None,
    )
    for position, line in enumerate(lines):
        order.lines.append(OrderLine(
            position=position, kind=line.kind, description=line.description, plan_id=plan.id,
            quantity=line.quantity, unit_cents=line.unit_cents, vat_rate_bp=line.rate_bp,
            gross_cents=line.gross_cents, vat_cents=line.vat_cents))
    db.session.add(order)
    db.session.flush()
    invoice = Invoice(
        number=f"2026-{number:06d}", year=2026, sequence=number, order_id=order.id,
        issue_date=placed, due_date=placed + timedelta(days=30),
        total_cents=order.total_cents, vat_cents=order.vat_cents, buyer_name=user.name,
        buyer_email=user.email, issued_at=_at(placed))
    db.session.add(invoice)
    payment = None
    if paid:
        payment = Payment(order_id=order.id, provider=provider, state=PaymentState.PAID,
                          amount_cents=order.total_cents, paid_at=_at(paid), received_on=paid,
                          created_at=_at(placed))
        db.session.add(payment)
    db.session.flush()
    return order, invoice, payment


def _subscription(user: User, plan: Plan, order: Order | None, *, copies: int = 1,
                  remaining: int = 5, country: str = "BE", complimentary: bool = False,
                  state: SubscriptionState = SubscriptionState.ACTIVE) -> Subscription:
    subscription = Subscription(
        subscriber_id=user.id, plan_id=plan.id, order_id=order.id if order else None,
        state=state, copies=copies, issues_granted=plan.issues_per_term,
        issues_remaining=remaining, complimentary=complimentary, auto_renew=not complimentary,
        activated_at=order.paid_at if order and order.paid_at else NOW,
    )
    subscription.addresses.append(DeliveryAddress(
        group_no=1, copies=copies, name=user.name, street="Kerkstraat 1", postcode="9000",
        city="Gent", country=country))
    db.session.add(subscription)
    db.session.flush()
    return subscription


def _dispatch(volume: int, number: int, print_date: date,
              subscriptions: list[Subscription], *, graced=()) -> Issue:
    """A dispatched issue and its locked list, as the dispatch would have left them."""
    issue = make_issue(volume=volume, number=number, print_date=print_date,
                       state=IssueState.DISPATCHED)
    locked = _at(print_date - timedelta(days=3))
    db.session.add(Dispatch(issue_id=issue.id, locked_at=locked, dispatched_at=locked,
                            subscriptions=len(subscriptions),
                            copies=sum(s.copies for s in subscriptions)))
    for subscription in subscriptions:
        db.session.add(DispatchEntry(
            issue_id=issue.id, subscription_id=subscription.id, plan_id=subscription.plan_id,
            copies=subscription.copies, digital=False, graced=subscription in graced,
            lock_token="fixture"))
    db.session.flush()
    return issue


def _moved(subscription: Subscription, before: SubscriptionState, after: SubscriptionState,
           day: date) -> None:
    """The audit record the state change would have written, on its day."""
    db.session.add(AuditEvent(action=f"subscription.{after.value}", object_type="subscription",
                              object_id=str(subscription.id), details={"from": before.value},
                              at=_at(day)))


def _renew(subscription: Subscription, order: Order, plan: Plan) -> RenewalOrder:
    """The renewal order of the subscription's next term; applied (the term added) when
    the order is paid."""
    renewal = RenewalOrder(subscription_id=subscription.id, term=subscription.term + 1,
                           plan_id=plan.id, order_id=order.id, applied_at=order.paid_at,
                           created_at=order.created_at)
    if order.paid_at is not None:
        subscription.term += 1
    db.session.add(renewal)
    db.session.flush()
    return renewal


def build_history() -> History:
    users = {key: make_user(email=f"{key.lower()}@example.be", name=f"Klant {key}")
             for key in "ABDEFGH"}
    plans = {
        "individueel": Plan(code="individueel", name_nl="Individueel", name_en="Individual",
                            kind=PlanKind.PRINT, price_cents=6500, issues_per_term=5),
        "organisatie": Plan(code="organisatie", name_nl="Organisatie",
                            name_en="Organisation", kind=PlanKind.ORGANISATION,
                            price_cents=5000, issues_per_term=5),
    }
    db.session.add_all(plans.values())
    db.session.flush()
    ind, org = plans["individueel"], plans["organisatie"]
    orders, invoices, payments, subs = {}, {}, {}, {}

    def order(key, user_key, plan, **kw):
        orders[key], invoices[key], payments[key] = _order(users[user_key], plan, **kw)
        return orders[key]

    # January
    order("A", "A", ind, copies=1, placed=date(2026, 1, 8), paid=date(2026, 1, 10))
    order("B", "B", ind, copies=1, placed=date(2026, 1, 18), paid=date(2026, 1, 20),
          promo_bp=1500, provider="stripe")
    order("F", "F", ind, copies=1, placed=date(2026, 1, 5))
    subs["A"] = _subscription(users["A"], ind, orders["A"], remaining=5)
    subs["B"] = _subscription(users["B"], ind, orders["B"], remaining=5)
    subs["E"] = _subscription(users["E"], ind, None, copies=2, complimentary=True)
    subs["E"].activated_at = _at(date(2026, 1, 2))
    subs["F"] = _subscription(users["F"], ind, orders["F"],
                              state=SubscriptionState.PENDING_PAYMENT)
    _dispatch(2, 1, date(2026, 1, 25), [subs["A"], subs["B"], subs["E"]])
    roll_up_month(JAN)

    # February: two organisations; €10 of B's payment refunded.
    order("D", "D", org, copies=3, placed=date(2026, 2, 12), paid=date(2026, 2, 15))
    order("H", "H", org, copies=5, placed=date(2026, 2, 18), paid=date(2026, 2, 20))
    subs["D"] = _subscription(users["D"], org, orders["D"], copies=3)
    subs["H"] = _subscription(users["H"], org, orders["H"], copies=5)
    db.session.add(Refund(payment_id=payments["B"].id, provider="stripe", provider_ref="re_1",
                          amount_cents=1000, created_at=_at(date(2026, 2, 5))))
    roll_up_month(FEB)

    # March: B lapses; issue 2.2; D renews with 5 copies.
    subs["B"].state = SubscriptionState.LAPSED
    subs["B"].issues_remaining = 0
    _moved(subs["B"], SubscriptionState.ACTIVE, SubscriptionState.LAPSED, date(2026, 3, 15))
    _dispatch(2, 2, date(2026, 3, 5), [subs["A"], subs["D"], subs["H"], subs["E"]])
    order("D2", "D", org, copies=5, placed=date(2026, 3, 8), paid=date(2026, 3, 10))
    _renew(subs["D"], orders["D2"], org)
    subs["D"].copies = 5
    subs["D"].addresses[0].copies = 5
    db.session.flush()
    roll_up_month(MAR)

    # April: H renews with 3 copies; B comes back (C); A turns renewal off; G is invoiced.
    order("H2", "H", org, copies=3, placed=date(2026, 4, 1), paid=date(2026, 4, 2))
    _renew(subs["H"], orders["H2"], org)
    subs["H"].copies = 3
    subs["H"].addresses[0].copies = 3
    order("C", "B", ind, copies=1, placed=date(2026, 4, 1), paid=date(2026, 4, 3),
          provider="mollie")
    subs["C"] = _subscription(users["B"], ind, orders["C"], remaining=1, country="NL")
    subs["A"].state = SubscriptionState.CANCELLED
    _moved(subs["A"], SubscriptionState.ACTIVE, SubscriptionState.CANCELLED, date(2026, 4, 5))
    subs["A"].auto_renew = False
    subs["A"].issues_remaining = 2
    subs["D"].issues_remaining = 4
    order("G", "G", ind, copies=1, placed=date(2026, 4, 1))
    db.session.add(CreditNote(
        number="CN2026-000001", year=2026, sequence=1, invoice_id=invoices["G"].id,
        issue_date=date(2026, 4, 2), reason="korting", total_cents=1500, vat_cents=85,
        buyer_name=users["G"].name, buyer_email=users["G"].email,
        issued_at=_at(date(2026, 4, 2))))
    db.session.flush()
    _dispatch(2, 3, date(2026, 4, 10),
              [subs["A"], subs["C"], subs["D"], subs["H"], subs["E"]])
    roll_up_month(APR)

    for print_date in (date(2026, 5, 15), date(2026, 7, 15), date(2026, 9, 15)):
        make_issue(volume=3, print_date=print_date)
    db.session.commit()
    return History(users, plans, subs, orders, invoices, payments)
