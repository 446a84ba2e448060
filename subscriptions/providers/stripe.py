"""Stripe: card, Bancontact and SEPA direct debit through Stripe Checkout (Stripe's hosted
payment page), off-session charges of a saved method, refunds.

Why Checkout and not the Payment Element: our Content-Security-Policy allows no script from
another origin, and the Payment Element needs Stripe.js from js.stripe.com on our page.
Checkout keeps all card and bank data on Stripe's page (the lightest PCI scope, SAQ A),
handles 3-D Secure and Bancontact's app redirect, and works without JavaScript on our side.

Amounts cross this module in cents; Stripe counts EUR in cents too, so "conversion" here is
only the currency code. Every call that moves money carries an idempotency key derived from
what it pays for, so a retry after a timeout is the same call.
"""

from __future__ import annotations

import json
import logging

import stripe
from flask import Flask, current_app
from flask_babel import lazy_gettext as _l

from subscriptions.providers.base import (
    ChargeOutcome,
    ChargeResult,
    PaymentStart,
    ProviderError,
    ProviderMoney,
    ProviderPayment,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
    SavedMethod,
)
from subscriptions.states import PaymentState

log = logging.getLogger(__name__)

# The SDK resolves `stripe.<Name>` through a module `__getattr__` that imports on every
# access (~25 µs each): what each webhook uses is looked up once.
_WebhookSignature = stripe.WebhookSignature
_SIGNATURE_TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE
_SignatureVerificationError = stripe.SignatureVerificationError

CHECKOUT_METHODS = ["card", "bancontact", "sepa_debit"]
# Decline codes a later retry may get past (Stripe's "soft" declines, among them the generic
# decline: `card_declined` without a more precise decline code); anything else — a lost,
# stolen or expired card, fraud, authentication required — needs the customer.
SOFT_DECLINES = frozenset({"insufficient_funds", "processing_error", "try_again_later",
                           "rate_limit", "issuer_not_available", "reenter_transaction",
                           "generic_decline", "do_not_honor", "card_declined",
                           "card_velocity_exceeded", "withdrawal_count_limit_exceeded"})


# A payment intent's status as our payment state (anything else is still open).
INTENT_STATES = {
    "succeeded": PaymentState.PAID, "processing": PaymentState.PENDING,
    "canceled": PaymentState.CANCELLED, "requires_payment_method": PaymentState.FAILED,
}


def _id(value) -> str | None:
    """An id from a field Stripe may send as an id or as an expanded object."""
    if value is None or isinstance(value, str):
        return value
    return getattr(value, "id", None)


