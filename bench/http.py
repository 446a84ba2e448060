"""account_page and webhooks: requests per second under gunicorn (2 sync workers) with a
load generator — `wrk` when it is installed (Debian: `apt-get install wrk`), else a Python
one — against a hello-world Flask app (bench/hello.py) under the same gunicorn settings,
measured in the same run.

- account_page: a logged-in subscriber's `GET /account` (cookie from a real login).
- webhooks: `POST /webhooks/stripe` with distinct events signed with STRIPE_WEBHOOK_SECRET
  (`payment_intent.succeeded` naming paid Stripe payments of the generated data); the app
  applies each from the signed event (localstripe, its own process, runs for what an event
  lacks, as in production: these events lack nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from bench.common import ROOT, BenchResult, free_port, wait_for_port
from bench.generate import PASSWORD, working_copy

ACCOUNT_GOAL = 0.35
WEBHOOK_GOAL = 0.50
WORKERS = 2
CONNECTIONS = 16
WEBHOOK_SECRET = "whsec_bench"
EVENTS = 20_000


def duration() -> int:
    return int(os.environ.get("BENCH_HTTP_SECONDS", "10"))


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`gunicorn -w 2` serving `app` on a free loopback port; yields its base URL."""
    port = free_port()
    environ = dict(os.environ)
    environ.update(env or {})
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "--timeout", "120", app],
        cwd=ROOT, env=environ, stdout=log, stderr=log)
    try:
        wait_for_port(port)
        _warm(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _warm(base: str, timeout: float = 120) -> None:
    """Wait until both workers answer (they import the app after the port is bound)."""
    deadline = time.monotonic() + timeout
    answered = 0
    while answered < 4 * WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} does not answer")
        try:
            connection = http.client.HTTPConnection(base.split("//")[1], timeout=60)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            answered += 1
        except OSError:
            time.sleep(0.2)


# ---------------------------------------------------------------- load generators

def load(url: str, *, seconds: int, headers: dict[str, str] | None = None,
         requests: list[tuple[str, str, dict[str, str], bytes]] | None = None) -> dict:
    """Requests per second (and errors) for `url` (GET) or the given requests in turn."""
    if shutil.which("wrk"):
        return _wrk(url, seconds=seconds, headers=headers or {}, requests=requests)
    return _python_load(url, seconds=seconds, headers=headers or {}, requests=requests)


def _lua_string(data: str | bytes) -> str:
    if isinstance(data, bytes):
        data = data.decode()
    return json.dumps(data)  # a JSON string of ASCII is a valid Lua string


def _wrk(url: str, *, seconds: int, headers: dict[str, str], requests) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    script = None
    lua = ["done = function(summary, latency, requests)",
           '  io.write(string.format("JSON {\\"errors\\": %d, \\"non2xx\\": %d}\\n",',
           "    summary.errors.connect + summary.errors.read + summary.errors.write"
           " + summary.errors.timeout, summary.errors.status))",
           "end"]
    if requests:
        lua += ["local requests = {"]
        for method, path, request_headers, body in requests:
            fields = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}"
                               for k, v in request_headers.items())
            lua.append(f"  wrk.format({_lua_string(method)}, {_lua_string(path)}, "
                       f"{{{fields}}}, {_lua_string(body)}),")
        lua += ["}", "local counter = 0",
                "request = function()",
                "  counter = counter + 1",
                "  return requests[(counter % #requests) + 1]",
                "end",
                # Each thread starts at another place in the list.
                "setup = function(thread) thread:set('offset', math.random(#requests)) end",
                "init = function(args) counter = offset or 0 end"]
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    script.write("\n".join(lua) + "\n")
    script.close()
    command += ["-s", script.name, url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              timeout=seconds + 120)
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    counts = json.loads(re.search(r"JSON (\{.*\})", done.stdout).group(1))
    return {"rps": rate, "errors": counts["errors"], "non2xx": counts["non2xx"],
            "generator": "wrk"}


def _python_load(url: str, *, seconds: int, headers: dict[str, str], requests) -> dict:
    """A plain keep-alive load generator: CONNECTIONS threads, each with one connection."""
    target = http.client.urlsplit(url)
    counts = {"done": 0, "errors": 0, "non2xx": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    jobs = requests or [("GET", target.path or "/", {}, b"")]

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        index = offset
        done = errors = non2xx = 0
        while time.monotonic() < deadline:
            method, path, extra, body = jobs[index % len(jobs)]
            index += 1
            try:
                connection.request(method, path, body=body or None,
                                   headers={**headers, **extra})
                answer = connection.getresponse()
                answer.read()
                done += 1
                non2xx += not 200 <= answer.status < 300
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port,
                                                        timeout=30)
        with lock:
            counts["done"] += done
            counts["errors"] += errors
            counts["non2xx"] += non2xx

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i * 997,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": counts["done"] / (time.monotonic() - started), "errors": counts["errors"],
            "non2xx": counts["non2xx"], "generator": "python"}


# ---------------------------------------------------------------- our app's environment

