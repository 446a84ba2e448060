"""The payment provider interface. Checkout and the services talk only to this; Stripe and
Mollie (payments issue) plug in by adding a module that implements it and registering it in
`subscriptions.providers.PROVIDERS`.

A provider takes payments and holds mandates; the application owns orders, subscriptions
and renewals. Amounts cross this interface in integer euro cents; a provider converts to
its own format inside its adapter.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PaymentStart:
    """What the buyer does next: follow `redirect_url` (online providers), or read the
    `instructions` on the page and in the mail (bank transfer)."""

    provider_ref: str | None = None
    redirect_url: str | None = None
    instructions: dict[str, str] = field(default_factory=dict)
    state: PaymentState = PaymentState.OPEN


@dataclass(frozen=True)
class ChargeResult:
    provider_ref: str
    state: PaymentState


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
