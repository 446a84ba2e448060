"""Manual payments: complimentary copies for partners, or money received elsewhere (cash at
a study day, a partner's invoice). The coordinator records them; nothing is charged."""

from __future__ import annotations

from flask import Flask
from flask_babel import lazy_gettext as _l

from subscriptions.providers.base import ChargeResult, NotSupported, PaymentStart, RefundResult
from subscriptions.states import PaymentState


class ManualProvider:
    name = "manual"
    label = _l("Manual payment")
    online = False

    def is_available(self, app: Flask) -> bool:
        # Never offered at checkout: only the coordinator records manual payments.
        return False

    def start_payment(self, payment, *, return_url: str) -> PaymentStart:
        return PaymentStart()

    def fetch_status(self, payment) -> PaymentState:
        return payment.state

    def charge_mandate(self, payment, *, mandate_ref: str, idempotency_key: str) -> ChargeResult:
        raise NotSupported("manual payments have no mandate")

    def refund(self, payment, amount_cents: int, *, reason: str) -> RefundResult:
        return RefundResult(provider_ref=None, amount_cents=amount_cents,
                            needs_manual_transfer=True)
