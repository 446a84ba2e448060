"""The payment provider interface. Checkout and the services talk only to this; Stripe and
Mollie (payments issue) plug in by adding a module that implements it and registering it in
`subscriptions.providers.PROVIDERS`.

A provider takes payments and holds mandates; the application owns orders, subscriptions
and renewals. Amounts cross this interface in integer euro cents; a provider converts to
its own format inside its adapter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from subscriptions.states import PaymentState

if TYPE_CHECKING:
    from flask import Flask

    from subscriptions.models import Payment


class ProviderError(Exception):
    """The provider refused or could not be reached; the message is for the log."""


class NotSupported(ProviderError):
    """This provider cannot do that (e.g. a bank transfer has no mandate to charge)."""


class ProviderUnavailable(ProviderError):
    """The provider is down or slow (timeout, 5xx, an answer that is not its API): the same
    call may be tried again later, with the same idempotency key."""


class ProviderRefused(ProviderError):
    """The provider understood and said no (e.g. a refund larger than what is left); the
    message is safe to show to the coordinator."""


@dataclass(frozen=True)
class PaymentStart:
    """What the buyer does next: follow `redirect_url` (online providers), or read the
    `instructions` on the page and in the mail (bank transfer)."""

    provider_ref: str | None = None
    redirect_url: str | None = None
    instructions: dict[str, str] = field(default_factory=dict)
    state: PaymentState = PaymentState.OPEN


class ChargeOutcome(enum.StrEnum):
    """What an off-session charge of a saved mandate came to (the renewals job acts on it)."""

    PAID = "paid"
    PENDING = "pending"                  # a direct debit: the bank answers in days
    FAILED_RETRYABLE = "failed_retryable"  # provider down, or a soft decline: try again later
    FAILED_NEEDS_CUSTOMER = "failed_needs_customer"  # authentication, revoked mandate, ...


@dataclass(frozen=True)
class ChargeResult:
    provider_ref: str | None
    state: PaymentState
    outcome: ChargeOutcome = ChargeOutcome.PAID
    reason: str = ""


@dataclass(frozen=True)
class SavedMethod:
    """A reusable payment method (mandate) the provider holds for a customer."""

    customer_ref: str
    mandate_ref: str
    method: str  # e.g. "card", "sepa_debit", "creditcard", "directdebit"
    label: str   # e.g. "Mastercard •••• 6787", "IBAN •••• 6769"


@dataclass(frozen=True)
class ProviderMoney:
    """A refund or chargeback as the provider reports it, in cents."""

    provider_ref: str
    amount_cents: int
    status: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ProviderPayment:
    """A payment as the provider reports it now (re-fetched, never read from a webhook
    body): its state, and the refunds, chargebacks and saved method hanging on it."""

    state: PaymentState
    method: str = ""
    intent_ref: str | None = None
    refunds: tuple[ProviderMoney, ...] = ()
    chargebacks: tuple[ProviderMoney, ...] = ()
    saved_method: SavedMethod | None = None
    failure_reason: str = ""


@dataclass(frozen=True)
class RefundResult:
    provider_ref: str | None
    amount_cents: int
    # Bank transfers are paid back by hand: the coordinator sends the money.
    needs_manual_transfer: bool = False


class PaymentProvider(Protocol):
    name: str
    label: str  # shown at checkout (a lazy translation)
    online: bool  # True: the buyer pays now on the provider's page

    def is_available(self, app: Flask) -> bool:
        """False hides the provider from checkout (e.g. its API key is not set)."""

    def start_payment(self, payment: Payment, *, return_url: str) -> PaymentStart:
        """Open a payment for `payment.amount_cents` and say what the buyer does next."""

    def fetch_status(self, payment: Payment) -> PaymentState:
        """The provider's current state of the payment (re-fetched, never trusted from a
        webhook body)."""

    def charge_mandate(
        self, payment: Payment, *, mandate_ref: str, idempotency_key: str
    ) -> ChargeResult:
        """Charge a saved mandate off-session (renewals). The key, derived from subscription
        and term, makes a retried charge the same charge."""

    def refund(self, payment: Payment, amount_cents: int, *, reason: str) -> RefundResult:
        """Pay back (part of) a paid payment."""
