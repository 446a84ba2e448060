"""The subscriptions demo: every kind and state, gapless invoice numbers, loading twice adds
nothing, subscriber@demo.example has an active subscription with invoices, and the pages
render it."""

from __future__ import annotations

import sqlalchemy as sa

from magazine.db import db
from magazine.demo import load_demo
from subscriptions.models import CreditNote, Invoice, Order, Plan, PlanKind, Subscription
from subscriptions.states import SubscriptionState
from tests.conftest import get_user, log_in


def counts():
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(model))
                 for model in (Plan, Order, Invoice, CreditNote, Subscription))


def test_demo_has_every_kind_and_state_and_loads_once(app_context):
    load_demo()
    first = counts()
    assert first[1] >= 250
    load_demo()
    assert counts() == first
    assert {p.kind for p in db.session.scalars(sa.select(Plan))} == set(PlanKind)
    states = set(db.session.scalars(sa.select(Subscription.state)))
    assert states == set(SubscriptionState)
    for model in (Invoice, CreditNote):
        by_year: dict[int, list[int]] = {}
        for year, sequence in db.session.execute(sa.select(model.year, model.sequence)):
            by_year.setdefault(year, []).append(sequence)
        for sequences in by_year.values():
            assert sorted(sequences) == list(range(1, len(sequences) + 1))
    demo = get_user("subscriber@demo.example")
    subscriptions = db.session.scalars(
        sa.select(Subscription).where(Subscription.subscriber_id == demo.id)).all()
    assert any(s.state == SubscriptionState.ACTIVE and not s.is_gift for s in subscriptions)
    assert all(s.order.invoice is not None for s in subscriptions)


def test_demo_pages_render(app, client):
    with app.app_context():
        load_demo()
        demo = get_user("subscriber@demo.example")
        subscription = db.session.scalar(sa.select(Subscription).where(
            Subscription.subscriber_id == demo.id,
            Subscription.state == SubscriptionState.ACTIVE))
        ids = (subscription.id, subscription.order_id, subscription.order.invoice.id, demo.id)
        some_order = db.session.scalar(sa.select(Order).where(Order.user_id != demo.id))
        other_order = some_order.id
    subscription_id, order_id, invoice_id, user_id = ids
    log_in(client, "subscriber@demo.example", "demo-password")
    assert "Individueel" in client.get("/account").get_data(as_text=True)
    for path in (f"/account/subscriptions/{subscription_id}", f"/account/orders/{order_id}",
                 f"/account/invoices/{invoice_id}.pdf", "/plans", "/checkout"):
        assert client.get(path).status_code == 200, path
    assert client.get(f"/account/orders/{other_order}").status_code == 404

    coordinator = app.test_client()
    log_in(coordinator, "coordinator@demo.example", "demo-password")
    base = "/business/subscriptions"
    for path in (f"{base}/", f"{base}/?q=rups", f"{base}/subscribers/{user_id}",
                 f"{base}/plans", f"{base}/promo-codes", f"{base}/orders/{other_order}"):
        assert coordinator.get(path).status_code == 200, path


def test_demo_works_without_any_issue_planned(app_context):
    from subscriptions.demo import load_subscriptions_demo

    created = load_subscriptions_demo()
    assert "plans" in created
    subscriptions = db.session.scalars(sa.select(Subscription)).all()
    assert len(subscriptions) > 200
    assert all(s.first_issue_id is None for s in subscriptions)
