"""The localstripe process: `python -m tests.fakes.localstripe_server` (started by
tests/fakes/localstripe.py, never imported by the test process: localstripe is GPL and
test-only, and it keeps global state).

On top of localstripe 1.15.10 it adds what our payments code needs and localstripe lacks
or gets wrong, each marked below:
- no persistence (localstripe pickles its store to the fixed, shared /tmp/localstripe.pickle);
- PaymentIntent params real Stripe takes (`setup_future_usage`, `description`, ...);
- listing a customer's payment methods of every type (localstripe: cards only);
- off-session confirmation needing authentication fails with `authentication_required`;
- SEPA debits stay `processing` until the bank answers (0.5 s here);
- refunds are limited to what is left on the charge, and send `charge.refunded`;
- `Idempotency-Key` on POST, as Stripe does;
- faults injected by tests (`POST /_config/faults`) and a full reset (`POST /_config/reset`);
- `payment_method_details.type` on charges (Bancontact through Checkout says `bancontact`);
- Checkout Sessions (payment and setup mode, `price_data` line items) with a hosted test
  page at `/_checkout/{id}` and the `checkout.session.*` events.
"""

from __future__ import annotations

import asyncio
import html
import os
import socket
import sys
import threading

from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Event,
    PaymentIntent,
    PaymentMethod,
    SetupIntent,
    StripeObject,
    schedule_webhook,
    store,
    try_convert_to_bool,
    try_convert_to_int,
)

# ---- no persistence ---------------------------------------------------------------------

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None
store.clear()


# ---- parameters localstripe refuses ("Unexpected ...") but Stripe takes -----------------


def tolerate(cls, echoed=(), dropped=()):
    """Accept these parameters: `echoed` ones come back on the object, `dropped` vanish."""
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        kept = {name: kwargs.pop(name, None) for name in echoed}
        for name in dropped:
            kwargs.pop(name, None)
        original(self, *args, **kwargs)
        for name, value in kept.items():
            setattr(self, name, value)

    cls.__init__ = __init__


tolerate(PaymentIntent,
         echoed=("description", "setup_future_usage", "receipt_email",
                 "statement_descriptor", "statement_descriptor_suffix"),
         dropped=("return_url", "mandate_data"))
tolerate(resources.Refund, echoed=("reason",))


# ---- how a charge was paid (`payment_method_details`, which localstripe leaves out) -------

charge_init = resources.Charge.__init__


def charge_with_method_details(self, *args, **kwargs):
    charge_init(self, *args, **kwargs)
    method = PaymentMethod._api_retrieve(self.payment_method)
    self.payment_method_details = {"type": method.type}


resources.Charge.__init__ = charge_with_method_details


# ---- listing a customer's payment methods of any type ------------------------------------
# localstripe lists only `type=card`; Stripe lists every type, or all when `type` is absent.


def list_payment_methods(cls, url, customer=None, type=None, limit=None,
                         starting_after=None):
    if not isinstance(customer, str) or not customer.startswith("cus_"):
        raise UserError(400, "Missing required param: customer.", {"param": "customer"})
    Customer._api_retrieve(customer)  # 404 when unknown
    found = StripeObject._api_list_all.__func__(cls, url, limit=limit,
                                                starting_after=starting_after)
    found._list = [pm for pm in found._list
                   if pm.customer == customer and type in (None, pm.type)]
    return found


PaymentMethod._api_list_all = classmethod(list_payment_methods)


# ---- off-session authentication ------------------------------------------------------------
# Off-session, Stripe cannot ask for authentication: the confirmation fails with a 402
# `authentication_required` and the PaymentIntent needs a new payment method (the customer
# must come back). localstripe instead leaves it `requires_action`.

create_payment_intent = PaymentIntent._api_create.__func__


def create_payment_intent_off_session(cls, confirm=None, off_session=None, **data):
    obj = create_payment_intent(cls, confirm=confirm, off_session=off_session, **data)
    if try_convert_to_bool(off_session) and obj.status == "requires_action":
        obj.next_action = None
        obj.payment_method = None
        raise UserError(402, "This payment required an authentication action to complete, "
                        "but `off_session` was set to true.",
                        {"code": "authentication_required",
                         "decline_code": "authentication_required",
                         "payment_intent": {"id": obj.id, "status": obj.status}})
    return obj


PaymentIntent._api_create = classmethod(create_payment_intent_off_session)


# ---- SEPA debits take time ---------------------------------------------------------------
# At Stripe the PaymentIntent is `processing` until the bank answers (days). localstripe
# marks the charge succeeded at once and only sends the event 0.5 s later; here it stays
# `processing` for those 0.5 s too (a failing IBAN already behaved so).

initialize_charge = resources.Charge._initialize_charge


