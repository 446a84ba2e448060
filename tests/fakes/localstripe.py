"""localstripe (PyPI, GPL: a test-only tool, never shipped) as the Stripe API for tests.

It runs in a subprocess of its own, bound to 127.0.0.1 on a port the OS picks, because:
- the `localstripe` command binds every interface and pickles its whole store to the fixed
  file /tmp/localstripe.pickle after every write (and loads it at start): two test runs at
  once would share and corrupt it. The subprocess switches that persistence off;
- its event loop and its clock stay out of the test process (webhook signatures use the
  real clock, whatever a test does to ours);
- it ends with the test session, or when the test process dies (it watches its stdin).

Usage (see tests/fakes/fixtures.py for the fixtures):

    stripe_client = localstripe.client()   # a real stripe.StripeClient pointed at it
    localstripe.register_webhook("app", receiver.url, "whsec_test")
    localstripe.reset()                     # empty store, no webhooks
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
import stripe

API_KEY = "sk_test_magazine_localstripe"

# Runs inside the subprocess (python -c). Kept as text so the subprocess imports nothing
# from this repository.
_SERVER = r"""
import asyncio, os, socket, sys, threading

from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError

# No persistence: localstripe writes /tmp/localstripe.pickle (a fixed, shared path).
resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None
resources.store.clear()


# Parameters real Stripe takes that localstripe refuses ("Unexpected ..."): accepted here,
# echoed back on the object (or dropped), so that production calls work unchanged.
def tolerate(cls, echoed=(), dropped=()):
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        kept = {name: kwargs.pop(name, None) for name in echoed}
        for name in dropped:
            kwargs.pop(name, None)
        original(self, *args, **kwargs)
        for name, value in kept.items():
            setattr(self, name, value)

    cls.__init__ = __init__


tolerate(resources.PaymentIntent,
         echoed=("description", "setup_future_usage", "receipt_email",
                 "statement_descriptor", "statement_descriptor_suffix"),
         dropped=("return_url", "mandate_data"))
tolerate(resources.Refund, echoed=("reason",))

# Off-session, Stripe cannot ask for authentication: the confirmation fails with a 402
# `authentication_required` and the PaymentIntent needs a new payment method (the customer
# must come back). localstripe instead leaves it `requires_action`.
create_payment_intent = resources.PaymentIntent._api_create.__func__


def create_payment_intent_off_session(cls, confirm=None, off_session=None, **data):
    obj = create_payment_intent(cls, confirm=confirm, off_session=off_session, **data)
    if resources.try_convert_to_bool(off_session) and obj.status == "requires_action":
        obj.next_action = None
        obj.payment_method = None
        raise UserError(402, "This payment required an authentication action to complete, "
                        "but `off_session` was set to true.",
                        {"code": "authentication_required",
                         "decline_code": "authentication_required",
                         "payment_intent": {"id": obj.id, "status": obj.status}})
    return obj


resources.PaymentIntent._api_create = classmethod(create_payment_intent_off_session)

# SEPA debits take days at Stripe: the PaymentIntent is `processing` until the bank answers.
# localstripe marks the charge succeeded at once and only sends the event 0.5 s later; here
# it stays `processing` for those 0.5 s too (a failing IBAN already behaved so).
initialize_charge = resources.Charge._initialize_charge


def initialize_charge_sepa_later(self, *args, **kwargs):
    initialize_charge(self, *args, **kwargs)
    if self._authorized and self.captured and self._is_async_payment_method():
        self.status = "pending"


resources.Charge._initialize_charge = initialize_charge_sepa_later

# Refunds beyond what is left on the charge are refused as by Stripe, and each refund
# sends charge.refunded (localstripe does neither).
refund_init = resources.Refund.__init__


def refund_within_charge(self, charge=None, payment_intent=None, amount=None, **kwargs):
    charge_obj = None
    if payment_intent is not None:
        charge_obj = resources.PaymentIntent._api_retrieve(payment_intent).latest_charge
    elif charge is not None:
        charge_obj = resources.Charge._api_retrieve(charge)
    if charge_obj is not None and charge_obj.status == "succeeded":
        left = charge_obj.amount - charge_obj.amount_refunded
        wanted = resources.try_convert_to_int(amount) if amount is not None else left
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
        resources.schedule_webhook(resources.Event("charge.refunded", charge_obj))


