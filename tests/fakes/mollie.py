"""A fake Mollie API v2, served on a free loopback port, for the real `mollie-api-python`.

Shapes follow docs.mollie.com and what the SDK (4.x) reads: `application/hal+json`,
amounts as `{"currency": "EUR", "value": "65.00"}`, ids `tr_`/`cst_`/`mdt_`/`re_`/`chb_`,
`_links.checkout.href`, `_links.customer.href`, `paidAt` (the SDK's `is_paid()` reads it, not
`status`), `amountRemaining` and `_links.refunds`, lists as `count` + `_embedded` + `_links`
with `next`/`previous`, errors as `{"status": int, "title", "detail", "field"?}`. Fields
without a value are left out, as Mollie does.

Supported (HTTP):
- payments: create (amount, description, redirectUrl, cancelUrl, webhookUrl, method (one or
  a list), metadata, locale, sequenceType oneoff|first|recurring, customerId, mandateId),
  get (with `embed=refunds,chargebacks`), list, update (while open), cancel (open or pending);
- customers: create, get, list, update, delete; customer payments: create, list;
- mandates: list, get, create (directdebit), revoke; a `first` payment that becomes paid
  creates a valid mandate (card → creditcard mandate, the bank methods → directdebit);
  `recurring` payments need a valid mandate (the given one, else the customer's first);
- refunds: create on a paid payment (not more than `amountRemaining`), get, list, cancel
  (queued or pending), list all; chargebacks: list and get per payment, list all;
- methods: list (filtered by `sequenceType` and `amount`), list all, get;
- `Idempotency-Key` on POST/PATCH/DELETE: the same key replays the first answer (header
  `Idempotent-Replayed: true`), never a second payment; the same key with another body
  is refused (422);
- a checkout page at `_links.checkout.href` (choose a method and the outcome, like
  Mollie's test mode page), which sends the webhook and redirects to `redirectUrl`.

Test controls are plain methods: `set_status`, `trigger_chargeback`, `reverse_chargeback`,
`invalidate_mandate`,
`set_refund_status`, `fail_next`, `hang_next`, `send_webhook`, `payments_created`, `reset`.

Not supported: orders, subscriptions (`sub_`), payment links, captures/authorizations,
settlements, profiles, OAuth/testmode parameters, issuers, pagination beyond `from`/`limit`,
rate limits, Mollie's own automatic webhook retries.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import string
import threading
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from mollie.api.client import Client
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from magazine.clock import now_utc
from tests.fakes import BackgroundServer

API_KEY = "test_magazinefakemollie0000000000"
HAL = "application/hal+json"
DOCS = "https://docs.mollie.com/reference"

PAYMENT_STATUSES = frozenset({"open", "pending", "authorized", "paid", "failed", "canceled",
                              "expired"})
REFUND_STATUSES = frozenset({"queued", "pending", "processing", "refunded", "failed",
                             "canceled"})
# Refunds in these states no longer hold money back from `amountRemaining`.
REFUND_RELEASED = frozenset({"failed", "canceled"})


@dataclass(frozen=True)
class Method:
    id: str
    description: str
    sequence_types: frozenset[str]
    mandate_method: str | None  # what a paid first payment leaves behind
    minimum_cents: int = 1
    maximum_cents: int = 5_000_000


METHODS: tuple[Method, ...] = (
    Method("bancontact", "Bancontact", frozenset({"oneoff", "first"}), "directdebit", 2),
    Method("ideal", "iDEAL", frozenset({"oneoff", "first"}), "directdebit"),
    Method("kbc", "KBC/CBC Payment Button", frozenset({"oneoff", "first"}), "directdebit"),
    Method("belfius", "Belfius Pay Button", frozenset({"oneoff", "first"}), "directdebit"),
    Method("creditcard", "Card", frozenset({"oneoff", "first", "recurring"}), "creditcard"),
    Method("directdebit", "SEPA Direct Debit", frozenset({"recurring"}), None,
           maximum_cents=100_000),
)
METHODS_BY_ID = {method.id: method for method in METHODS}

# What a consumer "pays with" in test mode, per method (Mollie's test values look alike).
BANK_DETAILS = {
    "bancontact": {"consumerName": "T. Test", "consumerAccount": "BE71096123456769",
                   "consumerBic": "GKCCBEBB", "cardNumber": "6769"},
    "ideal": {"consumerName": "T. Test", "consumerAccount": "NL55INGB0000000000",
              "consumerBic": "INGBNL2A"},
    "kbc": {"consumerName": "T. Test", "consumerAccount": "BE71096123456769",
            "consumerBic": "KREDBEBB"},
    "belfius": {"consumerName": "T. Test", "consumerAccount": "BE71096123456769",
                "consumerBic": "GKCCBEBB"},
    "directdebit": {"consumerName": "T. Test", "consumerAccount": "BE71096123456769",
                    "consumerBic": "GKCCBEBB"},
}
CARD_DETAILS = {"cardHolder": "T. Test", "cardNumber": "6787", "cardLabel": "Mastercard",
                "cardFingerprint": "fake-fingerprint", "cardAudience": "consumer",
                "cardCountryCode": "BE", "cardSecurity": "normal", "feeRegion": "intra-eu"}


class MollieError(Exception):
    """An error answer in Mollie's shape."""

    TITLES = {400: "Bad Request", 401: "Unauthorized Request", 404: "Not Found",
              405: "Method Not Allowed", 409: "Conflict", 410: "Gone",
              422: "Unprocessable Entity", 500: "Internal Server Error",
              502: "Bad Gateway", 503: "Service Unavailable"}

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "title": self.TITLES.get(self.status, "Error"),
            "detail": self.detail,
            "_links": {"documentation": {"href": "https://docs.mollie.com/overview/handling-errors",
                                         "type": "text/html"}},
        }
        if self.field:
            body["field"] = self.field
        return body