def initialize_charge_sepa_later(self, *args, **kwargs):
    initialize_charge(self, *args, **kwargs)
    if self._authorized and self.captured and self._is_async_payment_method():
        self.status = "pending"


resources.Charge._initialize_charge = initialize_charge_sepa_later


# ---- refunds within the charge, with charge.refunded ---------------------------------------

refund_init = resources.Refund.__init__


def refund_within_charge(self, charge=None, payment_intent=None, amount=None, **kwargs):
    charge_obj = None
    if payment_intent is not None:
        charge_obj = PaymentIntent._api_retrieve(payment_intent).latest_charge
    elif charge is not None:
        charge_obj = resources.Charge._api_retrieve(charge)
    if charge_obj is not None and charge_obj.status == "succeeded":
        left = charge_obj.amount - charge_obj.amount_refunded
        wanted = try_convert_to_int(amount) if amount is not None else left
        if left <= 0:
            raise UserError(400, f"Charge {charge_obj.id} has already been refunded.",
                            {"code": "charge_already_refunded"})
        if isinstance(wanted, int) and wanted > left:
            raise UserError(400, f"Refund amount ({wanted}) is greater than unrefunded "
                            f"amount on charge ({left})",
                            {"code": "amount_too_large", "param": "amount"})
        amount = wanted
    refund_init(self, charge=charge, payment_intent=payment_intent, amount=amount, **kwargs)
    if charge_obj is not None:
        schedule_webhook(Event("charge.refunded", charge_obj))


resources.Refund.__init__ = refund_within_charge


# ---- Checkout Sessions (localstripe has none) ---------------------------------------------

CHECKOUT_METHODS = ("card", "bancontact", "sepa_debit")
TEST_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}
DECLINED_CARD = {**TEST_CARD, "number": "4000000000000341"}
TEST_IBAN = "BE71096123456769"


class CheckoutSession(StripeObject):
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(self, mode=None, success_url=None, cancel_url=None, line_items=None,
                 customer=None, customer_email=None, customer_creation=None,
                 payment_method_types=None, client_reference_id=None, metadata=None,
                 locale=None, currency=None, payment_intent_data=None,
                 setup_intent_data=None, expires_at=None, **kwargs):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys())
                            + " (not in this Checkout stand-in)")
        if mode not in ("payment", "setup"):
            raise UserError(400, "Only mode=payment and mode=setup are supported here.",
                            {"param": "mode"})
        if not success_url:
            raise UserError(400, "Missing required param: success_url.",
                            {"param": "success_url"})
        payment_method_types = payment_method_types or ["card"]
        if any(m not in CHECKOUT_METHODS for m in payment_method_types):
            raise UserError(400, f"payment_method_types: only {CHECKOUT_METHODS} here.",
                            {"param": "payment_method_types"})
        amount_total = 0
        if mode == "payment":
            if not line_items:
                raise UserError(400, "Missing required param: line_items.",
                                {"param": "line_items"})
            for item in line_items:
                if "price" in item:
                    raise UserError(400, "Prices are not in this stand-in: use price_data.",
                                    {"param": "line_items[][price]"})
                data = item.get("price_data") or {}
                unit = try_convert_to_int(data.get("unit_amount"))
                quantity = try_convert_to_int(item.get("quantity", 1))
                if not isinstance(unit, int) or not isinstance(quantity, int) or unit < 0:
                    raise UserError(400, "Invalid line item.", {"param": "line_items"})
                amount_total += unit * quantity
                currency = data.get("currency", currency)
        if customer is not None:
            Customer._api_retrieve(customer)  # 404 when unknown

        super().__init__()
        self.mode = mode
        self.status = "open"
        self.payment_status = "unpaid" if mode == "payment" else "no_payment_required"
        self.amount_total = amount_total if mode == "payment" else None
        self.currency = currency
        self.customer = customer
        self.customer_email = customer_email
        self.client_reference_id = client_reference_id
        self.metadata = metadata or {}
        self.locale = locale
        self.payment_method_types = payment_method_types
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.expires_at = try_convert_to_int(expires_at) or self.created + 24 * 3600
        self.payment_intent = None
        self.setup_intent = None
        self.url = None  # set by the handler, which knows the server's address
        self._customer_creation = customer_creation
        self._payment_intent_data = payment_intent_data or {}
        self._setup_intent_data = setup_intent_data or {}
        self._line_items = line_items or []

    def _customer_for_payment(self):
        """The customer the payment is saved on: the given one, or a new one when Stripe
        would create one (setup mode, saving the method, or customer_creation=always)."""
        if self.customer is None and (
                self.mode == "setup" or self._customer_creation == "always"
                or self._payment_intent_data.get("setup_future_usage")):
            self.customer = Customer(email=self.customer_email).id
        return self.customer

    def _pay(self, method, outcome):
        """What the hosted page does when the customer submits it."""
        customer = self._customer_for_payment()
        if method == "card":
            pm = PaymentMethod(type="card",
                               card=dict(DECLINED_CARD if outcome == "decline" else TEST_CARD))
        else:
            # Bancontact is paid by card at Stripe, and leaves a `generated_sepa_debit`
            # PaymentMethod on the customer when it is saved; here that SEPA debit method
            # stands in for both (adapters find it among the customer's sepa_debit methods).
            pm = PaymentMethod(type="sepa_debit", sepa_debit={"iban": TEST_IBAN})
        if customer:
            PaymentMethod._api_attach(pm.id, customer=customer)
        if self.mode == "setup":
            setup = SetupIntent(customer=customer,
                                metadata=self._setup_intent_data.get("metadata"),
                                payment_method_types=[pm.type])
            SetupIntent._api_confirm(setup.id, payment_method=pm.id)
            self.setup_intent = setup.id
        else:
            data = self._payment_intent_data
            intent = PaymentIntent(amount=self.amount_total, currency=self.currency,
                                   customer=customer, payment_method=pm.id,
                                   metadata=data.get("metadata"),
                                   description=data.get("description"),
                                   setup_future_usage=data.get("setup_future_usage"),
                                   payment_method_types=[method])
            self.payment_intent = intent.id
            intent._confirm(on_failure_now=intent._report_failure)
            if method == "bancontact":
                # Bancontact is confirmed at once (only SEPA debit takes days).
                intent.latest_charge.status = "succeeded"
                intent.latest_charge.payment_method_details = {
                    "type": "bancontact", "bancontact": {"iban_last4": TEST_IBAN[-4:]}}
            self.payment_status = "paid" if intent.status == "succeeded" else "unpaid"
        self.status = "complete"
        schedule_webhook(Event("checkout.session.completed", self))

    @classmethod
    def _api_expire(cls, id, **kwargs):
        obj = cls._api_retrieve(id)
        if obj.status != "open":
            raise UserError(400, f"Only open sessions can be expired; this one is {obj.status}.")
        obj.status = "expired"
        schedule_webhook(Event("checkout.session.expired", obj))
        return obj


