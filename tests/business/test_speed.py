"""The desk runs as many SQL statements with 10,000 subscriptions as with 10: every figure
is an aggregate query, never a loop over rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from business.models import SubscriptionMonth
from business.months import month_no
from editorial.models import Issue, IssueState
from magazine.clock import frozen
from magazine.db import db
from magazine.roles import Role
from subscriptions.models import (
    CreditNote,
    DeliveryAddress,
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
from tests.factories import make_issue

NOW = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)


def _bulk(rows: int) -> None:
    """`rows` subscriptions, each with an order, its line, an invoice, a paid payment, an
    address and a month of the roll-up; every tenth refunded, credited and left unpaid."""
    base = db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(Order.id), 0))) + 1
    plans = [Plan(code=f"p{base}-{i}", name_nl=f"P{i}", name_en=f"P{i}", kind=kind,
                  price_cents=6500, issues_per_term=5) for i, kind in enumerate(PlanKind)]
    db.session.add_all(plans)
    db.session.flush()
    start = NOW - timedelta(days=700)
    ids = range(base, base + rows)

    def when(i: int) -> datetime:
        return start + timedelta(hours=(i * 37) % (700 * 24))

    db.session.execute(sa.insert(Order), [dict(
        id=i, structured_communication=f"{i:012d}", billing_name="x", billing_email="x@x.be",
        total_cents=6500, vat_cents=368, expires_at=when(i) + timedelta(days=30),
        created_at=when(i), state="awaiting_payment" if i % 10 == 0 else "paid",
        paid_at=when(i)) for i in ids])
    db.session.execute(sa.insert(OrderLine), [dict(
        order_id=i, kind="subscription", description="x", plan_id=plans[i % 6].id,
        quantity=1, unit_cents=6500, vat_rate_bp=600, gross_cents=6500, vat_cents=368)
        for i in ids])
    db.session.execute(sa.insert(Invoice), [dict(
        id=i, number=f"N{i}", year=2026, sequence=i, order_id=i,
        issue_date=when(i).date(), due_date=when(i).date(), total_cents=6500, vat_cents=368,
        buyer_name="x", buyer_email="x@x.be", issued_at=when(i)) for i in ids])
    db.session.execute(sa.insert(Payment), [dict(
        id=i, order_id=i, provider=("bank_transfer", "stripe", "mollie")[i % 3],
        state="paid", amount_cents=6500, paid_at=when(i), created_at=when(i))
        for i in ids if i % 10])
    db.session.execute(sa.insert(Refund), [dict(
        payment_id=i, provider="stripe", provider_ref=f"re_{i}", amount_cents=500,
        created_at=when(i) + timedelta(days=20)) for i in ids if i % 10 == 5])
    db.session.execute(sa.insert(CreditNote), [dict(
        number=f"CN{i}", year=2026, sequence=i, invoice_id=i, issue_date=when(i).date(),
        total_cents=1000, vat_cents=57, buyer_name="x", issued_at=when(i))
        for i in ids if i % 10 == 0])
    states = ("active", "graced", "cancelled", "lapsed", "pending_payment", "active")
    db.session.execute(sa.insert(Subscription), [dict(
        id=i, plan_id=plans[i % 6].id, order_id=i, state=states[i % 6], copies=1 + i % 3,
        issues_granted=5, issues_remaining=i % 6, complimentary=i % 17 == 0,
        gift_recipient_email="", activated_at=when(i), created_at=when(i)) for i in ids])
    db.session.execute(sa.insert(DeliveryAddress), [dict(
        subscription_id=i, group_no=1, copies=1, name="x", street="x", postcode="9000",
        city="Gent", country=("BE", "NL", "FR")[i % 3]) for i in ids])
    db.session.execute(sa.insert(SubscriptionMonth), [dict(
        month_no=month_no(when(i).date()) + k, subscription_id=i, subscriber_key=i,
        plan_id=plans[i % 6].id, state="active", complimentary=False, mrr_cents=511,
        recorded_at=NOW) for i in ids for k in range(3)
        if month_no(when(i).date()) + k <= month_no(NOW.date())])
    issues = db.session.scalars(sa.select(Issue.id).where(Issue.state == IssueState.DISPATCHED)
                                .order_by(Issue.print_date)).all()
    if issues:
        db.session.execute(sa.insert(DispatchEntry), [dict(
            issue_id=issue_id, subscription_id=i, plan_id=plans[i % 6].id, copies=1,
            digital=False, graced=n == 1 and i % 7 == 0, lock_token="x")
            for i in ids for n, issue_id in enumerate(issues) if i % 5 != 0])
    db.session.execute(sa.insert(RenewalOrder), [dict(
        subscription_id=i, term=2, plan_id=plans[i % 6].id, order_id=i,
        applied_at=when(i) + timedelta(days=300)) for i in ids if i % 3 == 0])
    db.session.commit()
    if db.session.get_bind().dialect.name == "postgresql":
        # Fresh statistics, as autovacuum keeps them: without them PostgreSQL takes the
        # thousands of rows just inserted for a handful and plans nested loops over them.
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


def _statements_for_desk(app, client, path="/business/?start=2024-06&end=2026-04") -> int:
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with frozen(NOW):
            response = client.get(path)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return len(statements)


@pytest.mark.parametrize("big", [10_000])
def test_desk_statement_count_does_not_grow_with_the_data(app, login_as, big):
    coordinator = login_as(Role.COORDINATOR)
    with app.app_context():
        for print_date in (date(2026, 5, 15), date(2026, 7, 15), date(2026, 9, 15)):
            make_issue(volume=9, print_date=print_date)
        for print_date in (date(2025, 11, 15), date(2026, 2, 15)):
            make_issue(volume=8, print_date=print_date, state=IssueState.DISPATCHED)
        _bulk(10)
    paths = ["/business/?start=2024-06&end=2026-04",  # runs to this month: counted now
             "/business/?start=2025-01&end=2026-02",  # ended: counted at its end
             "/business/?start=2024-06&end=2026-04&unpaid_page=3"]
    small = [_statements_for_desk(app, coordinator, path) for path in paths]
    with app.app_context():
        _bulk(big)
    large = [_statements_for_desk(app, coordinator, path) for path in paths]
    assert small == large
    assert max(small) < 40


def test_every_unpaid_invoice_can_be_reached_a_page_at_a_time(app, login_as):
    coordinator = login_as(Role.COORDINATOR)
    with app.app_context():
        _bulk(1000)  # every tenth unpaid: 100 invoices, two pages
        numbers = db.session.scalars(
            sa.select(Invoice.number).join(Order, Order.id == Invoice.order_id)
            .where(Order.state == "awaiting_payment")
            .order_by(Invoice.issue_date, Invoice.id)).all()
    assert len(numbers) == 100
    shown = []
    with frozen(NOW):
        for page in (1, 2):
            html = coordinator.get(f"/business/?unpaid_page={page}").get_data(as_text=True)
            shown += [n for n in numbers if f"<th scope=\"row\">{n}</th>" in html]
            assert ("unpaid-next" in html) == (page == 1)
            assert ("unpaid-previous" in html) == (page == 2)
        csv = coordinator.get("/business/export/unpaid.csv").get_data(as_text=True)
    assert sorted(shown) == sorted(numbers)
    assert all(f"\n{n};" in csv for n in numbers)