@dataclass
class Fault:
    mode: str  # "error" or "hang"
    status: int = 500
    raw: str | None = None
    seconds: float = 0.0
    after_processing: bool = False


@dataclass
class Payment:
    id: str
    created_at: datetime
    amount: int
    currency: str
    description: str
    sequence_type: str
    method: str | list[str] | None
    redirect_url: str | None = None
    cancel_url: str | None = None
    webhook_url: str | None = None
    metadata: Any = None
    locale: str | None = None
    customer_id: str | None = None
    mandate_id: str | None = None
    status: str = "open"
    status_at: dict[str, datetime] = field(default_factory=dict)
    details: dict[str, Any] | None = None
    refund_ids: list[str] = field(default_factory=list)
    chargeback_ids: list[str] = field(default_factory=list)


@dataclass
class Customer:
    id: str
    created_at: datetime
    name: str | None
    email: str | None
    locale: str | None
    metadata: Any


@dataclass
class Mandate:
    id: str
    customer_id: str
    created_at: datetime
    method: str
    details: dict[str, Any]
    status: str = "valid"
    reference: str | None = None
    signature_date: str | None = None


@dataclass
class Refund:
    id: str
    payment_id: str
    created_at: datetime
    amount: int
    currency: str
    description: str
    metadata: Any
    status: str = "pending"


@dataclass
class Chargeback:
    id: str
    payment_id: str
    created_at: datetime
    amount: int
    currency: str
    reason: dict[str, str]
    reversed_at: datetime | None = None


@dataclass(frozen=True)
class Call:
    """One API request the fake answered (for assertions on what the code sent)."""

    method: str
    path: str
    idempotency_key: str | None
    body: Any
    status: int
    replayed: bool = False


def money(cents: int, currency: str = "EUR") -> dict[str, str]:
    sign = "-" if cents < 0 else ""
    return {"currency": currency, "value": f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"}


def parse_money(value: Any, field_name: str = "amount") -> tuple[int, str]:
    """Mollie wants a string with exactly the currency's decimals ("65.00")."""
    if not isinstance(value, dict) or "value" not in value or "currency" not in value:
        raise MollieError(422, "The amount is invalid: give a currency and a value.",
                          field_name)
    text, currency = value["value"], value["currency"]
    if not isinstance(text, str) or not re.fullmatch(r"\d+\.\d{2}", text):
        raise MollieError(422, "The amount contains an invalid value: send a string with "
                          "two decimals, e.g. \"65.00\".", f"{field_name}.value")
    if currency != "EUR":
        raise MollieError(422, f"The currency '{currency}' is not supported here.",
                          f"{field_name}.currency")
    try:
        cents = int(Decimal(text) * 100)
    except InvalidOperation as error:  # pragma: no cover - the regex already refuses it
        raise MollieError(422, "The amount contains an invalid value.", field_name) from error
    return cents, currency


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def new_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(10))


def without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


