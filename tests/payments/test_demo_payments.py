"""The demo has online payments as Stripe and Mollie would have left them (no provider is
called: no keys are set here), and the back office and the demo subscriber's pages show
them."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from magazine.db import db
from magazine.demo import load_demo
from magazine.roles import Role
from subscriptions.models import Chargeback, Order, Payment, Refund
from subscriptions.states import OrderState, PaymentState
from tests.conftest import get_user, log_in


def test_demo_has_online_payments_in_every_state(app, login_as):
    with app.app_context():
        load_demo()
        online = db.session.scalars(sa.select(Payment).where(
            Payment.provider.in_(["stripe", "mollie"]))).all()
        states = Counter((p.provider, p.state) for p in online)
        methods = {p.method for p in online}
        # Refunds with their credit note (the business desk's demo adds its own besides).
        refunds = db.session.scalars(sa.select(Refund).join(Payment).where(
            Payment.provider.in_(["stripe", "mollie"]),
            Refund.credit_note_id.is_not(None))).all()
        chargebacks = db.session.scalars(sa.select(Chargeback)).all()
        reopened = next(c for c in chargebacks if c.reopened_order)
        reopened_order = reopened.payment.order_id
        assert reopened.payment.order.state == OrderState.AWAITING_PAYMENT
        demo = get_user("subscriber@demo.example")
        demo_orders = db.session.scalars(sa.select(Order).where(
            Order.user_id == demo.id, Order.provider.in_(["stripe", "mollie"]))).all()
        demo_order_ids = [o.id for o in demo_orders]

    assert {provider for provider, _ in states} == {"stripe", "mollie"}
    assert {state for _, state in states} >= {PaymentState.PAID, PaymentState.PENDING,
                                              PaymentState.OPEN, PaymentState.EXPIRED}
    assert {"bancontact", "card", "ideal", "sepa_debit"} <= methods
    assert len(refunds) >= 3
    assert any(c.reversal_of_id for c in chargebacks)
    assert len(demo_order_ids) == 2

    office = login_as(Role.COORDINATOR).get(f"/business/subscriptions/orders/{reopened_order}")
    assert office.status_code == 200 and 'class="chargeback"' in office.text
    browser = app.test_client()
    log_in(browser, "subscriber@demo.example", "demo-password")
    for order_id in demo_order_ids:
        page = browser.get(f"/account/orders/{order_id}")
        assert page.status_code == 200 and 'class="payment-method"' in page.text
