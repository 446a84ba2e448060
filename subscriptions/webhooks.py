"""`POST /webhooks/stripe` and `POST /webhooks/mollie` (contract routes).

Exempt from CSRF (providers post without our token) and from nothing else. Stripe's body is
trusted only after its signature checks out with STRIPE_WEBHOOK_SECRET, and then applied
from the event's own object where that says enough (`StripeProvider.snapshot_of_event`;
else the payment is re-read); Mollie's body is
trusted for nothing but the payment id: the payment is re-fetched from Mollie's API. Each
notification is recorded once (ProviderEvent) and applied by
`payments.apply_provider_payment` under the row lock, so a duplicate, a late or an
out-of-order notification changes nothing twice.

Answers: 200 when handled (also for payments we do not know: a provider must not learn
what exists), 400 for a bad signature, 503 when the provider could not be asked back (it
sends the notification again later, and the reconcile job catches what is lost).
"""

from __future__ import annotations

import collections
import logging
import re

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, request

from magazine import csrf
from magazine.clock import now_utc
from magazine.db import DriverStatement, autocommit_driver_connection, db
from subscriptions import payments
from subscriptions.models import Payment
from subscriptions.providers import get_provider
from subscriptions.providers.base import ProviderMoney, ProviderRefused, ProviderUnavailable

log = logging.getLogger(__name__)

bp = Blueprint("payment_webhooks", __name__, url_prefix="/webhooks")

MOLLIE_PAYMENT_ID = re.compile(r"tr_[A-Za-z0-9]{1,64}")


def _plain(text: str, status: int):
    return text, status, {"Content-Type": "text/plain; charset=utf-8"}


@bp.post("/stripe")
@csrf.exempt
def stripe():
    provider = get_provider("stripe")
    if not provider.is_available(current_app):
        abort(404)
    try:
        event = provider.verify_event(request.get_data(),
                                      request.headers.get("Stripe-Signature", ""))
    except ValueError:
        log.warning("stripe webhook with a bad or missing signature refused")
        return _plain("bad signature", 400)
    try:
        result = _record_when_nothing_changes(provider, event)
        if result is None:
            result = _handle_stripe_event(provider, event)
            db.session.commit()
    except ProviderUnavailable as error:
        db.session.rollback()
        log.warning("stripe webhook %s: %s", event.id, error)
        return _plain("try again later", 503)
    except ProviderRefused as error:
        # Stripe does not know what the event names (another account's object?): asking
        # again would not help, so the event is not retried.
        db.session.rollback()
        log.warning("stripe webhook %s refused on re-read: %s", event.id, error)
        return _plain("ignored", 200)
    return _plain(result, 200)


# What an event is compared with: a plain row (loading the whole Payment object cost more
# CPU than the query).
_PAYMENT_ROW = sa.select(
    *(Payment.__table__.c[name] for name in ("id", "provider", "state", "method", "intent_ref",
                                             "save_method", "last_error"))
).where(Payment.__table__.c.id == sa.bindparam("payment_id"))
_PAYMENT_ROW_ON_DRIVER = DriverStatement(_PAYMENT_ROW)
_RECORD_EVENT_ON_DRIVER: dict[str, DriverStatement] = {}
PaymentRow = collections.namedtuple("PaymentRow", _PAYMENT_ROW_ON_DRIVER.columns)


def _record_when_nothing_changes(provider, event) -> str | None:
    """The common repeat — a `succeeded` for a payment already paid, a second report of the
    same state — recorded with two prebuilt statements run on the driver (no ORM session,
    no SQLAlchemy connection); None when the event may change something (then
    `_handle_stripe_event` takes it, in the session, from the start).

    The payment is read before the event is recorded, and the insert commits at once (on
    SQLite it holds the database's write lock for no longer than itself). Reading
    without a lock is safe because `changes_nothing` holds whatever a concurrent writer did
    since (see there); the event is recorded once either way (unique key)."""
    payment_id = provider.payment_id_in_event(event)
    if payment_id is None or event.type.startswith("charge.dispute."):
        return None
    dialect = db.engine.dialect
    # Each statement on its own (the insert commits itself): on PostgreSQL two round trips,
    # where BEGIN, the two statements and COMMIT took four.
    with autocommit_driver_connection(db.engine) as connection:
        found = _PAYMENT_ROW_ON_DRIVER.rows(connection, dialect, {"payment_id": payment_id})
        payment = PaymentRow(*found[0]) if found else None
        if payment is None or payment.provider != "stripe":
            return None
        snapshot = provider.snapshot_of_event(event, payment)
        if snapshot is None or not payments.changes_nothing(payment, snapshot):
            return None
        record = _RECORD_EVENT_ON_DRIVER.get(dialect.name)
        if record is None:
            record = _RECORD_EVENT_ON_DRIVER[dialect.name] = DriverStatement(
                payments.record_event_statement(dialect.name, durable=False))
        recorded = record.rows(connection, dialect, {
            "provider": "stripe", "event_ref": event.id[:160], "kind": event.type[:80],
            "payment_id": payment_id, "received_at": now_utc()})
    return "applied" if recorded else "duplicate"


