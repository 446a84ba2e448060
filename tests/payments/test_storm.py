"""A webhook storm: 2,000 Mollie notifications for 500 payments, sent by 8 threads at once
over HTTP to the running app (SQLite, or PostgreSQL with TEST_DATABASE_URL), while the
payments move at Mollie.

Every payment starts open. Each has a script of what happens to it at Mollie (paid; pending
then paid; paid then refunded in the dashboard; paid then charged back; paid, charged back
and the chargeback reversed; failed; expired; or nothing). The 2,000 tasks are shuffled and
run by 8 threads: a "step" task moves its payment one step along its script (steps of one
payment are taken in order, whichever thread takes them) and then notifies us, as Mollie
does after a change; a "notify" task only posts the payment's id again. Every payment is
notified at least once, and at least 30% of the notifications are duplicates (nothing moved
at Mollie since an earlier one for the same payment).

At the end each payment must be applied exactly once, and the totals (states, money in,
refunds and credit notes, chargebacks and reversals, mails) must be what Mollie's final
reports give when replayed one by one: we then replay them sequentially (one notification
per payment, one thread) and nothing may change."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from magazine.db import db
from magazine.models import AuditEvent, OutboxMail
from magazine.roles import Role
from subscriptions import services
from subscriptions.models import (
    Chargeback,
    CreditNote,
    Order,
    Payment,
    PlanKind,
    Refund,
    Subscription,
)
from subscriptions.states import OrderState, PaymentState, SubscriptionState
from tests.e2e.conftest import live_server  # noqa: F401  (fixture)
from tests.factories import make_user
from tests.subscriptions.factories import checkout_request, make_plan

PAYMENTS = 500
NOTIFICATIONS = 2000
THREADS = 8
PRICE = 3900
REFUND = 1000

# What happens at Mollie to a payment, step by step, and how often.
SCRIPTS = {
    "paid": (["paid"], 30),
    "pending_paid": (["pending", "paid"], 10),
    "refunded": (["paid", "refund"], 15),
    "charged_back": (["paid", "chargeback"], 10),
    "reversed": (["paid", "chargeback", "reverse"], 5),
    "failed": (["failed"], 12),
    "expired": (["expired"], 8),
    "open": ([], 10),
}


def _place_orders(app) -> list[str]:
    with app.app_context():
        plan = make_plan(kind=PlanKind.DIGITAL, price_cents=PRICE)
        buyer = make_user(roles={Role.SUBSCRIBER})
        refs = []
        for number in range(1, PAYMENTS + 1):
            placed = services.place_order(checkout_request(plan, provider="mollie"),
                                          buyer=buyer)
            refs.append(placed.order.payments[-1].provider_ref)
            if number % 25 == 0:
                db.session.commit()
        db.session.commit()
        db.session.remove()
    return refs


def _totals(app) -> dict:
    """Everything the storm may change, summed: compared with the expectation and with
    itself after the sequential replay."""
    with app.app_context():
        def scalar(statement):
            return db.session.scalar(statement)

        def count_where(model, *where):
            return scalar(sa.select(sa.func.count()).select_from(model).where(*where))

        totals = {
            "payment_states": dict(Counter(db.session.scalars(
                sa.select(Payment.state)).all())),
            "order_states": dict(Counter(db.session.scalars(sa.select(Order.state)).all())),
            "subscription_states": dict(Counter(db.session.scalars(
                sa.select(Subscription.state)).all())),
            "paid_cents": scalar(sa.select(sa.func.coalesce(sa.func.sum(
                Payment.amount_cents), 0)).where(Payment.state == PaymentState.PAID)),
            "paid_events": count_where(AuditEvent, AuditEvent.action == "payment.paid"),
            "refunds": count_where(Refund),
            "refunded_cents": scalar(sa.select(sa.func.coalesce(sa.func.sum(
                Refund.amount_cents), 0))),
            "credit_notes": count_where(CreditNote),
            "credited_cents": scalar(sa.select(sa.func.coalesce(sa.func.sum(
                CreditNote.total_cents), 0))),
            "chargebacks": count_where(Chargeback, Chargeback.reversal_of_id.is_(None)),
            "reversals": count_where(Chargeback, Chargeback.reversal_of_id.is_not(None)),
            "charged_back_cents": scalar(sa.select(sa.func.coalesce(sa.func.sum(
                Chargeback.amount_cents), 0))),
            "mails": dict(Counter(db.session.scalars(sa.select(OutboxMail.template)).all())),
        }
        db.session.remove()
    return totals


def test_webhook_storm_while_payments_move_applies_each_once(app, with_mollie, monkeypatch,
                                                             live_server):  # noqa: F811
    # The storm is about concurrency, not a slow Mollie: on a loaded machine the fixture's
    # 1 s timeout would turn some re-reads into 503s (which Mollie then retries; so do we).
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 20)
    refs = _place_orders(app)
    rng = random.Random(5)
    names = list(SCRIPTS)
    script_of = dict(zip(refs, rng.choices(names, weights=[SCRIPTS[n][1] for n in names],
                                           k=PAYMENTS), strict=True))
    steps = {ref: list(SCRIPTS[script_of[ref]][0]) for ref in refs}
    step_count = sum(len(s) for s in steps.values())
    duplicates = NOTIFICATIONS - PAYMENTS - step_count
    assert duplicates >= 0.3 * NOTIFICATIONS
    tasks = ([("notify", ref) for ref in refs] + [("step", ref) for ref in refs
                                                  for _ in steps[ref]]
             + [("notify", rng.choice(refs)) for _ in range(duplicates)])
    rng.shuffle(tasks)
    assert len(tasks) == NOTIFICATIONS

    mollie = with_mollie.client(timeout=(10, 60))  # a loaded machine is slow, not wrong
    locks = {ref: threading.Lock() for ref in refs}
    chargeback_of: dict[str, str] = {}
    url = f"{live_server}/webhooks/mollie"

    def move(ref: str) -> None:
        """The payment's next step at Mollie (one at a time per payment)."""
        with locks[ref]:
            step = steps[ref].pop(0)
            if step in ("paid", "pending", "failed", "expired"):
                with_mollie.set_status(ref, step)
            elif step == "refund":
                mollie.payments.get(ref).refunds.create(
                    {"amount": {"currency": "EUR", "value": f"{REFUND / 100:.2f}"}},
                    idempotency_key=f"dashboard-{ref}")
            elif step == "chargeback":
                chargeback_of[ref] = with_mollie.trigger_chargeback(ref)
            elif step == "reverse":
                with_mollie.reverse_chargeback(chargeback_of[ref])

    def run(task: tuple[str, str]) -> str:
        kind, ref = task
        if kind == "step":
            move(ref)
        for _attempt in range(5):
            answer = requests.post(url, data={"id": ref}, timeout=60)
            if answer.status_code != 503:  # "try again later": Mollie sends it again
                break
        return f"{answer.status_code} {answer.text}"

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(run, tasks))

    assert all(a.startswith("200 ") for a in answers), Counter(answers)
    assert all(not s for s in steps.values())
    after_storm = _totals(app)

    # What Mollie's final reports give, payment by payment.
    final = Counter(script_of.values())
    paid = final["paid"] + final["pending_paid"] + final["refunded"] + final["charged_back"] \
        + final["reversed"]
    assert after_storm["payment_states"] == {k: v for k, v in {
        PaymentState.PAID: paid, PaymentState.FAILED: final["failed"],
        PaymentState.EXPIRED: final["expired"], PaymentState.OPEN: final["open"]}.items() if v}
    # A charged-back order is owed again and its subscription suspended; a reversed one is
    # paid and running again.
    assert after_storm["order_states"] == {
        OrderState.PAID: paid - final["charged_back"],
        OrderState.AWAITING_PAYMENT: PAYMENTS - paid + final["charged_back"]}
    assert after_storm["subscription_states"] == {
        SubscriptionState.ACTIVE: paid - final["charged_back"],
        SubscriptionState.PENDING_PAYMENT: PAYMENTS - paid + final["charged_back"]}
    assert after_storm["paid_events"] == paid
    assert after_storm["paid_cents"] == PRICE * paid
    assert (after_storm["refunds"], after_storm["refunded_cents"]) == (
        final["refunded"], REFUND * final["refunded"])
    assert (after_storm["credit_notes"], after_storm["credited_cents"]) == (
        final["refunded"], REFUND * final["refunded"])
    assert after_storm["chargebacks"] == final["charged_back"] + final["reversed"]
    assert after_storm["reversals"] == final["reversed"]
    assert after_storm["charged_back_cents"] == PRICE * final["charged_back"]
    mails = after_storm["mails"]
    assert mails["subscriptions_order_confirmation"] == PAYMENTS
    assert mails["subscriptions_payment_received"] == paid
    assert mails["payments_refunded"] == final["refunded"]
    assert mails["payments_chargeback"] == final["charged_back"] + final["reversed"]
    # Whether a reversed chargeback was seen before its reversal depends on the timing (as
    # it would with Mollie): its suspension and reversal mails come in pairs, at most once.
    seen_suspended = mails.get("payments_chargeback_customer", 0) - final["charged_back"]
    assert 0 <= seen_suspended <= final["reversed"]
    assert mails.get("payments_chargeback_reversed", 0) == seen_suspended

    # The sequential replay: Mollie's final report of every payment, one by one.
    for ref in refs:
        answer = requests.post(url, data={"id": ref}, timeout=60)
        assert answer.status_code == 200
    assert _totals(app) == after_storm


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")
