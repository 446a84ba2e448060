"""Mollie: Bancontact, iDEAL, KBC/CBC, Belfius and card on Mollie's hosted page; a first
payment with a customer (`sequenceType=first`) leaves a mandate for renewals, which are
`recurring` payments on that mandate; refunds; chargebacks read from the payment.

Mollie's webhook posts only `id=tr_…`, unsigned: the payment is always re-fetched here.
Amounts are strings in euros at Mollie (`{"currency": "EUR", "value": "65.00"}`); they are
converted to and from cents only in this module. The SDK sends a random Idempotency-Key when
given none, so every call that creates something passes our deterministic key.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from mollie.api.client import Client
from mollie.api.error import (
    Error,
    RequestError,
    ResponseError,
    ResponseHandlingError,
)
from mollie.api.objects.customer import Customer
from mollie.api.objects.payment import Payment as MolliePayment

from magazine.urls import external_url
from subscriptions.providers.base import (
    ChargeOutcome,
    ChargeResult,
    PaymentStart,
    ProviderMoney,
    ProviderPayment,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
    SavedMethod,
)
from subscriptions.states import PaymentState

log = logging.getLogger(__name__)

METHODS = ["bancontact", "ideal", "kbc", "belfius", "creditcard"]
STATES = {
    "open": PaymentState.OPEN, "pending": PaymentState.PENDING,
    "authorized": PaymentState.PENDING, "paid": PaymentState.PAID,
    "failed": PaymentState.FAILED, "canceled": PaymentState.CANCELLED,
    "expired": PaymentState.EXPIRED,
}
# Refunds in these states gave no money back.
REFUND_VOID = frozenset({"failed", "canceled"})
# The SDK client of this thread and the settings it was made with (MollieProvider._client).
_kept = threading.local()


def to_mollie(cents: int) -> dict[str, str]:
    return {"currency": "EUR", "value": f"{Decimal(cents).scaleb(-2):.2f}"}


def from_mollie(amount: dict | None) -> int:
    if not amount:
        return 0
    return int((Decimal(amount["value"]) * 100).to_integral_value())


class MollieProvider:
    name = "mollie"
    label = _l("Bancontact, iDEAL, KBC/CBC, Belfius or card (Mollie)")
    online = True

    def is_available(self, app: Flask) -> bool:
        return bool(app.config.get("MOLLIE_API_KEY"))

    def _client(self) -> Client:
        """The SDK's client for the settings in force, kept per thread: its HTTP session
        keeps the connection to Mollie open from one call to the next (a new connection,
        with its TLS handshake, for every call costs more than many calls); a requests
        session is not to be shared between threads."""
        config = current_app.config
        seconds = config["PROVIDER_TIMEOUT_SECONDS"]
        settings = (config.get("MOLLIE_API_ENDPOINT") or "", config["MOLLIE_API_KEY"], seconds)
        kept = getattr(_kept, "client", None)
        if kept is not None and kept[0] == settings:
            return kept[1]
        client = Client(api_endpoint=settings[0], timeout=(min(seconds, 5), seconds), retry=0)
        client.set_api_key(settings[1])
        _kept.client = (settings, client)
        return client

    def _call(self, what: str, function, *args, **kwargs):
        """Call the SDK; a timeout, a 5xx or an answer that is not Mollie's becomes
        ProviderUnavailable, a refusal ProviderRefused with Mollie's explanation."""
        try:
            return function(*args, **kwargs)
        except (RequestError, ResponseHandlingError) as error:
            raise ProviderUnavailable(f"mollie {what}: {error}") from error
        except ResponseError as error:
            if (error.status or 0) >= 500:
                raise ProviderUnavailable(f"mollie {what}: {error}") from error
            raise ProviderRefused(str(error)) from error
        except Error as error:
            raise ProviderUnavailable(f"mollie {what}: {error}") from error

    @staticmethod
    def _webhook_url() -> str:
        return external_url("payment_webhooks.mollie")

    # ---- first payments ----------------------------------------------------------------

    def start_payment(self, payment, *, return_url: str) -> PaymentStart:
        order = payment.order
        client = self._client()
        data: dict = {
            "amount": to_mollie(payment.amount_cents),
            "description": f"Kinderopvang Magazine {order.reference}",
            "redirectUrl": return_url,
            "webhookUrl": self._webhook_url(),
            "method": METHODS,
            "metadata": {"payment_id": payment.id, "order_id": order.id},
            "locale": "en_US" if order.locale.startswith("en") else "nl_BE",
        }
        customer_ref = None
        if payment.save_method:
            customer = self._call(
                "customer", client.customers.create,
                {"name": order.billing_name, "email": order.billing_email,
                 "metadata": {"user_id": order.user_id}},
                idempotency_key=f"{payment.idempotency_key}-customer")
            customer_ref = customer.id
            data.update(sequenceType="first", customerId=customer_ref)
        created = self._call("payment", client.payments.create, data,
                             idempotency_key=payment.idempotency_key)
        payment.customer_ref = customer_ref
        return PaymentStart(provider_ref=created.id, redirect_url=created.checkout_url,
                            state=STATES.get(created.status, PaymentState.OPEN))

    def cancel_payment(self, payment) -> None:
        """Cancel the payment at Mollie (refused for methods Mollie keeps open until they
        expire)."""
        self._call("cancel payment", self._client().payments.delete, payment.provider_ref,
                   idempotency_key=f"cancel-{payment.provider_ref}")

    def fetch_status(self, payment) -> PaymentState:
        return self.fetch_payment(payment).state

    def fetch_payment(self, payment) -> ProviderPayment:
        if not payment.provider_ref:
            return ProviderPayment(payment.state)
        found = self._call("payment", self._client().payments.get, payment.provider_ref)
        return self._snapshot(found, payment.save_method)

    def fetch_by_ref(self, provider_ref: str) -> tuple[int | None, ProviderPayment]:
        """For the webhook: our payment id (from the metadata we set) and the payment as
        Mollie reports it now."""
        found = self._call("payment", self._client().payments.get, provider_ref)
        metadata = found.metadata or {}
        payment_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
        return (int(payment_id) if payment_id else None,
                self._snapshot(found, bool(found.mandate_id)))

    def _snapshot(self, found: MolliePayment, save_method: bool) -> ProviderPayment:
        state = STATES.get(found.status, PaymentState.OPEN)
        refunds: tuple[ProviderMoney, ...] = ()
        chargebacks: tuple[ProviderMoney, ...] = ()
        if found.has_refunds():
            refunds = tuple(
                ProviderMoney(r.id, from_mollie(r.amount), r.status or "",
                              r.description or "")
                for r in self._call("refunds", found.refunds.list)
                if r.status not in REFUND_VOID)
        if found.has_chargebacks():
            chargebacks = tuple(
                ProviderMoney(c.id, from_mollie(c.amount),
                              "reversed" if c.reversed_at else "",
                              ((c.reason or {}).get("description") or "")
                              if isinstance(c.reason, dict) else str(c.reason or ""))
                for c in self._call("chargebacks", found.chargebacks.list))
        saved = None
        if save_method and state == PaymentState.PAID and found.mandate_id:
            mandate = self._call("mandate", found.get_mandate)
            saved = self._saved_method(found.customer_id, mandate)
        details = found.details or {}
        reason = details.get("failureMessage") or details.get("bankReason") or ""
        # Until the payer chooses, `method` is the list of methods offered.
        method = found.method if isinstance(found.method, str) else ""
        return ProviderPayment(state, method=method, refunds=refunds,
                               chargebacks=chargebacks, saved_method=saved,
                               failure_reason=reason)

    @staticmethod
    def _saved_method(customer_ref: str, mandate) -> SavedMethod | None:
        if mandate is None or mandate.status not in ("valid", "pending"):
            return None
        details = mandate.details or {}
        if mandate.method == "creditcard":
            label = f"{details.get('cardLabel') or 'Card'} •••• {details.get('cardNumber', '')}"
        else:
            label = f"IBAN •••• {(details.get('consumerAccount') or '')[-4:]}"
        return SavedMethod(customer_ref=customer_ref, mandate_ref=mandate.id,
                           method=mandate.method, label=label)

    # ---- saved methods -----------------------------------------------------------------

    def charge_mandate(self, payment, *, mandate_ref: str, idempotency_key: str) -> ChargeResult:
        """A `recurring` payment on the mandate. `payment.customer_ref` is the customer."""
        data = {
            "amount": to_mollie(payment.amount_cents),
            "description": f"Kinderopvang Magazine {payment.order.reference}",
            "sequenceType": "recurring", "customerId": payment.customer_ref,
            "mandateId": mandate_ref, "webhookUrl": self._webhook_url(),
            "metadata": {"payment_id": payment.id, "order_id": payment.order_id},
        }
        try:
            created = self._call("recurring payment", self._client().payments.create, data,
                                 idempotency_key=idempotency_key)
        except ProviderUnavailable as error:
            return ChargeResult(None, PaymentState.OPEN, ChargeOutcome.FAILED_RETRYABLE,
                                str(error))
        except ProviderRefused as error:
            # A revoked or invalid mandate: only the customer can give a new one.
            return ChargeResult(None, PaymentState.FAILED, ChargeOutcome.FAILED_NEEDS_CUSTOMER,
                                str(error))
        state = STATES.get(created.status, PaymentState.OPEN)
        if state == PaymentState.PAID:
            return ChargeResult(created.id, state, ChargeOutcome.PAID)
        if state in (PaymentState.OPEN, PaymentState.PENDING):
            return ChargeResult(created.id, PaymentState.PENDING, ChargeOutcome.PENDING)
        details = created.details or {}
        reason = details.get("failureReason") or details.get("bankReasonCode") or created.status
        return ChargeResult(created.id, state, ChargeOutcome.FAILED_NEEDS_CUSTOMER, reason)

    # Mollie makes a mandate only from a paid first payment: a new method is saved with a
    # verification payment of this amount, paid back at once when the mandate is there.
    SETUP_CENTS = 2  # Bancontact's minimum

    def start_setup(self, *, email: str, name: str, customer_ref: str | None, key: str,
                    return_url: str, cancel_url: str,
                    metadata: dict | None = None) -> tuple[str, str, str]:
        client = self._client()
        if not customer_ref:
            customer_ref = self._call("customer", client.customers.create,
                                      {"name": name, "email": email},
                                      idempotency_key=f"{key}-customer").id
        created = self._call("setup payment", client.payments.create, {
            "amount": to_mollie(self.SETUP_CENTS),
            "description": "Kinderopvang Magazine: payment method for renewals",
            "redirectUrl": return_url, "cancelUrl": cancel_url, "method": METHODS,
            "sequenceType": "first", "customerId": customer_ref,
            "webhookUrl": self._webhook_url(),
            "metadata": {"setup": True, **(metadata or {})},
        }, idempotency_key=key)
        return created.id, created.checkout_url, customer_ref

    def fetch_setup(self, reference: str) -> SavedMethod | None:
        found = self._call("setup payment", self._client().payments.get, reference)
        if found.status != "paid" or not found.mandate_id:
            return None
        return self._saved_method(found.customer_id, self._call("mandate", found.get_mandate))

    def setup_ended(self, reference: str) -> bool:
        """The verification payment can no longer be paid (failed, cancelled, expired)."""
        found = self._call("setup payment", self._client().payments.get, reference)
        return found.status in ("failed", "canceled", "expired")

    def refund_setup(self, reference: str) -> str:
        """Pay the verification payment back (it bought nothing, so it has no invoice);
        the key makes a second call the same refund. Returns the refund's id."""
        client = self._client()
        found = self._call("setup payment", client.payments.get, reference)
        if found.has_refunds():
            existing = [r for r in self._call("refunds", found.refunds.list)
                        if r.status not in REFUND_VOID]
            if existing:
                return existing[0].id
        refund = self._call("refund", found.refunds.create,
                            {"amount": found.amount, "description": "Verification"},
                            idempotency_key=f"setup-refund-{reference}")
        return refund.id

    def revoke_mandate(self, *, customer_ref: str, mandate_ref: str) -> None:
        client = self._client()
        customer = Customer({"id": customer_ref}, client)
        try:
            self._call("revoke mandate", customer.mandates.delete, mandate_ref)
        except ProviderRefused as error:
            log.info("mollie: mandate %s was gone already: %s", mandate_ref, error)

    # ---- refunds -----------------------------------------------------------------------

    def refund(self, payment, amount_cents: int, *, reason: str,
               idempotency_key: str | None = None) -> RefundResult:
        client = self._client()
        target = MolliePayment({"id": payment.provider_ref}, client)
        refund = self._call("refund", target.refunds.create,
                            {"amount": to_mollie(amount_cents), "description": reason[:140]},
                            idempotency_key=idempotency_key or f"refund-payment-{payment.id}")
        return RefundResult(provider_ref=refund.id, amount_cents=from_mollie(refund.amount))