def _stripe_payment_id(provider, event) -> int | None:
    """Our payment for an event: the metadata on its object, else the payment intent it
    names, found in our database (asked at Stripe only for an intent we do not know)."""
    payment_id = provider.payment_id_in_event(event)
    if payment_id is not None:
        return payment_id
    intent_id = provider.intent_of_event(event)
    if intent_id:
        payment_id = db.session.scalar(sa.select(Payment.id).where(
            Payment.intent_ref == intent_id, Payment.provider == "stripe").limit(1))
        if payment_id is not None:
            return payment_id
    return provider.payment_id_of_event(event)


def _handle_stripe_event(provider, event) -> str:
    payment_id = _stripe_payment_id(provider, event)
    if not payments.record_event("stripe", event.id, event.type, payment_id):
        return "duplicate"
    payment = _payment_row(payment_id) if payment_id else None
    if payment is None and event.type.startswith("checkout.session."):
        # A replacement method saved in setup mode (no payment of ours): saved once here,
        # whichever of this, the browser's return or the reconcile job comes first.
        setup = payments.setup_by_reference("stripe", event.data.object.id)
        if setup is not None:
            payments.finish_setup(setup.id)
            return "method"
    if payment is None or payment.provider != "stripe":
        return "ignored"
    if event.type.startswith("charge.dispute."):
        # Disputes are read from the verified event (the payment intent has no list of
        # them). A dispute closed as won, or its funds reinstated, reverses the chargeback.
        dispute = event.data.object
        status = getattr(dispute, "status", "") or ""
        if status.startswith("warning_"):
            # An inquiry (no money taken back yet): Stripe's dashboard shows it; it becomes
            # a dispute event of its own if the bank goes on.
            return "inquiry"
        if event.type == "charge.dispute.funds_reinstated":
            status = "funds_reinstated"
        payments.record_chargeback(payment.id, ProviderMoney(
            dispute.id, dispute.amount, status, getattr(dispute, "reason", "") or ""))
        return "chargeback"
    # The verified event's own object, when it says all the payment needs (no round trip
    # to Stripe); else the payment is re-read.
    snapshot = provider.snapshot_of_event(event, payment)
    if snapshot is not None:
        if not payments.changes_nothing(payment, snapshot):
            payments.apply_provider_payment(payment.id, snapshot)
    else:
        payments.sync_payment(db.session.get(Payment, payment.id))
    return "applied"


def _payment_row(payment_id: int):
    return db.session.execute(_PAYMENT_ROW, {"payment_id": payment_id}).first()


@bp.post("/mollie")
@csrf.exempt
def mollie():
    provider = get_provider("mollie")
    if not provider.is_available(current_app):
        abort(404)
    reference = request.form.get("id", "")
    if not MOLLIE_PAYMENT_ID.fullmatch(reference):
        return _plain("ignored", 200)
    try:
        result = _handle_mollie_notification(provider, reference)
        db.session.commit()
    except ProviderUnavailable as error:
        db.session.rollback()
        log.warning("mollie webhook %s: %s", reference, error)
        return _plain("try again later", 503)
    except ProviderRefused:
        # Mollie does not know this id (or not for our key): nothing to do.
        db.session.rollback()
        return _plain("ignored", 200)
    return _plain(result, 200)


def _handle_mollie_notification(provider, reference: str) -> str:
    metadata_payment_id, snapshot = provider.fetch_by_ref(reference)
    payment = db.session.query(Payment).filter_by(provider="mollie",
                                                  provider_ref=reference).one_or_none()
    if payment is None and metadata_payment_id:
        # A start that timed out after Mollie made the payment left us without its id: our
        # own payment id from the metadata finds it, only for a payment with no other id.
        candidate = db.session.get(Payment, metadata_payment_id)
        if candidate is not None and candidate.provider == "mollie" \
                and candidate.provider_ref in (None, reference):
            payment = candidate
    if payment is None:
        setup = payments.setup_by_reference("mollie", reference)
        if setup is not None:
            # A verification payment for a replacement method: saved, and paid back, once.
            payments.finish_setup(setup.id)
            return "method"
        return "ignored"
    reversed_count = sum(1 for c in snapshot.chargebacks
                         if c.status in payments.REVERSED_STATUSES)
    event_ref = (f"{reference}:{snapshot.state.value}:r{len(snapshot.refunds)}"
                 f":c{len(snapshot.chargebacks)}:v{reversed_count}")
    if not payments.record_event("mollie", event_ref, snapshot.state.value, payment.id):
        return "duplicate"
    if payment.provider_ref is None:
        payment.provider_ref = reference
    payments.apply_provider_payment(payment.id, snapshot)
    return "applied"
