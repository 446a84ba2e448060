"""The payment providers by name, in the order checkout shows them."""

from __future__ import annotations

from flask import Flask

from subscriptions.providers.bank_transfer import BankTransferProvider
from subscriptions.providers.base import PaymentProvider
from subscriptions.providers.manual import ManualProvider
from subscriptions.providers.mollie import MollieProvider
from subscriptions.providers.stripe import StripeProvider

PROVIDERS: dict[str, PaymentProvider] = {
    provider.name: provider
    for provider in (MollieProvider(), StripeProvider(), BankTransferProvider(), ManualProvider())
}


def get_provider(name: str) -> PaymentProvider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise LookupError(f"unknown payment provider {name!r}") from None


def checkout_providers(app: Flask) -> list[PaymentProvider]:
    """The providers a buyer can choose, in the order shown; bank transfer is always there."""
    return [p for p in PROVIDERS.values() if p.is_available(app)]
