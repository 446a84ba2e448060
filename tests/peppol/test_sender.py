"""Sending through the access point (the stand-in in tests/fakes/peppol_ap.py, over HTTP):
queued when issued, delivered once, retried after a 5xx with the same key, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from magazine.clock import shifted
from magazine.db import db
from magazine.jobs import JOBS, Progress
from subscriptions import peppol, peppol_sender, services
from subscriptions.peppol_models import DeliveryStatus, PeppolDelivery
from tests.factories import make_user
from tests.peppol.factories import BUYER_VAT, organisation_order
from tests.subscriptions.factories import make_plan, place

pytestmark = pytest.mark.usefixtures("app_context")


def deliveries() -> list[PeppolDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(PeppolDelivery).order_by(PeppolDelivery.id)))


def test_an_organisation_invoice_is_queued_and_delivered_once(with_peppol):
    order = organisation_order()
    [delivery] = deliveries()
    assert delivery.invoice_id == order.invoice.id
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.idempotency_key == f"peppol-invoice-{order.invoice.number}"

    result = peppol_sender.send_pending()
    assert (result.delivered, result.retrying, result.failed) == (1, 0, 0)
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 1 and delivery.delivered_at is not None
    [message] = with_peppol.messages
    assert delivery.provider_message_id == message.id and delivery.last_error == ""
    assert message.receiver == f"0208:{BUYER_VAT[2:]}"
    assert message.sender == "0208:0403019261"
    assert message.document_type_id == peppol.DOCUMENT_TYPE_IDS["invoice"]
    assert message.process_id == peppol.PROCESS_ID
    assert b"<cbc:ID>" + order.invoice.number.encode() + b"</cbc:ID>" in message.document
    assert with_peppol.requests[0]["key"] == delivery.idempotency_key

    # A second run has nothing to do.
    assert peppol_sender.send_pending().delivered == 0
    assert len(with_peppol.requests) == 1


def test_a_private_buyer_is_not_queued(with_peppol):
    place(make_plan(), make_user())
    assert deliveries() == []


def test_credit_note_is_queued_too(with_peppol):
    order = organisation_order()
    note = services.issue_credit_note(order.invoice, reason="Order cancelled", actor=None)
    db.session.commit()
    assert [d.credit_note_id for d in deliveries()] == [None, note.id]
    peppol_sender.send_pending()
    assert [m.document_type_id for m in with_peppol.messages] == [
        peppol.DOCUMENT_TYPE_IDS["invoice"], peppol.DOCUMENT_TYPE_IDS["credit_note"]]
    assert {d.status for d in deliveries()} == {DeliveryStatus.DELIVERED}


def test_a_5xx_is_retried_later_with_the_same_key(with_peppol):
    organisation_order()
    with_peppol.fail_next(1, status=503)
    result = peppol_sender.send_pending()
    assert (result.delivered, result.retrying) == (0, 1)
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "503" in delivery.last_error and delivery.last_attempt_at is not None
    assert delivery.next_attempt_at > delivery.last_attempt_at
    assert with_peppol.messages == []

    # Not due yet: nothing is sent.
    assert peppol_sender.send_pending().delivered == 0
    assert len(with_peppol.requests) == 1

    with shifted(timedelta(minutes=6)):
        assert peppol_sender.send_pending().delivered == 1
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    keys = [r["key"] for r in with_peppol.requests]
    assert keys == [delivery.idempotency_key] * 2
    assert len(with_peppol.messages) == 1


def test_a_lost_answer_is_not_a_second_delivery(with_peppol):
    """The access point took the document but its answer was lost (502): the retry sends
    the same key and gets the first message id back; the buyer receives it once."""
    organisation_order()
    with_peppol.lose_next_answer()
    assert peppol_sender.send_pending().retrying == 1
    with shifted(timedelta(minutes=6)):
        assert peppol_sender.send_pending().delivered == 1
    [delivery] = deliveries()
    assert len(with_peppol.messages) == 1
    assert delivery.provider_message_id == with_peppol.messages[0].id
    assert len(with_peppol.requests) == 2


def test_a_claim_left_by_a_dead_process_is_sent_again_once(with_peppol):
    organisation_order()
    [delivery] = deliveries()
    # A process claimed it, sent it and died before writing the answer down.
    db.session.execute(sa.update(PeppolDelivery).values(
        status=DeliveryStatus.SENDING, attempts=1, claimed_by="elsewhere:1",
        claimed_at=delivery.created_at - timedelta(hours=2)))
    db.session.commit()
    envelope = peppol_sender.envelope_for(delivery.document)
    peppol_sender.get_sender().send(envelope)
    assert len(with_peppol.messages) == 1

    result = peppol_sender.send_pending()
    assert result.released == 1 and result.delivered == 1
    assert len(with_peppol.messages) == 1
    assert deliveries()[0].provider_message_id == with_peppol.messages[0].id


def test_a_refusal_fails_at_once_and_the_coordinator_can_try_again(with_peppol, app,
                                                                    monkeypatch):
    organisation_order()
    monkeypatch.setitem(app.config, "PEPPOL_AP_TOKEN", "wrong")
    assert peppol_sender.send_pending().failed == 1
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.FAILED and "401" in delivery.last_error
    assert peppol_sender.send_pending().failed == 0  # stays failed

    monkeypatch.setitem(app.config, "PEPPOL_AP_TOKEN", with_peppol.token)
    coordinator = make_user()
    assert peppol_sender.retry_delivery(delivery, actor=coordinator)
    db.session.commit()
    assert not peppol_sender.retry_delivery(delivery, actor=coordinator)  # pending now
    assert peppol_sender.send_pending().delivered == 1
    assert len(with_peppol.messages) == 1


def test_out_of_attempts_is_failed(with_peppol, app, monkeypatch):
    monkeypatch.setitem(app.config, "PEPPOL_MAX_ATTEMPTS", 2)
    organisation_order()
    with_peppol.fail_next(5, status=500)
    assert peppol_sender.send_pending().retrying == 1
    with shifted(timedelta(days=1)):
        assert peppol_sender.send_pending().failed == 1
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2


def test_an_unreachable_access_point_is_retried(app, monkeypatch):
    monkeypatch.setitem(app.config, "PEPPOL_AP_URL", "http://127.0.0.1:9")  # nothing there
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 1)
    organisation_order()
    assert peppol_sender.send_pending().retrying == 1
    [delivery] = deliveries()
    assert delivery.status == DeliveryStatus.PENDING
    assert "unreachable" in delivery.last_error


def test_without_an_access_point_nothing_is_queued_or_sent(app):
    assert not peppol_sender.is_configured()
    organisation_order()
    assert deliveries() == []
    assert peppol_sender.get_sender() is None
    assert JOBS["peppol-send"].run(Progress()).summary().startswith("peppol-send: 0 delivered")


def test_the_job_sends_what_is_due(with_peppol, runner):
    organisation_order()
    result = runner.invoke(args=["jobs", "run", "peppol-send"])
    assert result.exit_code == 0, result.output
    assert len(with_peppol.messages) == 1
    assert deliveries()[0].status == DeliveryStatus.DELIVERED
