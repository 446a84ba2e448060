"""Local stand-ins for the payment providers, spoken to over real HTTP by the real SDKs.

- `tests.fakes.stripe`: localstripe (PyPI, GPL, test-only) in its own process.
- `tests.fakes.mollie`: a fake Mollie API of our own, in a thread of the test process.
- `tests.fakes.fixtures`: the pytest fixtures (registered in tests/conftest.py).

This module holds the two small pieces both use: a WSGI app served in a background thread
on a free loopback port, and a webhook receiver that records what providers post to it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class BackgroundServer:
    """Serve a WSGI app on 127.0.0.1 on a free port (chosen by the OS, so parallel test
    runs never collide) in a daemon thread, one thread per request."""

    def __init__(self, app, name: str) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=name, daemon=True
        )

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request a provider sent: the raw body (signatures cover the exact bytes)."""

    path: str
    body: bytes
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class WebhookReceiver:
    """A stand-in for our webhook endpoints: records every POST and answers 200 (or the
    status set in `respond_with`, to play an endpoint that is failing)."""

    def __init__(self) -> None:
        self._received: list[ReceivedWebhook] = []
        self._changed = threading.Condition()
        self.respond_with = 200
        self._server = BackgroundServer(self._app, "webhook-receiver").start()
        self.url = self._server.url

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        form = (
            dict(request.form)
            if request.mimetype == "application/x-www-form-urlencoded"
            else {}
        )
        hook = ReceivedWebhook(request.path, body, dict(request.headers), form)
        with self._changed:
            self._received.append(hook)
            self._changed.notify_all()
        return Response("", status=self.respond_with)(environ, start_response)

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._changed:
            return list(self._received)

    def wait_for(self, predicate=lambda hook: True, timeout: float = 10.0) -> ReceivedWebhook:
        """The first received webhook for which `predicate(hook)` holds, waiting for it."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((h for h in self._received if predicate(h)), None), timeout
            )
        if found is None:
            raise AssertionError(f"no matching webhook within {timeout} s: {self.received!r}")
        return found

    def clear(self) -> None:
        with self._changed:
            self._received.clear()
        self.respond_with = 200

    def stop(self) -> None:
        self._server.stop()
