"""Races that only a real database shows: 20 checkouts at once get 20 invoice numbers
without gaps, a promo code is never used more than allowed, stock never goes below zero.

On PostgreSQL (TEST_DATABASE_URL) the threads really overlap and wait on row locks; SQLite
serialises writers (a transaction holds the write lock from its first write), and the same
guarantees hold there."""

from __future__ import annotations

import threading
from datetime import date

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.errors import DomainError
from subscriptions import services
from subscriptions.models import Invoice, PromoCode, SingleCopyOffer
from tests.conftest import postgres_url
from tests.factories import make_issue, make_user
from tests.subscriptions.factories import checkout_request, make_plan, make_promo

WORKERS = 20


def run_at_once(app, work, count=WORKERS) -> list:
    """Run `work(i)` in `count` threads that start together; each has its own session and
    commits or rolls back. Returns what each returned (or the DomainError it raised)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work(i)
                db.session.commit()
            except DomainError as error:
                db.session.rollback()
                results[i] = error
            except Exception as error:  # reported by the assertion below
                db.session.rollback()
                results[i] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def buyers(app):
    with app.app_context():
        plan = make_plan()
        ids = [make_user().id for _ in range(WORKERS)]
        plan_id = plan.id
        db.session.remove()
    return plan_id, ids


def _place(plan_id, buyer_id, **overrides):
    from magazine.models import User
    from subscriptions.models import Plan

    plan = db.session.get(Plan, plan_id)
    buyer = db.session.get(User, buyer_id)
    return services.place_order(checkout_request(plan, **overrides), buyer=buyer).order.id


def test_twenty_concurrent_checkouts_get_gapless_invoice_numbers(app, buyers):
    plan_id, ids = buyers
    results = run_at_once(app, lambda i: _place(plan_id, ids[i]))
    assert all(isinstance(r, int) for r in results), results
    with app.app_context():
        numbers = sorted(db.session.scalars(sa.select(Invoice.sequence)).all())
        year = date.today().year
        assert numbers == list(range(1, WORKERS + 1))
        assert sorted(db.session.scalars(sa.select(Invoice.number))) == [
            f"{year}-{n:06d}" for n in range(1, WORKERS + 1)]


def test_promo_code_max_uses_hold_under_concurrent_checkouts(app, buyers):
    plan_id, ids = buyers
    with app.app_context():
        make_promo("VIJF", percent=20, max_uses=5)
    results = run_at_once(app, lambda i: _place(plan_id, ids[i], promo_code="VIJF"))
    placed = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(placed) == 5, results
    assert len(refused) == WORKERS - 5
    assert all("opgebruikt" in r.message for r in refused)
    with app.app_context():
        assert db.session.scalar(sa.select(PromoCode.used_count)) == 5
        # The refused checkouts rolled back: no invoice numbers were lost.
        assert sorted(db.session.scalars(sa.select(Invoice.sequence))) == [1, 2, 3, 4, 5]


def test_stock_never_goes_below_zero(app):
    with app.app_context():
        issue = make_issue()
        offer = SingleCopyOffer(issue_id=issue.id, price_cents=1500, stock=7)
        db.session.add(offer)
        db.session.commit()
        offer_id = offer.id
    count = WORKERS if postgres_url() else 5

    def take(i):
        services.take_stock(offer_id, 2)
        return True

    results = run_at_once(app, take, count)
    taken = [r for r in results if r is True]
    with app.app_context():
        stock = db.session.scalar(sa.select(SingleCopyOffer.stock))
    assert stock >= 0
    assert stock == 7 - 2 * len(taken)
    if postgres_url():
        assert len(taken) == 3


def test_a_payment_recorded_twice_at_once_counts_once(app):
    """The coordinator's click and a bank statement import (or a double click) race: the
    order is confirmed under a row lock, once."""
    from magazine.models import OutboxMail, User
    from magazine.roles import Role
    from subscriptions.models import Order, Payment
    from subscriptions.states import OrderState, PaymentState
    from tests.subscriptions.factories import place

    with app.app_context():
        order_id = place(make_plan(), make_user()).id
        coordinator_id = make_user(roles={Role.COORDINATOR}).id

    def record(i):
        order = db.session.get(Order, order_id)
        coordinator = db.session.get(User, coordinator_id)
        return services.record_bank_transfer(order, actor=coordinator) is not None

    results = run_at_once(app, record, 8)
    assert results.count(True) == 1, results
    assert results.count(False) == 7, results
    with app.app_context():
        assert db.session.get(Order, order_id).state == OrderState.PAID
        paid = db.session.scalars(sa.select(Payment).where(
            Payment.state == PaymentState.PAID)).all()
        assert len(paid) == 1
        mails = db.session.scalars(sa.select(OutboxMail).where(
            OutboxMail.template == "subscriptions_payment_received")).all()
        assert len(mails) == 1