# A SEPA debit paid through Checkout settles later: tell the session (and its listeners).
payment_intent_succeeded = PaymentIntent._on_success


def on_success_completing_checkout(self):
    payment_intent_succeeded(self)
    for key, obj in list(store.items()):
        if (key.startswith("checkout.session:") and obj.payment_intent == self.id
                and obj.status == "complete" and obj.payment_status != "paid"):
            obj.payment_status = "paid"
            schedule_webhook(Event("checkout.session.async_payment_succeeded", obj))


PaymentIntent._on_success = on_success_completing_checkout


def page(session, error=None):
    methods = "".join(
        f'<label><input type="radio" name="method" value="{m}"{" checked" if i == 0 else ""}>'
        f" {m.replace('_', ' ').title()}</label><br>"
        for i, m in enumerate(session.payment_method_types))
    outcomes = "".join(
        f'<label><input type="radio" name="outcome" value="{value}"'
        f'{" checked" if value == "succeed" else ""}> {label}</label><br>'
        for value, label in (("succeed", "Pay"), ("decline", "Decline the card"),
                             ("cancel", "Cancel and go back")))
    amount = (f"<p>{session.currency.upper()} {session.amount_total / 100:.2f}</p>"
              if session.amount_total is not None else "<p>Save a payment method</p>")
    notice = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return web.Response(status=402 if error else 200, content_type="text/html", text=(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Stripe test checkout</title></head><body><h1>Stripe test checkout</h1>"
        f"{amount}{notice}<form method=post>"
        f"<fieldset><legend>Payment method</legend>{methods}</fieldset>"
        f"<fieldset><legend>Outcome</legend>{outcomes}</fieldset>"
        "<button type=submit>Continue</button></form></body></html>"))


async def create_checkout_session(request):
    data = await server.get_post_data(request) or {}
    data.pop("expand", None)
    session = CheckoutSession(**data)
    session.url = f"{request.scheme}://{request.host}/_checkout/{session.id}"
    return server.json_response(session._export())


async def retrieve_checkout_session(request):
    return server.json_response(CheckoutSession._api_retrieve(request.match_info["id"])._export())


async def list_checkout_sessions(request):
    data = server.unflatten_data(request.query)
    found = [obj for key, obj in store.items() if key.startswith("checkout.session:")]
    for name in ("payment_intent", "customer"):
        if name in data:
            found = [obj for obj in found if getattr(obj, name) == data[name]]
    return server.json_response({"object": "list", "url": "/v1/checkout/sessions",
                                 "has_more": False, "data": [s._export() for s in found]})


