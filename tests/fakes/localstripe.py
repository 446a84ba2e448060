"""localstripe (PyPI, GPL: a test-only tool, never shipped) as the Stripe API for tests.

It runs in a subprocess of its own (tests/fakes/localstripe_server.py, which also adds what
localstripe lacks: idempotency, Checkout Sessions, ...), bound to 127.0.0.1 on a port the
OS picks, because:
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

REPOSITORY = Path(__file__).resolve().parents[2]


class LocalStripe:
    """A running localstripe: its base URL, an SDK client for it, and test controls."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "localstripe.log"
        self._log = self.log_path.open("wb")
        pythonpath = os.pathsep.join(filter(None, [str(REPOSITORY),
                                                    os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.localstripe_server"],
            cwd=workdir,
            env={**os.environ, "TMPDIR": str(workdir), "PYTHONUNBUFFERED": "1",
                 "PYTHONPATH": pythonpath},
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
