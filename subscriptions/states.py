"""The states of subscriptions, orders and payments, and the moves allowed between them.

Each table is data (tested whole); one service function per object performs a move
(`services.move_subscription`, `services.move_order`, `services.move_payment`). Nothing else
assigns `.state`.
"""

from __future__ import annotations

import enum


class SubscriptionState(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    ACTIVE = "active"
    GRACED = "graced"      # the term ran out and the renewal is not paid yet
    LAPSED = "lapsed"      # grace passed without payment
    CANCELLED = "cancelled"  # auto-renew off: ends after its last issue
    EXPIRED = "expired"    # never paid


class OrderState(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    EXPIRED = "expired"      # not paid in time: its invoice is credited
    CANCELLED = "cancelled"  # withdrawn by the coordinator before payment


class PaymentState(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


SUBSCRIPTION_TRANSITIONS: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    SubscriptionState.PENDING_PAYMENT: frozenset(
        {SubscriptionState.ACTIVE, SubscriptionState.EXPIRED}
    ),
    # A chargeback of the payment that started it suspends it until paid again (or the
    # chargeback is reversed): back to pending payment, and no issues in the meantime.
    SubscriptionState.ACTIVE: frozenset({SubscriptionState.GRACED, SubscriptionState.CANCELLED,
                                         SubscriptionState.PENDING_PAYMENT}),
    # A renewal paid during grace brings the subscription back.
    SubscriptionState.GRACED: frozenset({SubscriptionState.LAPSED, SubscriptionState.ACTIVE}),
    SubscriptionState.LAPSED: frozenset(),
    # Turning auto-renew back on before the last issue undoes the cancellation.
    SubscriptionState.CANCELLED: frozenset({SubscriptionState.ACTIVE,
                                            SubscriptionState.PENDING_PAYMENT}),
    SubscriptionState.EXPIRED: frozenset(),
}

ORDER_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.AWAITING_PAYMENT: frozenset(
        {OrderState.PAID, OrderState.EXPIRED, OrderState.CANCELLED}
    ),
    # A chargeback took the money back: the order is owed again (a pay link is mailed).
    OrderState.PAID: frozenset({OrderState.AWAITING_PAYMENT}),
    OrderState.EXPIRED: frozenset(),
    OrderState.CANCELLED: frozenset(),
}

PAYMENT_TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    PaymentState.OPEN: frozenset(
        {PaymentState.PENDING, PaymentState.PAID, PaymentState.FAILED, PaymentState.CANCELLED,
         PaymentState.EXPIRED}
    ),
    PaymentState.PENDING: frozenset(
        {PaymentState.PAID, PaymentState.FAILED, PaymentState.CANCELLED, PaymentState.EXPIRED}
    ),
    # Refunds and chargebacks are their own records against a paid payment.
    PaymentState.PAID: frozenset(),
    # Money may arrive after all (a card retried on the same Stripe page, a bank that pays
    # late): the payment is paid; if its order no longer wants it, it is paid back.
    PaymentState.FAILED: frozenset({PaymentState.PAID}),
    PaymentState.CANCELLED: frozenset({PaymentState.PAID}),
    PaymentState.EXPIRED: frozenset({PaymentState.PAID}),
}

# Subscriptions that still receive issues (dispatch, the account page).
RUNNING_STATES = frozenset({SubscriptionState.ACTIVE, SubscriptionState.CANCELLED})
