"""Fixtures for the online payments: the app pointed at the providers' stand-ins (localstripe
and the fake Mollie, spoken to over HTTP by the real SDKs: nothing is patched), a buyer with
an order, and helpers that read the database afresh."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from magazine.db import db
from magazine.roles import Role
from subscriptions.models import Order, Payment
from tests.factories import make_user
from tests.fakes.localstripe import API_KEY as STRIPE_KEY
from tests.fakes.mollie import API_KEY as MOLLIE_KEY
from tests.subscriptions.factories import make_plan, place

WEBHOOK_SECRET = "whsec_magazine_payments"


@pytest.fixture
def with_stripe(app, localstripe, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", STRIPE_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe.url)
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 1)
    return localstripe


@pytest.fixture
def with_mollie(app, mollie_fake, monkeypatch):
    monkeypatch.setitem(app.config, "MOLLIE_API_KEY", MOLLIE_KEY)
    monkeypatch.setitem(app.config, "MOLLIE_API_ENDPOINT", mollie_fake.url)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 1)
    return mollie_fake


@pytest.fixture
def buyer_order(app) -> Callable[..., tuple[int, int, str]]:
    """Place a subscription order paid with `provider`; returns (order id, payment id, the
    buyer's e-mail)."""

    def make(provider: str, *, save_method: bool = False, price_cents: int = 6500):
        with app.app_context():
            plan = make_plan(price_cents=price_cents)
            buyer = make_user(roles={Role.SUBSCRIBER})
            order = place(plan, buyer, provider=provider, save_method=save_method)
            payment = order.payments[-1]
            result = (order.id, payment.id, buyer.email)
            db.session.remove()
        return result

    return make


def read_payment(app, payment_id: int) -> Payment:
    with app.app_context():
        payment = db.session.get(Payment, payment_id)
        db.session.refresh(payment)
        # Load what the tests look at, then let go of the session.
        _ = (payment.order.state, payment.refunds, payment.chargebacks,
             [s.state for s in payment.order.subscriptions],
             payment.order.invoice and payment.order.invoice.credit_notes)
        db.session.expunge_all()
        return payment


def count(app, statement) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(statement.subquery()))


def order_of(app, order_id: int) -> Order:
    with app.app_context():
        order = db.session.get(Order, order_id)
        _ = (order.payments, order.invoice and order.invoice.credit_notes)
        db.session.expunge_all()
        return order
