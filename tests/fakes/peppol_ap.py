"""A stand-in Peppol access point, served on a free loopback port, for
`subscriptions.peppol_sender.HttpAccessPoint`.

It speaks the generic access-point API described in the README ("Peppol e-invoices"):

- `POST /outbound-documents` with `Authorization: Bearer <token>` and an `Idempotency-Key`,
  a JSON body `{"sender", "receiver", "documentTypeId", "processId", "document"}` (the UBL
  in base64). It checks the token, the key, that the document is UBL XML of the announced
  type and that the receiver is the document's buyer endpoint (`0208:<number>`), then
  answers 201 `{"id": "msg_...", "status": "accepted"}`.
- The same key again replays the first answer (200, header `Idempotent-Replayed: true`):
  one message per key, however often it is sent.
- Errors: `{"status": int, "detail": str}`; 401 bad token, 400 no key, 422 a document it
  cannot route.

Test controls: `fail_next(n, status=503)` answers the next n requests with an error without
taking them; `lose_next_answer()` takes the next document but answers 502, as a gateway
whose upstream answer was lost; `reset()`; `messages` (documents taken, one per key) and
`requests` (every request that arrived).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
from dataclasses import dataclass, field

from lxml import etree
from werkzeug.wrappers import Request, Response

from tests.fakes import BackgroundServer

TOKEN = "peppol-test-token"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"


@dataclass
class Message:
    id: str
    idempotency_key: str
    sender: str
    receiver: str
    document_type_id: str
    process_id: str
    document: bytes


@dataclass
class FakeAccessPoint:
    token: str = TOKEN
    messages: list[Message] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[int, dict]] = {}
        self._failures: list[int] = []
        self._lose_next = False
        self._ids = itertools.count(1)
        self._server = BackgroundServer(self._wsgi, "fake-peppol-ap").start()
        self.url = self._server.url

    # ------------------------------------------------------------ controls

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self._answers.clear()
            self._failures.clear()
            self._lose_next = False
            self._ids = itertools.count(1)

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def lose_next_answer(self) -> None:
        with self._lock:
            self._lose_next = True

    def stop(self) -> None:
        self._server.stop()

    # ------------------------------------------------------------ the API

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: dict, headers: dict | None = None) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json",
                        headers=headers or {})

    def _error(self, status: int, detail: str) -> Response:
        return self._json(status, {"status": status, "detail": detail})

    def _handle(self, request: Request) -> Response:
        if request.path != "/outbound-documents":
            return self._error(404, "not found")
        if request.method != "POST":
            return self._error(405, "method not allowed")
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            self.requests.append({"key": key, "headers": dict(request.headers)})
            if self._failures:
                return self._error(self._failures.pop(0), "access point unavailable")
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return self._error(401, "bad token")
            if not key:
                return self._error(400, "an Idempotency-Key header is required")
            if key in self._answers:
                _first_status, body = self._answers[key]
                return self._json(200, body, {"Idempotent-Replayed": "true"})
            try:
                message = self._message(key, request.get_json(force=True))
            except ValueError as error:
                return self._error(422, str(error))
            self.messages.append(message)
            body = {"id": message.id, "status": "accepted"}
            self._answers[key] = (201, body)
            if self._lose_next:
                self._lose_next = False
                return self._error(502, "bad gateway")
            return self._json(201, body)

    def _message(self, key: str, data: dict) -> Message:
        for name in ("sender", "receiver", "documentTypeId", "processId", "document"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ValueError(f"{name} is required")
        try:
            document = base64.b64decode(data["document"], validate=True)
            root = etree.fromstring(document)
        except (binascii.Error, etree.XMLSyntaxError) as error:
            raise ValueError(f"document is not base64 XML: {error}") from error
        namespace, _, local = root.tag[1:].partition("}")
        if not data["documentTypeId"].startswith(f"{namespace}::{local}##"):
            raise ValueError("document type does not match the document")
        endpoint = root.find(f"{{{CAC}}}AccountingCustomerParty/{{{CAC}}}Party/"
                             f"{{{CBC}}}EndpointID")
        if endpoint is None or data["receiver"] != f"{endpoint.get('schemeID')}:{endpoint.text}":
            raise ValueError("receiver is not the document's buyer endpoint")
        return Message(id=f"msg_{next(self._ids):06d}", idempotency_key=key,
                       sender=data["sender"], receiver=data["receiver"],
                       document_type_id=data["documentTypeId"], process_id=data["processId"],
                       document=document)
