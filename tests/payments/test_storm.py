"""A webhook storm: 2,000 Mollie notifications for 500 payments (each payment at least once,
the other 1,500 duplicates of random payments), shuffled, sent by 8 threads at once over HTTP
to the running app (SQLite, or PostgreSQL with TEST_DATABASE_URL). Each payment must be
applied exactly once, and the totals must equal what a sequential replay of Mollie's
reports gives: the states, the paid total, one refund and one credit note per refund, one
mail per paid order."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from magazine.db import db
from magazine.models import AuditEvent, OutboxMail
from magazine.roles import Role
from subscriptions import services
from subscriptions.models import CreditNote, Payment, PlanKind, Refund
from subscriptions.states import PaymentState
from tests.e2e.conftest import live_server  # noqa: F401  (fixture)
from tests.factories import make_user
from tests.subscriptions.factories import checkout_request, make_plan

PAYMENTS = 500
NOTIFICATIONS = 2000
THREADS = 8


def test_webhook_storm_applies_each_payment_once(app, with_mollie, live_server):  # noqa: F811
    with app.app_context():
        plan = make_plan(kind=PlanKind.DIGITAL, price_cents=3900)
        buyer = make_user(roles={Role.SUBSCRIBER})
        refs = []
        for _ in range(PAYMENTS):
            placed = services.place_order(checkout_request(plan, provider="mollie"),
                                          buyer=buyer)
            refs.append(placed.order.payments[-1].provider_ref)
            db.session.commit()
        db.session.remove()
    # What Mollie will report: most paid (some with a refund), some pending, failed, open.
    rng = random.Random(5)
    outcome = {}
    for ref in refs:
        outcome[ref] = rng.choices(["paid", "paid_refund", "pending", "failed", "open"],
                                   weights=[60, 15, 10, 10, 5])[0]
        if outcome[ref] in ("paid", "paid_refund"):
            with_mollie.set_status(ref, "paid")
        elif outcome[ref] != "open":
            with_mollie.set_status(ref, outcome[ref])
    client = with_mollie.client()
    for ref in refs:
        if outcome[ref] == "paid_refund":
            client.payments.get(ref).refunds.create(
                {"amount": {"currency": "EUR", "value": "10.00"}},
                idempotency_key=f"dashboard-{ref}")
    # Every payment at least once, then duplicates up to 2,000, shuffled.
    notifications = refs + [rng.choice(refs) for _ in range(NOTIFICATIONS - len(refs))]
    rng.shuffle(notifications)
    url = f"{live_server}/webhooks/mollie"

    def notify(ref: str) -> int:
        return requests.post(url, data={"id": ref}, timeout=60).status_code

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(notify, notifications))

    assert answers.count(200) == NOTIFICATIONS, {a for a in answers if a != 200}
    paid = [r for r in refs if outcome[r] in ("paid", "paid_refund")]
    refunded = [r for r in refs if outcome[r] == "paid_refund"]
    with app.app_context():
        states = dict(db.session.execute(sa.select(Payment.provider_ref, Payment.state)).all())
        expected = {"paid": PaymentState.PAID, "paid_refund": PaymentState.PAID,
                    "pending": PaymentState.PENDING, "failed": PaymentState.FAILED,
                    "open": PaymentState.OPEN}
        assert {r: states[r] for r in refs} == {r: expected[outcome[r]] for r in refs}
        paid_events = db.session.scalar(sa.select(sa.func.count()).where(
            AuditEvent.action == "payment.paid"))
        paid_total = db.session.scalar(sa.select(sa.func.sum(Payment.amount_cents)).where(
            Payment.state == PaymentState.PAID))
        refunds = db.session.execute(sa.select(sa.func.count(), sa.func.sum(
            Refund.amount_cents))).one()
        notes = db.session.scalar(sa.select(sa.func.count()).select_from(CreditNote))
        mails = db.session.scalar(sa.select(sa.func.count()).where(
            OutboxMail.template == "subscriptions_payment_received"))
    assert paid_events == len(paid) == mails
    assert paid_total == 3900 * len(paid)
    assert tuple(refunds) == (len(refunded), 1000 * len(refunded))
    assert notes == len(refunded)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")
