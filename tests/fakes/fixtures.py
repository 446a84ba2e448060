"""pytest fixtures for the payment providers' stand-ins (registered in tests/conftest.py).

Each server starts once per test session on a free loopback port; the function-scoped
fixtures hand it to a test after a reset, so every test starts empty.

    def test_card_payment(localstripe):
        stripe_client = localstripe.client()          # real stripe.StripeClient
        customer = stripe_client.v1.customers.create(params={"email": "an@example.be"})

    def test_bancontact_payment(mollie_fake):
        mollie = mollie_fake.client()                 # real mollie Client, no retries
        payment = mollie.payments.create({...}, idempotency_key="order-12")
        mollie_fake.set_status(payment.id, "paid")

    def test_signed_event(localstripe, webhook_receiver):
        localstripe.register_webhook("app", webhook_receiver.url, "whsec_test")
        ...
        hook = webhook_receiver.wait_for(lambda h: b"payment_intent.succeeded" in h.body)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from tests.fakes import WebhookReceiver
from tests.fakes.localstripe import LocalStripe
from tests.fakes.mollie import FakeMollie
from tests.fakes.peppol_ap import FakeAccessPoint


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory) -> Iterator[LocalStripe]:
    """localstripe in its own process for the whole session (see tests/fakes/localstripe.py)."""
    if importlib.util.find_spec("localstripe") is None:
        pytest.skip("localstripe is missing: `pip install -e '.[dev]'`")
    server = LocalStripe(tmp_path_factory.mktemp("localstripe"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The session's localstripe, emptied: no objects, webhooks, idempotency keys or faults."""
    localstripe_server.reset()
    return localstripe_server


@pytest.fixture(scope="session")
def mollie_server() -> Iterator[FakeMollie]:
    """The fake Mollie API for the whole session (see tests/fakes/mollie.py)."""
    server = FakeMollie()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mollie_fake(mollie_server: FakeMollie) -> FakeMollie:
    """The session's fake Mollie, emptied (and with its defaults back)."""
    mollie_server.reset()
    return mollie_server


@pytest.fixture(scope="session")
def webhook_receiver_server() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def webhook_receiver(webhook_receiver_server: WebhookReceiver) -> WebhookReceiver:
    """A local HTTP endpoint that records what providers post to it (`.url`, `.wait_for`)."""
    webhook_receiver_server.clear()
    return webhook_receiver_server


@pytest.fixture(scope="session")
def peppol_ap_server() -> Iterator[FakeAccessPoint]:
    """The stand-in Peppol access point for the whole session (tests/fakes/peppol_ap.py)."""
    server = FakeAccessPoint()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def peppol_ap(peppol_ap_server: FakeAccessPoint) -> FakeAccessPoint:
    """The session's stand-in access point, emptied."""
    peppol_ap_server.reset()
    return peppol_ap_server


@pytest.fixture
def with_peppol(app, peppol_ap: FakeAccessPoint, monkeypatch) -> FakeAccessPoint:
    """The app configured to send e-invoices through the stand-in access point."""
    monkeypatch.setitem(app.config, "PEPPOL_AP_URL", peppol_ap.url)
    monkeypatch.setitem(app.config, "PEPPOL_AP_TOKEN", peppol_ap.token)
    monkeypatch.setitem(app.config, "PROVIDER_TIMEOUT_SECONDS", 2)
    return peppol_ap