class FakeMollie:
    """The fake Mollie API: an HTTP server in a thread plus test controls.

    Start one per test session (`mollie_fake` fixture) and `reset()` it between tests."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._routes = Map(self._rules(), strict_slashes=False)
        self._server = BackgroundServer(self._wsgi, "fake-mollie").start()
        self.url = self._server.url
        self.reset()

    # ---- for tests ----------------------------------------------------------------------

    def client(self, timeout: float | tuple[float, float] = (2, 5)) -> Client:
        """The real SDK's client, pointed at this fake, without retries."""
        client = Client(api_endpoint=self.url, timeout=timeout, retry=0)
        client.set_api_key(self.api_key)
        return client

    def reset(self) -> None:
        """Forget everything; release requests still hanging."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self.payments: dict[str, Payment] = {}
            self.customers: dict[str, Customer] = {}
            self.mandates: dict[str, Mandate] = {}
            self.refunds: dict[str, Refund] = {}
            self.chargebacks: dict[str, Chargeback] = {}
            self.calls: list[Call] = []
            self.webhooks_sent: list[tuple[str, str, int | None]] = []
            self._answers: dict[tuple[str, str], tuple[str, Any, int, Any]] = {}
            self._faults: list[Fault] = []
            self.disabled_methods: set[str] = set()
            # The status a new `recurring` payment gets (Mollie: usually pending for SEPA
            # direct debit, often paid at once for cards); with a failure reason if failed.
            self.recurring_status = "pending"
            self.recurring_failure_reason: str | None = None

    def stop(self) -> None:
        self._release.set()
        self._server.stop()

    @property
    def payments_created(self) -> int:
        """How many payments exist: the number to assert "never charged twice" on."""
        with self._lock:
            return len(self.payments)

    def payment(self, payment_id: str) -> dict[str, Any]:
        """The payment as the API shows it."""
        with self._lock:
            return self._payment_json(self._get(self.payments, payment_id, "payment"))

    def set_status(self, payment_id: str, status: str, *, method: str | None = None,
                   failure_reason: str | None = None, notify: bool = False) -> dict[str, Any]:
        """Move a payment as the consumer, the bank or time would: `paid` sets `paidAt` and
        the method's details (and, for a `first` payment, creates the valid mandate);
        `failed` records `failure_reason` (card: `details.failureReason`; direct debit:
        `details.bankReasonCode`). With `notify`, the webhook is sent as Mollie would."""
        if status not in PAYMENT_STATUSES:
            raise ValueError(f"unknown payment status {status!r}")
        with self._lock:
            payment = self._get(self.payments, payment_id, "payment")
            self._move(payment, status, method=method, failure_reason=failure_reason)
            result = self._payment_json(payment)
        if notify:
            self.send_webhook(payment_id)
        return result

    def trigger_chargeback(self, payment_id: str, amount_cents: int | None = None, *,
                           reason_code: str = "MD06",
                           reason: str = "Refund request by end customer",
                           notify: bool = False) -> str:
        """The consumer's bank reverses (part of) a paid payment; returns the chb_ id."""
        with self._lock:
            payment = self._get(self.payments, payment_id, "payment")
            if payment.status != "paid":
                raise ValueError(f"{payment_id} is {payment.status}, not paid")
            chargeback = Chargeback(new_id("chb_"), payment.id, now_utc(),
                                    amount_cents or payment.amount, payment.currency,
                                    {"code": reason_code, "description": reason})
            self.chargebacks[chargeback.id] = chargeback
            payment.chargeback_ids.append(chargeback.id)
        if notify:
            self.send_webhook(payment_id)
        return chargeback.id

    def reverse_chargeback(self, chargeback_id: str, *, notify: bool = False) -> None:
        """The chargeback is undone (the merchant won): `reversedAt` is set and the money
        counts as the payment's again."""
        with self._lock:
            chargeback = self._get(self.chargebacks, chargeback_id, "chargeback")
            chargeback.reversed_at = now_utc()
        if notify:
            self.send_webhook(chargeback.payment_id)

    def invalidate_mandate(self, mandate_id: str) -> None:
        """The consumer revokes the mandate at their bank (or the card expires)."""
        with self._lock:
            self._get(self.mandates, mandate_id, "mandate").status = "invalid"

    def set_refund_status(self, refund_id: str, status: str, *, notify: bool = False) -> None:
        """Move a refund (pending → processing → refunded, or failed)."""
        if status not in REFUND_STATUSES:
            raise ValueError(f"unknown refund status {status!r}")
        with self._lock:
            refund = self._get(self.refunds, refund_id, "refund")
            refund.status = status
        if notify:
            self.send_webhook(refund.payment_id)

    def fail_next(self, count: int = 1, status: int = 500, raw: str | None = None) -> None:
        """The next `count` API requests are answered `status` without being carried out:
        a Mollie-shaped error body (the SDK raises `ResponseError`), or `raw` text such as
        a proxy's HTML page (the SDK raises `ResponseHandlingError`)."""
        with self._lock:
            self._faults.extend(Fault("error", status=status, raw=raw) for _ in range(count))

    def hang_next(self, count: int = 1, seconds: float = 3.0,
                  after_processing: bool = False) -> None:
        """The next `count` API requests answer only after `seconds`: past the client's read
        timeout, the SDK raises `RequestError`. With `after_processing` the request is
        carried out first (the payment exists, the caller never hears of it: the case an
        Idempotency-Key is for); otherwise nothing happens."""
        with self._lock:
            self._faults.extend(Fault("hang", seconds=seconds, after_processing=after_processing)
                                for _ in range(count))

    def send_webhook(self, payment_id: str, via: Any = None) -> int | None:
        """POST `id=tr_…` (form data, unsigned: all Mollie sends) to the payment's
        webhookUrl. `via` may be a Flask test client: then the URL's path is posted to it.
        Returns the status code, or None when the URL could not be reached."""
        with self._lock:
            url = self._get(self.payments, payment_id, "payment").webhook_url
        if not url:
            raise ValueError(f"{payment_id} has no webhookUrl")
        status: int | None
        if via is not None:
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            status = via.post(path, data={"id": payment_id}).status_code
        else:
            try:
                status = requests.post(url, data={"id": payment_id}, timeout=10).status_code
            except requests.RequestException:
                status = None  # Mollie would retry later; tests see None here
        with self._lock:
            self.webhooks_sent.append((payment_id, url, status))
        return status

    # ---- state changes --------------------------------------------------------------------

    def _move(self, payment: Payment, status: str, *, method: str | None = None,
              failure_reason: str | None = None) -> None:
        chosen = method or payment.method
        if isinstance(chosen, list):
            chosen = chosen[0]
        payment.method = chosen or "bancontact"
        payment.status = status
        payment.status_at[status] = now_utc()
        if status == "paid":
            payment.details = self._paid_details(payment)
            if payment.sequence_type == "first" and payment.customer_id and not payment.mandate_id:
                payment.mandate_id = self._mandate_from(payment).id
        elif status == "failed":
            details = dict(self._paid_details(payment))
            if failure_reason:
                if payment.method == "creditcard":
                    details.update(failureReason=failure_reason,
                                   failureMessage=f"The payment failed: {failure_reason}")
                else:
                    details.update(bankReasonCode=failure_reason,
                                   bankReason=f"The debit failed: {failure_reason}")
            payment.details = details

    def _paid_details(self, payment: Payment) -> dict[str, Any]:
        if payment.method == "creditcard":
            return dict(CARD_DETAILS)
        if payment.mandate_id and payment.mandate_id in self.mandates:
            return dict(self.mandates[payment.mandate_id].details)
        return dict(BANK_DETAILS.get(str(payment.method), BANK_DETAILS["directdebit"]))

    def _mandate_from(self, payment: Payment) -> Mandate:
        method = METHODS_BY_ID[str(payment.method)].mandate_method or "directdebit"
        if method == "creditcard":
            details = {key: CARD_DETAILS[key] for key in
                       ("cardHolder", "cardNumber", "cardLabel", "cardFingerprint")}
            details["cardExpiryDate"] = f"{now_utc().year + 3}-12-31"
        else:
            bank = BANK_DETAILS.get(str(payment.method), BANK_DETAILS["directdebit"])
            details = {key: bank[key] for key in ("consumerName", "consumerAccount",
                                                   "consumerBic")}
        mandate = Mandate(new_id("mdt_"), str(payment.customer_id), now_utc(), method, details,
                          reference=f"MAGAZINE-{payment.id[3:].upper()}",
                          signature_date=now_utc().date().isoformat())
        self.mandates[mandate.id] = mandate
        return mandate

    # ---- HTTP ---------------------------------------------------------------------------

    def _rules(self) -> list[Rule]:
        def rule(path: str, methods: list[str], endpoint: str) -> Rule:
            return Rule(path, methods=methods, endpoint=endpoint)

        return [
            rule("/v2/payments", ["POST"], "create_payment"),
            rule("/v2/payments", ["GET"], "list_payments"),
            rule("/v2/payments/<pid>", ["GET"], "get_payment"),
            rule("/v2/payments/<pid>", ["PATCH"], "update_payment"),
            rule("/v2/payments/<pid>", ["DELETE"], "cancel_payment"),
            rule("/v2/payments/<pid>/refunds", ["POST"], "create_refund"),
            rule("/v2/payments/<pid>/refunds", ["GET"], "list_payment_refunds"),
            rule("/v2/payments/<pid>/refunds/<rid>", ["GET"], "get_refund"),
            rule("/v2/payments/<pid>/refunds/<rid>", ["DELETE"], "cancel_refund"),
            rule("/v2/payments/<pid>/chargebacks", ["GET"], "list_payment_chargebacks"),
            rule("/v2/payments/<pid>/chargebacks/<cid>", ["GET"], "get_chargeback"),
            rule("/v2/refunds", ["GET"], "list_refunds"),
            rule("/v2/chargebacks", ["GET"], "list_chargebacks"),
            rule("/v2/customers", ["POST"], "create_customer"),
            rule("/v2/customers", ["GET"], "list_customers"),
            rule("/v2/customers/<cid>", ["GET"], "get_customer"),
            rule("/v2/customers/<cid>", ["PATCH"], "update_customer"),
            rule("/v2/customers/<cid>", ["DELETE"], "delete_customer"),
            rule("/v2/customers/<cid>/payments", ["POST"], "create_customer_payment"),
            rule("/v2/customers/<cid>/payments", ["GET"], "list_customer_payments"),
            rule("/v2/customers/<cid>/mandates", ["POST"], "create_mandate"),
            rule("/v2/customers/<cid>/mandates", ["GET"], "list_mandates"),
            rule("/v2/customers/<cid>/mandates/<mid>", ["GET"], "get_mandate"),
            rule("/v2/customers/<cid>/mandates/<mid>", ["DELETE"], "revoke_mandate"),
            rule("/v2/methods", ["GET"], "list_methods"),
            rule("/v2/methods/all", ["GET"], "list_all_methods"),
            rule("/v2/methods/<mid>", ["GET"], "get_method"),
            rule("/checkout/<pid>", ["GET"], "checkout_page"),
            rule("/checkout/<pid>", ["POST"], "checkout_submit"),
        ]

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        adapter = self._routes.bind_to_environ(environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            response = self._error_response(MollieError(404, "The resource does not exist."))
            return response(environ, start_response)
        except HTTPException as error:
            response = self._error_response(MollieError(error.code or 400, str(error)))
            return response(environ, start_response)
        if endpoint.startswith("checkout_"):
            return getattr(self, "_" + endpoint)(request, **args)(environ, start_response)
        return self._api(request, endpoint, args)(environ, start_response)

    def _api(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            release = self._release
        if fault and fault.mode == "error":
            if fault.raw is not None:
                response = Response(fault.raw, status=fault.status, mimetype="text/html")
            else:
                response = self._error_response(
                    MollieError(fault.status, "Injected failure (test): not carried out."))
            self._log(request, None, fault.status)
            return response
        if fault and not fault.after_processing:
            release.wait(fault.seconds)
            self._log(request, None, 504)
            return self._error_response(MollieError(504, "Injected hang (test): not carried out."))
        response = self._answer(request, endpoint, args)
        if fault:
            release.wait(fault.seconds)
        return response

    def _answer(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            self._log(request, None, 401)
            return self._error_response(
                MollieError(401, "Missing authentication, or failed to authenticate"))
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._error_response(MollieError(400, "The body is not valid JSON."))
        key = request.headers.get("Idempotency-Key") if request.method != "GET" else None
        scope = (self.api_key, key) if key else None
        # One lock around the whole answer: two requests with one key never both run.
        with self._lock:
            if scope and scope in self._answers:
                first = self._answers[scope]
                if first[:2] != (request.method + " " + request.path, body):
                    self._log(request, body, 422)
                    return self._error_response(MollieError(
                        422, "The Idempotency-Key was already used for another request."))
                self._log(request, body, first[2], replayed=True)
                return self._json_response(first[3], first[2], {"Idempotent-Replayed": "true"})
            handler = getattr(self, "_" + endpoint)
            try:
                status, payload = handler(request, body, **args)
            except MollieError as error:
                status, payload = error.status, error.body()
            if scope and status < 500:
                self._answers[scope] = (request.method + " " + request.path, body, status,
                                        deepcopy(payload))
            self._log(request, body, status)
        return self._json_response(payload, status)

    def _log(self, request: Request, body: Any, status: int, replayed: bool = False) -> None:
        with self._lock:
            self.calls.append(Call(request.method, request.path,
                                   request.headers.get("Idempotency-Key"), body, status,
                                   replayed))

    def _json_response(self, payload: Any, status: int,
                       headers: dict[str, str] | None = None) -> Response:
        if status == 204:
            return Response(status=204, headers=headers)
        return Response(json.dumps(payload), status=status, content_type=HAL, headers=headers)

    def _error_response(self, error: MollieError) -> Response:
        return self._json_response(error.body(), error.status)

    def _link(self, path: str) -> dict[str, str]:
        return {"href": f"{self.url}/v2/{path}", "type": HAL}

    @staticmethod
    def _get(table: dict[str, Any], object_id: str, name: str) -> Any:
        found = table.get(object_id)
        if found is None:
            raise MollieError(404, f"No {name} exists with token {object_id}.")
        return found

    def _page(self, request: Request, name: str, path: str, items: list[dict[str, Any]],
              extra_query: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """A list page, newest first, as Mollie pages: `from` (an id) and `limit`."""
        items = list(reversed(items))
        try:
            limit = min(int(request.args.get("limit", 50)), 250)
        except ValueError as error:
            raise MollieError(400, "The limit is invalid.", "limit") from error
        start = 0
        if "from" in request.args:
            ids = [item["id"] for item in items]
            if request.args["from"] not in ids:
                raise MollieError(400, "The from parameter is invalid.", "from")
            start = ids.index(request.args["from"])
        page = items[start:start + limit]
        after = items[start + limit:start + limit + 1]
        before = items[max(0, start - limit):start]

        def link(from_id: str) -> dict[str, str]:
            query = {**(extra_query or {}), "from": from_id, "limit": str(limit)}
            return {"href": f"{self.url}/v2/{path}?{urlencode(query)}", "type": HAL}

        return 200, {
            "count": len(page),
            "_embedded": {name: page},
            "_links": {
                "self": self._link(path),
                "previous": link(before[0]["id"]) if before else None,
                "next": link(after[0]["id"]) if after else None,
                "documentation": {"href": DOCS, "type": "text/html"},
            },
        }

    # ---- payments -----------------------------------------------------------------------

    def _create_payment(self, request: Request, body: dict[str, Any],
                        customer_id: str | None = None) -> tuple[int, dict[str, Any]]:
        amount, currency = parse_money(body.get("amount"))
        description = body.get("description")
        if not isinstance(description, str) or not description.strip():
            raise MollieError(422, "The description is required.", "description")
        sequence_type = body.get("sequenceType", "oneoff")
        if sequence_type not in ("oneoff", "first", "recurring"):
            raise MollieError(422, "The sequence type is invalid.", "sequenceType")
        customer_id = customer_id or body.get("customerId")
        if customer_id is not None and customer_id not in self.customers:
            raise MollieError(422, f"The customer id {customer_id} is invalid.", "customerId")
        if sequence_type in ("first", "recurring") and not customer_id:
            raise MollieError(422, "A customer is required for this sequence type.",
                              "customerId")
        redirect_url = body.get("redirectUrl")
        if sequence_type != "recurring" and not redirect_url:
            raise MollieError(422, "The redirect URL is required.", "redirectUrl")
        metadata = body.get("metadata")
        if metadata is not None and len(json.dumps(metadata)) > 1024:
            raise MollieError(422, "The metadata is too large (about 1 kB at most).",
                              "metadata")
        method = body.get("method")
        wanted = method if isinstance(method, list) else [method] if method else []
        for method_id in wanted:
            known = METHODS_BY_ID.get(method_id)
            if known is None or method_id in self.disabled_methods:
                raise MollieError(422, f"The payment method '{method_id}' is invalid or not "
                                  "activated.", "method")
            if sequence_type not in known.sequence_types:
                raise MollieError(422, f"The payment method '{method_id}' cannot be used "
                                  f"for {sequence_type} payments.", "method")
            if not known.minimum_cents <= amount <= known.maximum_cents:
                raise MollieError(422, "The amount is outside what this method allows.",
                                  "amount")
        mandate_id = body.get("mandateId")
        if sequence_type == "recurring":
            mandate = self._valid_mandate(customer_id, mandate_id)
            mandate_id, method = mandate.id, mandate.method
        elif mandate_id is not None:
            raise MollieError(422, "A mandate can only be given for recurring payments.",
                              "mandateId")
        payment = Payment(
            id=new_id("tr_"), created_at=now_utc(), amount=amount, currency=currency,
            description=description, sequence_type=sequence_type, method=method,
            redirect_url=redirect_url, cancel_url=body.get("cancelUrl"),
            webhook_url=body.get("webhookUrl"), metadata=metadata, locale=body.get("locale"),
            customer_id=customer_id, mandate_id=mandate_id,
        )
        payment.status_at["open"] = payment.created_at
        self.payments[payment.id] = payment
        if sequence_type == "recurring":
            self._move(payment, self.recurring_status,
                       failure_reason=self.recurring_failure_reason)
        return 201, self._payment_json(payment)

    def _valid_mandate(self, customer_id: str | None, mandate_id: str | None) -> Mandate:
        if mandate_id is not None:
            mandate = self.mandates.get(mandate_id)
            if mandate is None or mandate.customer_id != customer_id:
                raise MollieError(422, f"The mandate id {mandate_id} is invalid.", "mandateId")
            if mandate.status != "valid":
                raise MollieError(422, "The mandate is not valid.", "mandateId")
            return mandate
        for mandate in self.mandates.values():
            if mandate.customer_id == customer_id and mandate.status == "valid":
                return mandate
        raise MollieError(422, "The customer has no valid mandate to charge.", "customerId")

    def _create_customer_payment(self, request, body, cid):
        self._get(self.customers, cid, "customer")
        return self._create_payment(request, body, customer_id=cid)

    def _get_payment(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        result = self._payment_json(payment)
        embed = set(request.args.get("embed", "").split(","))
        embedded = {}
        if "refunds" in embed:
            embedded["refunds"] = [self._refund_json(self.refunds[r]) for r in payment.refund_ids]
        if "chargebacks" in embed:
            embedded["chargebacks"] = [self._chargeback_json(self.chargebacks[c])
                                       for c in payment.chargeback_ids]
        if embedded:
            result["_embedded"] = embedded
        return 200, result

    def _list_payments(self, request, body):
        return self._page(request, "payments", "payments",
                          [self._payment_json(p) for p in self.payments.values()])

    def _list_customer_payments(self, request, body, cid):
        self._get(self.customers, cid, "customer")
        return self._page(request, "payments", f"customers/{cid}/payments",
                          [self._payment_json(p) for p in self.payments.values()
                           if p.customer_id == cid])

    def _update_payment(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        if payment.status != "open":
            raise MollieError(422, "Only open payments can be updated.")
        for name, attribute in (("description", "description"), ("redirectUrl", "redirect_url"),
                                ("cancelUrl", "cancel_url"), ("webhookUrl", "webhook_url"),
                                ("metadata", "metadata"), ("locale", "locale")):
            if name in body:
                setattr(payment, attribute, body[name])
        return 200, self._payment_json(payment)

    def _cancel_payment(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        if payment.status not in ("open", "pending"):
            raise MollieError(422, f"The payment is {payment.status} and cannot be canceled.")
        self._move(payment, "canceled")
        return 200, self._payment_json(payment)

    def _amounts(self, payment: Payment) -> tuple[int, int]:
        refunded = sum(self.refunds[r].amount for r in payment.refund_ids
                       if self.refunds[r].status not in REFUND_RELEASED)
        charged_back = sum(self.chargebacks[c].amount for c in payment.chargeback_ids
                           if self.chargebacks[c].reversed_at is None)
        return refunded, charged_back

    def _payment_json(self, payment: Payment) -> dict[str, Any]:
        refunded, charged_back = self._amounts(payment)
        paid = payment.status == "paid"
        links: dict[str, Any] = {
            "self": self._link(f"payments/{payment.id}"),
            "dashboard": {"href": f"{self.url}/dashboard/payments/{payment.id}",
                          "type": "text/html"},
            "documentation": {"href": f"{DOCS}/get-payment", "type": "text/html"},
        }
        if payment.status == "open" and payment.sequence_type != "recurring":
            links["checkout"] = {"href": f"{self.url}/checkout/{payment.id}",
                                 "type": "text/html"}
        if payment.customer_id:
            links["customer"] = self._link(f"customers/{payment.customer_id}")
        if payment.mandate_id:
            links["mandate"] = self._link(
                f"customers/{payment.customer_id}/mandates/{payment.mandate_id}")
        if payment.refund_ids:
            links["refunds"] = self._link(f"payments/{payment.id}/refunds")
        if payment.chargeback_ids:
            links["chargebacks"] = self._link(f"payments/{payment.id}/chargebacks")
        status_at = payment.status_at
        return without_none({
            "resource": "payment",
            "id": payment.id,
            "mode": "test",
            "createdAt": timestamp(payment.created_at),
            "amount": money(payment.amount, payment.currency),
            "description": payment.description,
            "method": payment.method,
            "metadata": payment.metadata,
            "status": payment.status,
            "isCancelable": payment.status in ("open", "pending"),
            "expiresAt": timestamp(payment.created_at + timedelta(minutes=15))
            if payment.status == "open" else None,
            "paidAt": timestamp(status_at.get("paid")) if paid else None,
            "canceledAt": timestamp(status_at.get("canceled"))
            if payment.status == "canceled" else None,
            "expiredAt": timestamp(status_at.get("expired"))
            if payment.status == "expired" else None,
            "failedAt": timestamp(status_at.get("failed")) if payment.status == "failed" else None,
            "amountRefunded": money(refunded, payment.currency) if paid else None,
            "amountRemaining": money(payment.amount - refunded - charged_back, payment.currency)
            if paid else None,
            "amountChargedBack": money(charged_back, payment.currency)
            if payment.chargeback_ids else None,
            "settlementAmount": money(payment.amount, payment.currency) if paid else None,
            "locale": payment.locale,
            "profileId": "pfl_fakemollie",
            "sequenceType": payment.sequence_type,
            "redirectUrl": payment.redirect_url,
            "cancelUrl": payment.cancel_url,
            "webhookUrl": payment.webhook_url,
            "customerId": payment.customer_id,
            "mandateId": payment.mandate_id,
            "details": payment.details,
            "_links": links,
        })

    # ---- refunds and chargebacks --------------------------------------------------------

    def _create_refund(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        if payment.status != "paid":
            raise MollieError(422, f"The payment is {payment.status}: only paid payments can "
                              "be refunded.")
        refunded, charged_back = self._amounts(payment)
        remaining = payment.amount - refunded - charged_back
        amount, currency = parse_money(body.get("amount"))
        if amount <= 0:
            raise MollieError(422, "The refund amount must be more than zero.", "amount")
        if amount > remaining:
            raise MollieError(422, f"The amount of the refund ({money(amount)['value']}) is "
                              "higher than the amount remaining on the payment "
                              f"({money(remaining)['value']}).", "amount")
        refund = Refund(new_id("re_"), payment.id, now_utc(), amount, currency,
                        body.get("description") or "", body.get("metadata"))
        self.refunds[refund.id] = refund
        payment.refund_ids.append(refund.id)
        return 201, self._refund_json(refund)

    def _get_refund(self, request, body, pid, rid):
        refund = self._get(self.refunds, rid, "refund")
        if refund.payment_id != pid:
            raise MollieError(404, f"No refund exists with token {rid}.")
        return 200, self._refund_json(refund)

    def _cancel_refund(self, request, body, pid, rid):
        refund = self._get(self.refunds, rid, "refund")
        if refund.payment_id != pid:
            raise MollieError(404, f"No refund exists with token {rid}.")
        if refund.status not in ("queued", "pending"):
            raise MollieError(422, f"The refund is {refund.status} and cannot be canceled.")
        refund.status = "canceled"
        return 204, None

    def _list_payment_refunds(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        return self._page(request, "refunds", f"payments/{pid}/refunds",
                          [self._refund_json(self.refunds[r]) for r in payment.refund_ids])

    def _list_refunds(self, request, body):
        return self._page(request, "refunds", "refunds",
                          [self._refund_json(r) for r in self.refunds.values()])

    def _refund_json(self, refund: Refund) -> dict[str, Any]:
        return without_none({
            "resource": "refund",
            "id": refund.id,
            "mode": "test",
            "amount": money(refund.amount, refund.currency),
            "settlementAmount": money(-refund.amount, refund.currency),
            "status": refund.status,
            "createdAt": timestamp(refund.created_at),
            "description": refund.description,
            "metadata": refund.metadata,
            "paymentId": refund.payment_id,
            "_links": {
                "self": self._link(f"payments/{refund.payment_id}/refunds/{refund.id}"),
                "payment": self._link(f"payments/{refund.payment_id}"),
                "documentation": {"href": f"{DOCS}/get-refund", "type": "text/html"},
            },
        })

    def _get_chargeback(self, request, body, pid, cid):
        chargeback = self._get(self.chargebacks, cid, "chargeback")
        if chargeback.payment_id != pid:
            raise MollieError(404, f"No chargeback exists with token {cid}.")
        return 200, self._chargeback_json(chargeback)

    def _list_payment_chargebacks(self, request, body, pid):
        payment = self._get(self.payments, pid, "payment")
        return self._page(request, "chargebacks", f"payments/{pid}/chargebacks",
                          [self._chargeback_json(self.chargebacks[c])
                           for c in payment.chargeback_ids])

    def _list_chargebacks(self, request, body):
        return self._page(request, "chargebacks", "chargebacks",
                          [self._chargeback_json(c) for c in self.chargebacks.values()])

    def _chargeback_json(self, chargeback: Chargeback) -> dict[str, Any]:
        return {
            "resource": "chargeback",
            "id": chargeback.id,
            "amount": money(chargeback.amount, chargeback.currency),
            "settlementAmount": money(-chargeback.amount, chargeback.currency),
            "createdAt": timestamp(chargeback.created_at),
            "reason": chargeback.reason,
            "reversedAt": timestamp(chargeback.reversed_at),
            "paymentId": chargeback.payment_id,
            "_links": {
                "self": self._link(f"payments/{chargeback.payment_id}/chargebacks/"
                                   f"{chargeback.id}"),
                "payment": self._link(f"payments/{chargeback.payment_id}"),
                "documentation": {"href": f"{DOCS}/get-chargeback", "type": "text/html"},
            },
        }

    # ---- customers and mandates ---------------------------------------------------------

    def _create_customer(self, request, body):
        customer = Customer(new_id("cst_"), now_utc(), body.get("name"), body.get("email"),
                            body.get("locale"), body.get("metadata"))
        self.customers[customer.id] = customer
        return 201, self._customer_json(customer)

    def _get_customer(self, request, body, cid):
        return 200, self._customer_json(self._get(self.customers, cid, "customer"))

    def _list_customers(self, request, body):
        return self._page(request, "customers", "customers",
                          [self._customer_json(c) for c in self.customers.values()])

    def _update_customer(self, request, body, cid):
        customer = self._get(self.customers, cid, "customer")
        for name in ("name", "email", "locale", "metadata"):
            if name in body:
                setattr(customer, name, body[name])
        return 200, self._customer_json(customer)

    def _delete_customer(self, request, body, cid):
        self._get(self.customers, cid, "customer")
        del self.customers[cid]
        for mandate in self.mandates.values():
            if mandate.customer_id == cid:
                mandate.status = "invalid"
        return 204, None

    def _customer_json(self, customer: Customer) -> dict[str, Any]:
        return without_none({
            "resource": "customer",
            "id": customer.id,
            "mode": "test",
            "name": customer.name,
            "email": customer.email,
            "locale": customer.locale,
            "metadata": customer.metadata,
            "createdAt": timestamp(customer.created_at),
            "_links": {
                "self": self._link(f"customers/{customer.id}"),
                "mandates": self._link(f"customers/{customer.id}/mandates"),
                "payments": self._link(f"customers/{customer.id}/payments"),
                "documentation": {"href": f"{DOCS}/get-customer", "type": "text/html"},
            },
        })

    def _create_mandate(self, request, body, cid):
        """A SEPA direct debit mandate signed outside Mollie (e.g. on paper)."""
        self._get(self.customers, cid, "customer")
        if body.get("method") != "directdebit":
            raise MollieError(422, "Only directdebit mandates can be created.", "method")
        for name in ("consumerName", "consumerAccount"):
            if not body.get(name):
                raise MollieError(422, f"The {name} is required.", name)
        mandate = Mandate(new_id("mdt_"), cid, now_utc(), "directdebit",
                          {"consumerName": body["consumerName"],
                           "consumerAccount": body["consumerAccount"].replace(" ", ""),
                           "consumerBic": body.get("consumerBic")},
                          reference=body.get("mandateReference"),
                          signature_date=body.get("signatureDate"))
        self.mandates[mandate.id] = mandate
        return 201, self._mandate_json(mandate)

    def _customer_mandate(self, cid: str, mid: str) -> Mandate:
        self._get(self.customers, cid, "customer")
        mandate = self._get(self.mandates, mid, "mandate")
        if mandate.customer_id != cid:
            raise MollieError(404, f"No mandate exists with token {mid}.")
        return mandate

    def _get_mandate(self, request, body, cid, mid):
        return 200, self._mandate_json(self._customer_mandate(cid, mid))

    def _revoke_mandate(self, request, body, cid, mid):
        self._customer_mandate(cid, mid).status = "invalid"
        return 204, None

    def _list_mandates(self, request, body, cid):
        self._get(self.customers, cid, "customer")
        return self._page(request, "mandates", f"customers/{cid}/mandates",
                          [self._mandate_json(m) for m in self.mandates.values()
                           if m.customer_id == cid])

    def _mandate_json(self, mandate: Mandate) -> dict[str, Any]:
        return without_none({
            "resource": "mandate",
            "id": mandate.id,
            "mode": "test",
            "status": mandate.status,
            "method": mandate.method,
            "details": mandate.details,
            "mandateReference": mandate.reference,
            "signatureDate": mandate.signature_date,
            "createdAt": timestamp(mandate.created_at),
            "_links": {
                "self": self._link(f"customers/{mandate.customer_id}/mandates/{mandate.id}"),
                "customer": self._link(f"customers/{mandate.customer_id}"),
                "documentation": {"href": f"{DOCS}/get-mandate", "type": "text/html"},
            },
        })

    # ---- methods --------------------------------------------------------------------------

    def _method_json(self, method: Method) -> dict[str, Any]:
        image = f"{self.url}/static/methods/{method.id}"
        return {
            "resource": "method",
            "id": method.id,
            "description": method.description,
            "minimumAmount": money(method.minimum_cents),
            "maximumAmount": money(method.maximum_cents),
            "image": {"size1x": f"{image}.png", "size2x": f"{image}%402x.png",
                      "svg": f"{image}.svg"},
            "status": "activated",
            "_links": {"self": self._link(f"methods/{method.id}")},
        }

    def _list_methods(self, request, body):
        sequence_type = request.args.get("sequenceType", "oneoff")
        amount = None
        if "amount[value]" in request.args:
            amount, _ = parse_money({"value": request.args["amount[value]"],
                                     "currency": request.args.get("amount[currency]", "EUR")})
        found = [self._method_json(m) for m in METHODS
                 if m.id not in self.disabled_methods and sequence_type in m.sequence_types
                 and (amount is None or m.minimum_cents <= amount <= m.maximum_cents)]
        return 200, {"count": len(found), "_embedded": {"methods": found},
                     "_links": {"self": self._link("methods"),
                                "documentation": {"href": DOCS, "type": "text/html"}}}

    def _list_all_methods(self, request, body):
        found = [self._method_json(m) for m in METHODS]
        return 200, {"count": len(found), "_embedded": {"methods": found},
                     "_links": {"self": self._link("methods/all")}}

    def _get_method(self, request, body, mid):
        method = METHODS_BY_ID.get(mid)
        if method is None:
            raise MollieError(404, f"No method exists with id {mid}.")
        return 200, self._method_json(method)

    # ---- the hosted checkout page (Mollie's test-mode page, much simplified) ---------------

    def _checkout_page(self, request: Request, pid: str) -> Response:
        with self._lock:
            payment = self.payments.get(pid)
            if payment is None:
                return Response("Unknown payment", status=404, mimetype="text/plain")
            if payment.status != "open":
                return Response(f"This payment is {payment.status}.", status=410,
                                mimetype="text/plain")
            fixed = payment.method if isinstance(payment.method, str) else None
            choices = ([fixed] if fixed else
                       [m for m in (payment.method or
                                    [m.id for m in METHODS
                                     if payment.sequence_type in m.sequence_types])
                        if m not in self.disabled_methods])
            title = html.escape(payment.description)
            value = money(payment.amount, payment.currency)["value"]
        methods = "".join(
            f'<label><input type="radio" name="method" value="{m}"{" checked" if i == 0 else ""}>'
            f" {html.escape(METHODS_BY_ID[m].description)}</label><br>"
            for i, m in enumerate(choices))
        outcomes = "".join(
            f'<label><input type="radio" name="status" value="{s}"'
            f'{" checked" if s == "paid" else ""}> {s.capitalize()}</label><br>'
            for s in ("paid", "pending", "failed", "canceled", "expired"))
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>Test payment: {title}</title></head><body>"
            f"<h1>Test payment</h1><p>{title}: EUR {value}</p>"
            '<form method="post">'
            f"<fieldset><legend>Payment method</legend>{methods}</fieldset>"
            f"<fieldset><legend>Payment status</legend>{outcomes}</fieldset>"
            '<button type="submit">Continue</button></form></body></html>'
        )
        return Response(page, mimetype="text/html")

    def _checkout_submit(self, request: Request, pid: str) -> Response:
        status = request.form.get("status", "paid")
        with self._lock:
            payment = self.payments.get(pid)
            if payment is None or payment.status != "open":
                return Response("This payment cannot be paid now.", status=410,
                                mimetype="text/plain")
            self._move(payment, status, method=request.form.get("method") or None)
            back = (payment.cancel_url if status == "canceled" and payment.cancel_url
                    else payment.redirect_url)
            webhook = payment.webhook_url
        if webhook:
            self.send_webhook(pid)
        return Response(status=303, headers={"Location": back or "/"})