async def expire_checkout_session(request):
    return server.json_response(CheckoutSession._api_expire(request.match_info["id"])._export())


async def checkout_page(request):
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    if session.status != "open":
        return web.Response(status=410, text=f"This checkout is {session.status}.")
    return page(session)


async def checkout_submit(request):
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    if session.status != "open":
        return web.Response(status=410, text=f"This checkout is {session.status}.")
    form = await request.post()
    outcome = form.get("outcome", "succeed")
    if outcome == "cancel":
        raise web.HTTPSeeOther(session.cancel_url or session.success_url)
    method = form.get("method") or session.payment_method_types[0]
    if method not in session.payment_method_types:
        return page(session, "Choose one of the payment methods.")
    try:
        session._pay(method, outcome)
    except UserError as error:
        return page(session, error.body["error"].get("message", "Payment failed."))
    raise web.HTTPSeeOther(session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id))


# ---- idempotency and injected faults --------------------------------------------------------
# Idempotency-Key on POST, as Stripe: the same key replays the first answer (also an error
# such as a decline); the same key with other parameters is refused. Faults: the next API
# requests fail with a status, or hang (optionally after being carried out).

answers: dict[tuple[str, str], tuple[str, bytes, int, str]] = {}
in_progress: set[tuple[str, str]] = set()
faults: list[dict] = []


def stripe_error(status, kind, message):
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


@web.middleware
async def faults_and_idempotency(request, handler):
    if request.path.startswith("/_checkout/"):
        # The hosted page is for browsers: no API key (localstripe's auth would refuse it).
        try:
            return await request.match_info.handler(request)
        except UserError as error:
            return error.to_response()
    if not request.path.startswith("/v1/"):
        return await handler(request)
    fault = faults.pop(0) if faults else None
    if fault and fault["mode"] == "error":
        return stripe_error(fault["status"], "api_error", "Injected failure (test)")
    if fault and fault["mode"] == "hang" and not fault["after_processing"]:
        await asyncio.sleep(fault["seconds"])
        return stripe_error(504, "api_error", "Injected hang (test): not processed")
    response = await idempotent(request, handler)
    if fault and fault["mode"] == "hang":
        await asyncio.sleep(fault["seconds"])
    return response


async def idempotent(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    scope = (request.headers.get("Authorization", ""), key)
    if scope in in_progress:
        return stripe_error(409, "idempotency_error", "There is currently another "
                            "in-progress request using this Idempotent Key.")
    if scope in answers:
        path, first_body, status, text = answers[scope]
        if (path, first_body) != (request.path_qs, body):
            return stripe_error(400, "idempotency_error", "Keys for idempotent requests "
                                "can only be used with the same parameters they were "
                                f"first used with. Try using a key other than '{key}' if "
                                "you meant to execute a different request.")
        return web.Response(text=text, status=status, content_type="application/json",
                            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key})
    in_progress.add(scope)
    try:
        try:
            response = await handler(request)
        except UserError as error:
            response = error.to_response()
        if response.status < 500:
            answers[scope] = (request.path_qs, body, response.status, response.text)
        return response
    finally:
        in_progress.discard(scope)


async def configure_faults(request):
    data = await request.post()
    fault = {"mode": data.get("mode", "error"), "status": int(data.get("status", 500)),
             "seconds": float(data.get("seconds", 0)),
             "after_processing": data.get("after_processing") == "1"}
    faults.extend(dict(fault) for _ in range(int(data.get("count", 1))))
    return web.Response()


async def reset(request):
    # DELETE /_config/data empties the store but keeps the registered webhooks. Deliveries
    # and SEPA settlements still scheduled belong to the previous test: drop them.
    for task in asyncio.all_tasks():
        if task.get_coro().__name__ in ("_send_webhook", "callback"):
            task.cancel()
    store.clear()
    webhooks._webhooks.clear()
    answers.clear()
    faults.clear()
    return web.Response()


def exit_with_parent():
    # The parent holds our stdin open; EOF means it has gone (even after SIGKILL).
    sys.stdin.read()
    os._exit(0)


def main():
    app = server.app
    app.middlewares.insert(0, faults_and_idempotency)
    app.router.add_post("/_config/reset", reset)
    app.router.add_post("/_config/faults", configure_faults)
    app.router.add_post("/v1/checkout/sessions", create_checkout_session)
    app.router.add_get("/v1/checkout/sessions", list_checkout_sessions)
    app.router.add_get("/v1/checkout/sessions/{id}", retrieve_checkout_session)
    app.router.add_post("/v1/checkout/sessions/{id}/expire", expire_checkout_session)
    app.router.add_get("/_checkout/{id}", checkout_page)
    app.router.add_post("/_checkout/{id}", checkout_submit)
    threading.Thread(target=exit_with_parent, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=1)


if __name__ == "__main__":
    main()
