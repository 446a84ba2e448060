"""A payment provider for the jobs tests, registered under the name `testpay`: it charges
mandates idempotently by key (the same key answers with the first charge, as Stripe and
Mollie do) and records every charge, so a test counts charges at the provider. Like the
real adapters it answers a decline as `failed` and a call it did not hear back from as
`open` + retryable (it may have happened)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from subscriptions.providers.base import ChargeOutcome, ChargeResult, PaymentStart
from subscriptions.states import PaymentState


@dataclass
class FakePay:
    name: str = "testpay"
    label: str = "Test payments"
    online: bool = True
    # What the next charges come to, in order; then `default`.
    script: list[ChargeOutcome] = field(default_factory=list)
    default: ChargeOutcome = ChargeOutcome.PAID
    charges: dict[str, ChargeResult] = field(default_factory=dict)  # by idempotency key
    calls: list[str] = field(default_factory=list)
    # The next this many calls are carried out but their answer is lost (a timeout).
    unanswered: int = 0

    def is_available(self, app) -> bool:
        return True

    def start_payment(self, payment, *, return_url: str) -> PaymentStart:
        return PaymentStart(provider_ref=f"tp_start_{payment.id}",
                            redirect_url="https://pay.example/checkout")

    def fetch_status(self, payment) -> PaymentState:
        return payment.state

    def charge_mandate(self, payment, *, mandate_ref: str, idempotency_key: str) -> ChargeResult:
        self.calls.append(idempotency_key)
        if idempotency_key in self.charges:
            return self.charges[idempotency_key]
        outcome = self.script.pop(0) if self.script else self.default
        state = {ChargeOutcome.PAID: PaymentState.PAID,
                 ChargeOutcome.PENDING: PaymentState.PENDING,
                 ChargeOutcome.FAILED_RETRYABLE: PaymentState.FAILED,  # a soft decline
                 ChargeOutcome.FAILED_NEEDS_CUSTOMER: PaymentState.FAILED}[outcome]
        result = ChargeResult(f"tp_{len(self.calls)}", state, outcome,
                              "" if outcome == ChargeOutcome.PAID else "declined")
        self.charges[idempotency_key] = result  # the same key answers the same again
        if self.unanswered:
            self.unanswered -= 1
            return ChargeResult(None, PaymentState.OPEN, ChargeOutcome.FAILED_RETRYABLE,
                                "testpay did not answer")
        return result

    def paid_keys(self) -> Iterator[str]:
        return (key for key, result in self.charges.items()
                if result.outcome == ChargeOutcome.PAID)

    def refund(self, payment, amount_cents: int, *, reason: str, **kwargs):
        raise NotImplementedError
