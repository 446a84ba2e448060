"""The transition tables, whole: every state has a row, and the moves are exactly these."""

from __future__ import annotations

from subscriptions.states import (
    ORDER_TRANSITIONS,
    PAYMENT_TRANSITIONS,
    SUBSCRIPTION_TRANSITIONS,
    OrderState,
    PaymentState,
    SubscriptionState,
)

S = SubscriptionState
P = PaymentState
O = OrderState  # noqa: E741


def _pairs(table):
    return {(a, b) for a, targets in table.items() for b in targets}


def test_subscription_transitions_are_exactly_the_design():
    assert set(SUBSCRIPTION_TRANSITIONS) == set(S)
    assert all(isinstance(v, frozenset) for v in SUBSCRIPTION_TRANSITIONS.values())
    assert _pairs(SUBSCRIPTION_TRANSITIONS) == {
        (S.PENDING_PAYMENT, S.ACTIVE), (S.PENDING_PAYMENT, S.EXPIRED),
        (S.ACTIVE, S.GRACED), (S.GRACED, S.LAPSED), (S.ACTIVE, S.CANCELLED),
        # Our additions: a renewal paid in grace, and auto-renew turned back on.
        (S.GRACED, S.ACTIVE), (S.CANCELLED, S.ACTIVE),
        # A chargeback of the payment that started it suspends it until paid again.
        (S.ACTIVE, S.PENDING_PAYMENT), (S.CANCELLED, S.PENDING_PAYMENT),
    }


def test_payment_transitions_are_exactly_the_design():
    assert set(PAYMENT_TRANSITIONS) == set(P)
    assert all(isinstance(v, frozenset) for v in PAYMENT_TRANSITIONS.values())
    ends = {P.PAID, P.FAILED, P.CANCELLED, P.EXPIRED}
    assert _pairs(PAYMENT_TRANSITIONS) == (
        {(P.OPEN, P.PENDING)} | {(P.OPEN, end) for end in ends}
        | {(P.PENDING, end) for end in ends}
        # Money arriving after all (paid back when the order no longer wants it).
        | {(P.FAILED, P.PAID), (P.CANCELLED, P.PAID), (P.EXPIRED, P.PAID)}
    )


def test_order_transitions():
    assert set(ORDER_TRANSITIONS) == set(O)
    assert all(isinstance(v, frozenset) for v in ORDER_TRANSITIONS.values())
    assert _pairs(ORDER_TRANSITIONS) == {
        (O.AWAITING_PAYMENT, O.PAID), (O.AWAITING_PAYMENT, O.EXPIRED),
        (O.AWAITING_PAYMENT, O.CANCELLED),
        # A chargeback: owed again.
        (O.PAID, O.AWAITING_PAYMENT),
    }