class EventObject:
    """A verified event's JSON read like the SDK's objects: `event.data.object.metadata`,
    `"payment_id" in metadata`, `metadata["payment_id"]`; a missing field is an
    AttributeError (use getattr with a default)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict) -> None:
        self._values = values

    @staticmethod
    def _wrap(value):
        if isinstance(value, dict):
            return EventObject(value)
        if isinstance(value, list):
            return [EventObject._wrap(item) for item in value]
        return value

    def __getattr__(self, name: str):
        try:
            return self._wrap(self._values[name])
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str):
        return self._wrap(self._values[key])

    def __contains__(self, key: str) -> bool:
        return key in self._values


class StripeProvider:
    name = "stripe"
    label = _l("Card, Bancontact or SEPA direct debit (Stripe)")
    online = True

    def is_available(self, app: Flask) -> bool:
        return bool(app.config.get("STRIPE_SECRET_KEY"))

    def _client(self) -> stripe.StripeClient:
        config = current_app.config
        options: dict = {"max_network_retries": 0,
                         "http_client": stripe.RequestsClient(
                             timeout=config["PROVIDER_TIMEOUT_SECONDS"])}
        if config.get("STRIPE_API_BASE"):
            options["base_addresses"] = {"api": config["STRIPE_API_BASE"]}
        return stripe.StripeClient(config["STRIPE_SECRET_KEY"], **options)

    def _call(self, what: str, function, *args, **kwargs):
        """Call the SDK; timeouts and 5xx become ProviderUnavailable, refusals
        ProviderRefused (with Stripe's message), so callers never see SDK exceptions."""
        try:
            return function(*args, **kwargs)
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            raise ProviderUnavailable(f"stripe {what}: {error}") from error
        except stripe.APIError as error:
            raise ProviderUnavailable(f"stripe {what}: {error}") from error
        except stripe.StripeError as error:
            status = getattr(error, "http_status", None) or 0
            if status >= 500:
                raise ProviderUnavailable(f"stripe {what}: {error}") from error
            raise ProviderRefused(getattr(error, "user_message", None) or str(error)) from error

    # ---- first payments ----------------------------------------------------------------

    def start_payment(self, payment, *, return_url: str) -> PaymentStart:
        order = payment.order
        metadata = {"payment_id": str(payment.id), "order_id": str(order.id)}
        intent_data: dict = {"metadata": metadata,
                             "description": f"Kinderopvang Magazine {order.reference}"}
        params: dict = {
            "mode": "payment",
            "success_url": return_url,
            "cancel_url": return_url,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": "eur", "unit_amount": payment.amount_cents,
                "product_data": {"name": f"Kinderopvang Magazine {order.reference}"}}}],
            "payment_method_types": CHECKOUT_METHODS,
            "client_reference_id": f"payment-{payment.id}",
            "metadata": metadata,
            "customer_email": order.billing_email,
            "locale": "en" if order.locale.startswith("en") else "nl",
        }
        if payment.save_method:
            # Card stays a card; Bancontact leaves a SEPA direct debit method for renewals.
            intent_data["setup_future_usage"] = "off_session"
            params["customer_creation"] = "always"
        params["payment_intent_data"] = intent_data
        session = self._call("checkout session", self._client().v1.checkout.sessions.create,
                             params=params, options={"idempotency_key": payment.idempotency_key})
        return PaymentStart(provider_ref=session.id, redirect_url=session.url)

    def cancel_payment(self, payment) -> None:
        """Expire an open Checkout Session: its page stops taking payments."""
        if (payment.provider_ref or "").startswith("cs_"):
            self._call("expire session", self._client().v1.checkout.sessions.expire,
                       payment.provider_ref)

    def fetch_status(self, payment) -> PaymentState:
        return self.fetch_payment(payment).state

    def fetch_payment(self, payment) -> ProviderPayment:
        client = self._client()
        ref = payment.provider_ref or ""
        customer = None
        if ref.startswith("cs_"):
            session = self._call("session", client.v1.checkout.sessions.retrieve, ref)
            intent_id = _id(session.payment_intent)
            customer = _id(session.customer)
            if session.status == "expired":
                return ProviderPayment(PaymentState.EXPIRED)
            if session.status == "open" or intent_id is None:
                return ProviderPayment(PaymentState.OPEN)
        elif ref.startswith("pi_"):
            intent_id = ref
        else:
            return ProviderPayment(payment.state)
        intent = self._call("payment intent", client.v1.payment_intents.retrieve, intent_id)
        customer = customer or _id(intent.customer)
        state = INTENT_STATES.get(intent.status, PaymentState.OPEN)
        refunds: tuple[ProviderMoney, ...] = ()
        if state == PaymentState.PAID:
            found = self._call("refunds", client.v1.refunds.list,
                               params={"payment_intent": intent_id, "limit": 100})
            refunds = tuple(
                ProviderMoney(r.id, r.amount, r.status or "", r.reason or "")
                for r in found.data if r.status not in ("failed", "canceled"))
        saved = None
        if payment.save_method and state in (PaymentState.PAID, PaymentState.PENDING) \
                and customer:
            saved = self._saved_method(client, customer, _id(intent.payment_method))
        method = payment.method or ""
        if not method and state != PaymentState.OPEN:
            method = self._method_used(client, intent)
        error = getattr(intent, "last_payment_error", None)
        return ProviderPayment(state, method=method, intent_ref=intent_id, refunds=refunds,
                               saved_method=saved,
                               failure_reason=getattr(error, "message", "") or "" if error
                               else "")

    def _method_used(self, client, intent) -> str:
        """How the buyer actually paid (card, bancontact, sepa_debit): the charge's
        `payment_method_details.type`; else the payment method's type."""
        charge_id = _id(getattr(intent, "latest_charge", None))
        if charge_id:
            charge = self._call("charge", client.v1.charges.retrieve, charge_id)
            details = getattr(charge, "payment_method_details", None)
            if details is not None and getattr(details, "type", None):
                return details.type
        method_id = _id(getattr(intent, "payment_method", None))
        if method_id:
            return self._call("payment method", client.v1.payment_methods.retrieve,
                              method_id).type or ""
        return ""

    def _saved_method(self, client, customer: str, method_id: str | None) -> SavedMethod | None:
        method = None
        if method_id:
            method = self._call("payment method", client.v1.payment_methods.retrieve,
                                method_id)
            if method.type not in ("card", "sepa_debit"):
                method = None
        if method is None:
            # Bancontact pays once; Stripe leaves a generated SEPA debit method for reuse.
            found = self._call("payment methods", client.v1.payment_methods.list,
                               params={"customer": customer, "type": "sepa_debit"})
            method = found.data[0] if found.data else None
        if method is None:
            return None
        if method.type == "card":
            label = f"{(method.card.brand or 'card').title()} •••• {method.card.last4}"
        else:
            label = f"IBAN •••• {method.sepa_debit.last4}"
        return SavedMethod(customer_ref=customer, mandate_ref=method.id, method=method.type,
                           label=label)

    # ---- saved methods -----------------------------------------------------------------

    def charge_mandate(self, payment, *, mandate_ref: str, idempotency_key: str) -> ChargeResult:
        """Charge a saved method off-session. `payment.customer_ref` is the Customer and
        `payment.method` the saved method's type (card or sepa_debit)."""
        client = self._client()
        method_type = payment.method
        if method_type not in ("card", "sepa_debit"):
            try:
                method_type = self._call("payment method", client.v1.payment_methods.retrieve,
                                         mandate_ref).type
            except ProviderUnavailable as error:
                return ChargeResult(None, PaymentState.OPEN, ChargeOutcome.FAILED_RETRYABLE,
                                    str(error))
            except ProviderRefused as error:
                return ChargeResult(None, PaymentState.FAILED,
                                    ChargeOutcome.FAILED_NEEDS_CUSTOMER, str(error))
        params = {
            "amount": payment.amount_cents, "currency": "eur",
            "customer": payment.customer_ref, "payment_method": mandate_ref,
            "payment_method_types": [method_type], "confirm": True, "off_session": True,
            "metadata": {"payment_id": str(payment.id), "order_id": str(payment.order_id)},
            "description": f"Kinderopvang Magazine {payment.order.reference}",
        }
        try:
            intent = client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as error:
            detail = (error.json_body or {}).get("error", {})
            decline = detail.get("decline_code") or error.code or ""
            intent_id = (detail.get("payment_intent") or {}).get("id")
            outcome = (ChargeOutcome.FAILED_RETRYABLE if decline in SOFT_DECLINES
                       else ChargeOutcome.FAILED_NEEDS_CUSTOMER)
            return ChargeResult(intent_id, PaymentState.FAILED, outcome,
                                decline or str(error))
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
            return ChargeResult(None, PaymentState.OPEN, ChargeOutcome.FAILED_RETRYABLE,
                                f"stripe unavailable: {error}")
        except stripe.StripeError as error:
            return ChargeResult(None, PaymentState.FAILED, ChargeOutcome.FAILED_NEEDS_CUSTOMER,
                                str(error))
        if intent.status == "succeeded":
            return ChargeResult(intent.id, PaymentState.PAID, ChargeOutcome.PAID)
        if intent.status == "processing":
            return ChargeResult(intent.id, PaymentState.PENDING, ChargeOutcome.PENDING)
        return ChargeResult(intent.id, PaymentState.FAILED, ChargeOutcome.FAILED_NEEDS_CUSTOMER,
                            intent.status)

    def start_setup(self, *, email: str, name: str, customer_ref: str | None, key: str,
                    return_url: str, cancel_url: str,
                    metadata: dict | None = None) -> tuple[str, str, str]:
        """Save a new method without a payment (Checkout in setup mode): returns the
        session id, its page and the Customer it is saved on."""
        client = self._client()
        if not customer_ref:
            customer_ref = self._call(
                "customer", client.v1.customers.create,
                params={"email": email, "name": name},
                options={"idempotency_key": f"{key}-customer"}).id
        session = self._call("setup session", client.v1.checkout.sessions.create, params={
            "mode": "setup", "currency": "eur", "customer": customer_ref,
            "payment_method_types": ["card", "sepa_debit"],
            "success_url": return_url, "cancel_url": cancel_url,
            "metadata": {k: str(v) for k, v in (metadata or {}).items()},
        }, options={"idempotency_key": key})
        return session.id, session.url, customer_ref

    def fetch_setup(self, reference: str) -> SavedMethod | None:
        """The method a setup session saved, once it is complete."""
        client = self._client()
        session = self._call("setup session", client.v1.checkout.sessions.retrieve, reference)
        if session.status != "complete" or not session.setup_intent:
            return None
        intent = self._call("setup intent", client.v1.setup_intents.retrieve,
                            _id(session.setup_intent))
        if intent.status != "succeeded":
            return None
        return self._saved_method(client, _id(session.customer) or _id(intent.customer),
                                  _id(intent.payment_method))

    def setup_ended(self, reference: str) -> bool:
        """The setup session can no longer be completed."""
        session = self._call("setup session", self._client().v1.checkout.sessions.retrieve,
                             reference)
        return session.status == "expired"

    def revoke_mandate(self, *, customer_ref: str, mandate_ref: str) -> None:
        try:
            self._call("detach", self._client().v1.payment_methods.detach, mandate_ref)
        except ProviderRefused as error:
            # Already detached (or gone): nothing left to revoke.
            log.info("stripe: %s was not attached any more: %s", mandate_ref, error)

    # ---- refunds -----------------------------------------------------------------------

    def refund(self, payment, amount_cents: int, *, reason: str,
               idempotency_key: str | None = None) -> RefundResult:
        if not payment.intent_ref:
            raise ProviderError(f"payment {payment.id} has no payment intent to refund")
        refund = self._call(
            "refund", self._client().v1.refunds.create,
            params={"payment_intent": payment.intent_ref, "amount": amount_cents,
                    "metadata": {"payment_id": str(payment.id), "reason": reason[:400]}},
            options={"idempotency_key": idempotency_key} if idempotency_key else None)
        return RefundResult(provider_ref=refund.id, amount_cents=refund.amount)

    # ---- webhooks ----------------------------------------------------------------------

    def verify_event(self, body: bytes, signature: str):
        """The event, if Stripe signed this body with our secret; else ValueError."""
        secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
        if not secret or not signature:
            raise ValueError("no webhook secret or no signature")
        try:
            payload = body.decode("utf-8")
            _WebhookSignature.verify_header(payload, signature, secret, _SIGNATURE_TOLERANCE)
            data = json.loads(payload)
        except (_SignatureVerificationError, ValueError) as error:
            raise ValueError(str(error)) from error
        if not (isinstance(data, dict) and isinstance(data.get("id"), str)
                and isinstance(data.get("type"), str) and isinstance(data.get("data"), dict)
                and isinstance(data["data"].get("object"), dict)):
            raise ValueError("not a Stripe event")
        # Read as plain attributes (what `stripe.Event.construct_from` builds cost more CPU
        # than the rest of a webhook that changes nothing).
        return EventObject(data)

    def payment_id_in_event(self, event) -> int | None:
        """Our payment id from the metadata we put on the session or the payment intent,
        when the event's object carries it (no call to Stripe)."""
        metadata = getattr(event.data.object, "metadata", None)
        if metadata is not None and "payment_id" in metadata:
            try:
                return int(metadata["payment_id"])
            except (TypeError, ValueError):
                return None
        return None

    def intent_of_event(self, event) -> str | None:
        """The payment intent an event's object is or points to (a charge, refund or
        dispute points to its intent)."""
        obj = event.data.object
        if getattr(obj, "object", None) == "payment_intent":
            return getattr(obj, "id", None)
        return _id(getattr(obj, "payment_intent", None))

    def payment_id_of_event(self, event) -> int | None:
        """Our payment id for an event: from the metadata we put on the session or the
        payment intent (a charge or refund points to its intent, re-read from Stripe)."""
        found = self.payment_id_in_event(event)
        if found is not None:
            return found
        obj = event.data.object
        intent_id = _id(getattr(obj, "payment_intent", None))
        if intent_id:
            intent = self._call("payment intent", self._client().v1.payment_intents.retrieve,
                                intent_id)
            if intent.metadata and "payment_id" in intent.metadata:
                return int(intent.metadata["payment_id"])
        return None

    def snapshot_of_event(self, event, payment) -> ProviderPayment | None:
        """What a verified event's own object says about `payment`, without asking Stripe;
        None when the event lacks something the payment needs (then it is re-read).

        A signed event is Stripe's word (issue 5), but an event may be late: only what
        the state machine can apply in any order is taken from it. A succeeded or canceled
        intent is final at Stripe, and `apply_provider_payment` never moves a payment
        backwards (processing only moves an open payment, a failure only an open or pending
        one, a success anything not paid). A failure is not final at Stripe (the buyer may
        try again on the same intent), so a late one could undo a newer processing: it is
        re-read. Refunds are taken from the refund object only on a paid payment (a refund
        before the success is re-read: that brings the success and every refund)."""
        obj = event.data.object
        kind = getattr(obj, "object", None)
        intent_id = obj.id if kind == "payment_intent" else _id(getattr(obj, "payment_intent",
                                                                         None))
        if payment.intent_ref and intent_id != payment.intent_ref:
            return None  # not the intent we know for this payment: ask Stripe
        if kind == "payment_intent":
            state = INTENT_STATES.get(getattr(obj, "status", None) or "")
            if state is None or state == PaymentState.FAILED:
                return None
            if payment.save_method and state in (PaymentState.PAID, PaymentState.PENDING) \
                    and payment.state != PaymentState.PAID:
                return None  # the saved method's details are not in the event
            method = payment.method or ""
            if not method and state != PaymentState.OPEN \
                    and payment.state not in (PaymentState.PAID, state):
                types = list(getattr(obj, "payment_method_types", None) or ())
                if len(types) != 1:
                    return None  # which method paid is on the charge
                method = types[0]
            return ProviderPayment(state, method=method, intent_ref=intent_id)
        if kind == "refund" and payment.state == PaymentState.PAID:
            status = getattr(obj, "status", "") or ""
            refunds = () if status in ("failed", "canceled") else (ProviderMoney(
                obj.id, obj.amount, status, getattr(obj, "reason", "") or ""),)
            return ProviderPayment(PaymentState.PAID, refunds=refunds)
        if kind == "charge" and payment.state == PaymentState.PAID:
            listed = getattr(obj, "refunds", None)
            data = getattr(listed, "data", None) if listed is not None else None
            if data is None or getattr(listed, "has_more", False):
                return None  # newer API versions leave the refunds out of the charge
            return ProviderPayment(PaymentState.PAID, refunds=tuple(
                ProviderMoney(r.id, r.amount, r.status or "", r.reason or "")
                for r in data if r.status not in ("failed", "canceled")))
        return None