resources.Refund.__init__ = refund_within_charge

# Idempotency-Key on POST, as Stripe: the same key replays the first answer (also an
# error such as a decline); the same key with other parameters is refused. Plus faults
# the tests inject: the next API requests fail with a status, or hang.
answers = {}
in_progress = set()
faults = []


def stripe_error(status, kind, message):
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


@web.middleware
async def faults_and_idempotency(request, handler):
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
    resources.store.clear()
    webhooks._webhooks.clear()
    answers.clear()
    faults.clear()
    return web.Response()


server.app.middlewares.insert(0, faults_and_idempotency)
server.app.router.add_post("/_config/reset", reset)
server.app.router.add_post("/_config/faults", configure_faults)


def exit_with_parent():
    # The parent holds our stdin open; EOF means it has gone (even after SIGKILL).
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_with_parent, daemon=True).start()

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(server.app, sock=sock, print=None, access_log=None)
"""


class LocalStripe:
    """A running localstripe: its base URL, an SDK client for it, and test controls."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "localstripe.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            cwd=workdir,
            env={**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        try:
            port = self._read_port(timeout=30)
            self.url = f"http://127.0.0.1:{port}"
            self._wait_until_answering(timeout=30)
        except BaseException:
            self.stop()
            raise

    def _read_port(self, timeout: float) -> int:
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        # readline blocks; the server prints its port first thing, or dies (EOF).
        while not line and time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line and self._process.poll() is not None:
                break
        if not line.strip().isdigit():
            raise RuntimeError(f"localstripe did not start; see {self.log_path}:\n"
                               + self.log_path.read_text(errors="replace")[-2000:])
        return int(line)

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = requests.get(f"{self.url}/v1/customers", timeout=2,
                                        auth=(API_KEY, ""))
                if response.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"localstripe does not answer at {self.url}; "
                                   f"see {self.log_path}")
            time.sleep(0.05)

    def client(self, api_key: str = API_KEY, timeout: float | None = None,
               **options) -> stripe.StripeClient:
        """The real SDK's client pointed at this server (no retries: tests see each call;
        `timeout` in seconds for the HTTP calls, e.g. 0.5 to test a slow Stripe)."""
        options.setdefault("max_network_retries", 0)
        if timeout is not None:
            options["http_client"] = stripe.RequestsClient(timeout=timeout)
        return stripe.StripeClient(api_key, base_addresses={"api": self.url}, **options)

    def register_webhook(self, name: str, url: str, secret: str,
                         events: list[str] | None = None) -> None:
        """Deliver every event (or only `events`) to `url`, signed with `secret`.

        Events arrive about 1 s after the call that caused them, signed with the real
        clock (a frozen clock in the receiver fails Stripe's 300 s tolerance)."""
        data: dict[str, object] = {"url": url, "secret": secret}
        if events is not None:
            data["events[]"] = events
        response = requests.post(f"{self.url}/_config/webhooks/{name}", data=data, timeout=5)
        response.raise_for_status()

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next `count` API requests answer `status` (a Stripe `api_error`) unprocessed."""
        self._fault(count, mode="error", status=status)

    def hang_next(self, count: int = 1, seconds: float = 3.0,
                  after_processing: bool = False) -> None:
        """The next `count` API requests answer only after `seconds` (past the client's
        timeout). With `after_processing`, the request is carried out first: the charge
        happens but the caller never hears of it (the case idempotency keys exist for)."""
        self._fault(count, mode="hang", seconds=seconds,
                    after_processing="1" if after_processing else "0")

    def _fault(self, count: int, **fault) -> None:
        requests.post(f"{self.url}/_config/faults", data={"count": count, **fault},
                      timeout=5).raise_for_status()

    def reset(self) -> None:
        """Forget every object, registered webhook, idempotency key and pending fault."""
        requests.post(f"{self.url}/_config/reset", timeout=5).raise_for_status()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
