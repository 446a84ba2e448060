"""Sending e-invoices through a Peppol access point, and the record of each delivery.

The access point is a provider's REST API (settings `PEPPOL_AP_URL`, `PEPPOL_AP_TOKEN`);
without the URL nothing is queued or sent and the pages say so. The code talks to it only
through `PeppolSender`; `HttpAccessPoint` is the implementation for a generic access-point
API (described in the README, "Peppol e-invoices"), and the tests run it against the
stand-in in tests/fakes/peppol_ap.py.

Once only: every invoice or credit note has at most one `PeppolDelivery` row (unique), and
every attempt sends the same idempotency key, derived from the document's number. A row is
claimed (`sending`, committed) before the call, so a second process skips it; a process that
dies mid-call leaves a claim that `release_orphans` hands back, and the retry with the same
key gets the access point's first answer instead of a second delivery.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import requests
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask, current_app

from magazine import audit
from magazine.clock import now_utc
from magazine.db import db, insert_ignoring_duplicates, write_transaction
from magazine.jobruns import claim_next, owner_id, release_orphans
from magazine.jobs import Progress, register_job
from magazine.models import User
from subscriptions import peppol
from subscriptions.models import CreditNote, Invoice
from subscriptions.peppol_models import DeliveryStatus, PeppolDelivery

log = logging.getLogger(__name__)

# Minutes before the next attempt after the n-th failed one (then it stays at the last).
RETRY_MINUTES = (5, 15, 60, 180, 720, 1440)


class AccessPointError(Exception):
    """The access point did not take the document; the message is for the log and the
    back office."""


class AccessPointUnavailable(AccessPointError):
    """Down, slow, or answering 5xx/408/429: try again later with the same key."""


class AccessPointRefused(AccessPointError):
    """The access point understood and said no (4xx: a bad document, an unknown receiver,
    wrong credentials): trying again changes nothing until someone acts."""


@dataclass(frozen=True)
class Envelope:
    """What an access point needs to route one document on the Peppol network."""

    idempotency_key: str
    sender_id: str      # "0208:0403019261"
    receiver_id: str
    document_type_id: str
    process_id: str
    ubl: bytes


@dataclass(frozen=True)
class Receipt:
    message_id: str


class PeppolSender(Protocol):
    def send(self, envelope: Envelope) -> Receipt:
        """Hand one document to the access point; raises AccessPointUnavailable or
        AccessPointRefused."""


class HttpAccessPoint:
    """A generic access-point REST API: `POST {url}/outbound-documents` with a bearer token
    and an `Idempotency-Key` header; JSON body with the Peppol participant ids of sender and
    receiver, the document type and process ids, and the UBL in base64. It answers 200/201
    with `{"id": "<message id>"}` (the same id again for a key it has seen)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def send(self, envelope: Envelope) -> Receipt:
        body = {
            "sender": envelope.sender_id,
            "receiver": envelope.receiver_id,
            "documentTypeId": envelope.document_type_id,
            "processId": envelope.process_id,
            "document": base64.b64encode(envelope.ubl).decode("ascii"),
        }
        headers = {"Idempotency-Key": envelope.idempotency_key, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = requests.post(f"{self.url}/outbound-documents", json=body,
                                     headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            raise AccessPointUnavailable(f"access point unreachable: {error}") from error
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise AccessPointUnavailable(f"access point answered {response.status_code}")
        if response.status_code >= 400:
            raise AccessPointRefused(
                f"access point refused ({response.status_code}): {_detail(response)}")
        try:
            message_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as error:
            raise AccessPointUnavailable("access point answer without a message id") from error
        return Receipt(message_id=message_id)


def _detail(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("detail") or data.get("message") or data.get("error") or data)[:200]
    return str(data)[:200]


def is_configured(app: Flask | None = None) -> bool:
    return bool((app or current_app).config.get("PEPPOL_AP_URL"))


def get_sender(app: Flask | None = None) -> PeppolSender | None:
    config = (app or current_app).config
    if not config.get("PEPPOL_AP_URL"):
        return None
    return HttpAccessPoint(config["PEPPOL_AP_URL"], config.get("PEPPOL_AP_TOKEN", ""),
                           config["PROVIDER_TIMEOUT_SECONDS"])


# ---------------------------------------------------------------- the delivery records

def idempotency_key(doc: Invoice | CreditNote) -> str:
    prefix = "credit-note" if isinstance(doc, CreditNote) else "invoice"
    return f"peppol-{prefix}-{doc.number}"


def delivery_of(doc: Invoice | CreditNote) -> PeppolDelivery | None:
    column = (PeppolDelivery.credit_note_id if isinstance(doc, CreditNote)
              else PeppolDelivery.invoice_id)
    return db.session.scalar(sa.select(PeppolDelivery).where(column == doc.id))


def queue_delivery(doc: Invoice | CreditNote, *, actor: User | None = None
                   ) -> PeppolDelivery | None:
    """Queue a document for the access point (once: a second call finds the first row).
    None for a document that does not go through Peppol (no Belgian VAT number)."""
    if not peppol.is_peppol_document(doc):
        return None
    values = {"idempotency_key": idempotency_key(doc), "status": DeliveryStatus.PENDING,
              "attempts": 0, "next_attempt_at": now_utc(), "last_error": "",
              "created_at": now_utc()}
    if isinstance(doc, CreditNote):
        values["credit_note_id"] = doc.id
    else:
        values["invoice_id"] = doc.id
    inserted = db.session.execute(
        insert_ignoring_duplicates(PeppolDelivery).values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(PeppolDelivery.id)
    ).first()
    if inserted is not None:
        audit.record("peppol.queued", peppol.document_kind(doc), doc.id, actor=actor,
                     number=doc.number)
    return delivery_of(doc)


def queue_if_configured(doc: Invoice | CreditNote) -> None:
    """Called when a document is issued: with an access point, an organisation's invoice
    or credit note is queued for Peppol in the same transaction."""
    if is_configured():
        queue_delivery(doc)


def retry_delivery(delivery: PeppolDelivery, *, actor: User) -> bool:
    """The coordinator sends a failed delivery again (attempts start over; same key, so a
    document the access point did take is not delivered twice). False when it was not
    failed (already delivered, or on its way)."""
    changed = db.session.execute(
        sa.update(PeppolDelivery)
        .where(PeppolDelivery.id == delivery.id, PeppolDelivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        audit.record("peppol.retry", "peppol_delivery", delivery.id, actor=actor,
                     number=delivery.document.number)
    db.session.expire(delivery)
    return changed == 1


def deliveries_overview(limit: int = 200) -> list[PeppolDelivery]:
    return list(db.session.scalars(
        sa.select(PeppolDelivery).order_by(PeppolDelivery.created_at.desc(),
                                           PeppolDelivery.id.desc()).limit(limit)))


def organisation_documents(limit: int = 200) -> list[Invoice | CreditNote]:
    """The latest invoices and credit notes with a VAT number (newest first), to show with
    their e-invoice and delivery."""
    invoices = db.session.scalars(
        sa.select(Invoice).where(Invoice.buyer_vat_number != "")
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc()).limit(limit)).all()
    notes = db.session.scalars(
        sa.select(CreditNote).where(CreditNote.buyer_vat_number != "")
        .order_by(CreditNote.issued_at.desc(), CreditNote.id.desc()).limit(limit)).all()
    documents = [d for d in [*invoices, *notes] if peppol.is_peppol_document(d)]
    documents.sort(key=lambda d: (d.issued_at, d.number), reverse=True)
    return documents[:limit]


def deliveries_by_document(docs: list[Invoice | CreditNote]) -> dict[tuple[str, int],
                                                                        PeppolDelivery]:
    invoice_ids = [d.id for d in docs if isinstance(d, Invoice)]
    note_ids = [d.id for d in docs if isinstance(d, CreditNote)]
    rows = db.session.scalars(sa.select(PeppolDelivery).where(sa.or_(
        PeppolDelivery.invoice_id.in_(invoice_ids),
        PeppolDelivery.credit_note_id.in_(note_ids)))).all() if docs else []
    result = {}
    for row in rows:
        if row.invoice_id is not None:
            result[("invoice", row.invoice_id)] = row
        else:
            result[("credit_note", row.credit_note_id)] = row
    return result


# ---------------------------------------------------------------- sending

@dataclass
class SendResult:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0

    def summary(self) -> str:
        return (f"peppol-send: {self.delivered} delivered, {self.retrying} to retry, "
                f"{self.failed} failed, {self.released} orphaned claims released")


def _next_attempt(attempts: int, now: datetime) -> datetime:
    minutes = RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1] if attempts else 0
    return now + timedelta(minutes=minutes)


def envelope_for(doc: Invoice | CreditNote) -> Envelope:
    config = current_app.config
    seller = peppol.enterprise_number(config["PUBLISHER_VAT"])
    buyer = peppol.enterprise_number(doc.buyer_vat_number)
    return Envelope(
        idempotency_key=idempotency_key(doc),
        sender_id=f"{peppol.ENTERPRISE_SCHEME}:{seller}",
        receiver_id=f"{peppol.ENTERPRISE_SCHEME}:{buyer}",
        document_type_id=peppol.DOCUMENT_TYPE_IDS[peppol.document_kind(doc)],
        process_id=peppol.PROCESS_ID,
        ubl=peppol.build_ubl(doc),
    )


def _finish(delivery_id: int, owner: str, **values) -> None:
    """Record an attempt's outcome, if this process still holds the claim."""
    with write_transaction():
        db.session.execute(
            sa.update(PeppolDelivery)
            .where(PeppolDelivery.id == delivery_id,
                   PeppolDelivery.status == DeliveryStatus.SENDING,
                   PeppolDelivery.claimed_by == owner)
            .values(claimed_by=None, claimed_at=None, **values)
            .execution_options(synchronize_session=False))


def send_one(delivery_id: int, sender: PeppolSender) -> DeliveryStatus:
    """One attempt for a delivery this process has claimed."""
    owner = owner_id()
    delivery = db.session.get(PeppolDelivery, delivery_id)
    now = now_utc()
    max_attempts = current_app.config["PEPPOL_MAX_ATTEMPTS"]
    try:
        receipt = sender.send(envelope_for(delivery.document))
    except AccessPointRefused as error:
        db.session.rollback()
        _finish(delivery_id, owner, status=DeliveryStatus.FAILED, last_error=str(error)[:500],
                last_attempt_at=now)
        log.warning("peppol-send: delivery %s refused: %s", delivery_id, error)
        return DeliveryStatus.FAILED
    except Exception as error:  # unavailable, or a bug building the document
        db.session.rollback()
        delivery = db.session.get(PeppolDelivery, delivery_id)
        out_of_attempts = delivery.attempts >= max_attempts
        status = DeliveryStatus.FAILED if out_of_attempts else DeliveryStatus.PENDING
        _finish(delivery_id, owner, status=status, last_error=str(error)[:500],
                last_attempt_at=now, next_attempt_at=_next_attempt(delivery.attempts, now))
        if isinstance(error, AccessPointUnavailable):
            log.warning("peppol-send: delivery %s: %s", delivery_id, error)
        else:
            log.exception("peppol-send: delivery %s failed", delivery_id)
        return status
    db.session.rollback()
    _finish(delivery_id, owner, status=DeliveryStatus.DELIVERED, last_error="",
            provider_message_id=receipt.message_id[:200], delivered_at=now_utc(),
            last_attempt_at=now)
    return DeliveryStatus.DELIVERED


def send_pending(progress: Progress | None = None, *, limit: int | None = None,
                 sender: PeppolSender | None = None) -> SendResult:
    """Send every delivery that is due, one at a time, each claimed first."""
    result = SendResult()
    sender = sender or get_sender()
    if sender is None:
        return result
    claimed = PeppolDelivery.status == DeliveryStatus.SENDING
    result.released = release_orphans(PeppolDelivery, claimed,
                                      {"status": DeliveryStatus.PENDING, "claimed_by": None,
                                       "claimed_at": None})
    now = now_utc()
    due = sa.and_(PeppolDelivery.status == DeliveryStatus.PENDING,
                  PeppolDelivery.next_attempt_at <= now)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(PeppolDelivery).where(due))
    db.session.rollback()
    if progress is not None:
        progress.start(total if limit is None else min(total, limit))
    handled = 0
    while limit is None or handled < limit:
        delivery_id = claim_next(
            PeppolDelivery, due, PeppolDelivery.next_attempt_at,
            {"status": DeliveryStatus.SENDING, "attempts": PeppolDelivery.attempts + 1})
        if delivery_id is None:
            break
        handled += 1
        status = send_one(delivery_id, sender)
        if status == DeliveryStatus.DELIVERED:
            result.delivered += 1
        elif status == DeliveryStatus.PENDING:
            result.retrying += 1
        else:
            result.failed += 1
        if progress is not None:
            progress.advance(1)
    return result


@register_job("peppol-send", IntervalTrigger(minutes=5),
              "send queued e-invoices to the Peppol access point (with retries)")
def peppol_send_job(progress: Progress) -> SendResult:
    if not is_configured():
        return SendResult()
    return send_pending(progress)