def app_env(database_url: str, **extra: str) -> dict[str, str]:
    environ = {
        "APP_ENV": "production", "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-not-for-production", "BASE_URL": "http://127.0.0.1",
        "MAIL_URL": "", "PASSWORD_TIME_COST": "1", "PASSWORD_MEMORY_COST": "1024",
        "STRIPE_SECRET_KEY": "", "MOLLIE_API_KEY": "",
    }
    environ.update(extra)
    return environ


def login_cookie(base: str, email: str) -> str:
    """Log in through the form (CSRF token included); the session cookie header."""
    connection = http.client.HTTPConnection(base.split("//")[1], timeout=60)
    connection.request("GET", "/login")
    answer = connection.getresponse()
    page = answer.read().decode()
    cookies = {}

    def keep(response) -> None:
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";")[0]

    keep(answer)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    from urllib.parse import urlencode

    body = urlencode({"email": email, "password": PASSWORD,
                      "csrf_token": token.group(1) if token else ""})
    connection.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    answer = connection.getresponse()
    answer.read()
    keep(answer)
    if answer.status not in (302, 303):
        raise RuntimeError(f"login as {email} failed: {answer.status}")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _check(base: str, path: str, headers: dict[str, str], expect: int = 200) -> None:
    connection = http.client.HTTPConnection(base.split("//")[1], timeout=60)
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != expect:
        raise RuntimeError(f"GET {path} answered {answer.status}, expected {expect}")


def hello_rate(path: str = "/", requests=None) -> float:
    """Hello-world's rate for `GET /`, or for the given requests (the same load generator
    script as ours: wrk's per-request Lua and the bodies cost the same on both sides)."""
    with gunicorn("bench.hello:app") as base:
        return load(base + path, seconds=duration(), requests=requests)["rps"]


def _around(measure, floor=hello_rate) -> tuple[dict, float]:
    """Ours between two floor runs (the machine is shared: their mean is the floor)."""
    before = floor()
    ours = measure()
    after = floor()
    return ours, (before + after) / 2


# ---------------------------------------------------------------- account_page

def account_page(url: str, database: str) -> BenchResult:
    copy = working_copy(url, "http")

    def measure() -> dict:
        with gunicorn("wsgi:app", app_env(copy)) as base:
            cookie = login_cookie(base, "lezer0@bench.example")
            _check(base, "/account", {"Cookie": cookie})
            return load(base + "/account", seconds=duration(), headers={"Cookie": cookie})

    ours, floor = _around(measure)
    share = ours["rps"] / floor
    return BenchResult(
        "account_page", database, ours["rps"], floor, "req/s",
        f"≥ {ACCOUNT_GOAL:.0%} of floor", share >= ACCOUNT_GOAL and not ours["errors"]
        and not ours["non2xx"], ratio=share,
        extra={"errors": ours["errors"], "non2xx": ours["non2xx"],
               "generator": ours["generator"]})


# ---------------------------------------------------------------- webhooks

def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_requests(url: str, count: int) -> list[tuple[str, str, dict[str, str], bytes]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT id, amount_cents, intent_ref FROM payments "
            "WHERE provider = 'stripe' AND state = 'paid' ORDER BY id LIMIT :n"),
            {"n": count}).all()
    engine.dispose()
    now = int(time.time())
    requests = []
    for number, (payment_id, amount, intent) in enumerate(rows):
        body = json.dumps({
            "id": f"evt_bench_{number}", "object": "event", "api_version": "2024-06-20",
            "created": now, "livemode": False, "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent or f"pi_{payment_id}", "object": "payment_intent",
                                "amount": amount, "currency": "eur", "status": "succeeded",
                                "metadata": {"payment_id": str(payment_id)}}},
        }, separators=(",", ":")).encode()
        requests.append(("POST", "/webhooks/stripe", {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET, now)}, body))
    return requests


def webhooks(url: str, database: str) -> BenchResult:
    from tests.fakes.localstripe import API_KEY, LocalStripe

    copy = working_copy(url, "http")
    workdir = Path(tempfile.mkdtemp(prefix="bench-localstripe-"))
    stripe = LocalStripe(workdir)
    try:
        requests = webhook_requests(copy, EVENTS)
        env = app_env(copy, STRIPE_SECRET_KEY=API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      STRIPE_API_BASE=stripe.url)

        def measure() -> dict:
            with gunicorn("wsgi:app", env) as base:
                return load(base + "/webhooks/stripe", seconds=duration(), requests=requests)

        # The floor: hello-world answering the very same signed POSTs (body read, nothing
        # checked), so only our handling differs; `GET /` is measured too, for reference.
        ours, floor = _around(measure, lambda: hello_rate("/webhooks/stripe", requests))
        get_floor = hello_rate()
    finally:
        stripe.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    share = ours["rps"] / floor
    return BenchResult(
        "webhooks", database, ours["rps"], floor, "req/s",
        f"≥ {WEBHOOK_GOAL:.0%} of floor", share >= WEBHOOK_GOAL and not ours["errors"]
        and not ours["non2xx"], ratio=share,
        extra={"errors": ours["errors"], "non2xx": ours["non2xx"], "events": len(requests),
               "generator": ours["generator"], "hello_get_rps": round(get_floor),
               "share_of_hello_get": round(ours["rps"] / get_floor, 3)})
