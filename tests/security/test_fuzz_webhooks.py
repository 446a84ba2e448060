"""Property-based security test of the provider webhooks: generated bodies and headers to
`/webhooks/stripe` and `/webhooks/mollie`, with a payment waiting at each provider (paid
there, not yet with us). Never a 5xx; the answer is 400 (Stripe: not signed with our secret)
or 200 (Mollie: an id Mollie does not know, or no id); and nothing is applied: no committed
write at all, both payments still open with us. Hypothesis, derandomized and bounded.

Also a check of the fuzz test's own eyes: a committed write is seen, a rolled-back one is
not."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from magazine.db import db
from magazine.models import AuditEvent
from magazine.roles import Role
from subscriptions.models import Payment
from subscriptions.states import PaymentState
from tests.factories import make_user
from tests.fakes.localstripe import API_KEY as STRIPE_KEY
from tests.fakes.mollie import API_KEY as MOLLIE_KEY
from tests.security.test_fuzz import HOSTILE, VOLATILE, CommittedWrites
from tests.subscriptions.factories import make_plan, place

SECRET = "whsec_fuzz"  # nosec B105 # the test's own webhook secret
EXAMPLES = 60
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], print_blob=False,
                         suppress_health_check=list(HealthCheck))
EVENT_TYPES = ["checkout.session.completed", "checkout.session.expired",
               "checkout.session.async_payment_succeeded", "payment_intent.succeeded",
               "payment_intent.payment_failed", "charge.refunded", "charge.dispute.created",
               "charge.dispute.closed", "setup_intent.succeeded", "customer.created", ""]


def signature(body: bytes, secret: str, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def test_committed_writes_are_seen_and_rolled_back_ones_are_not(app_context):
    writes = CommittedWrites(db.engine)
    try:
        make_user(email="seen@example.org")
        assert "users" in writes.take()
        db.session.execute(sa.update(AuditEvent).values(action="x"))  # no rows: no write
        db.session.add(AuditEvent(action="fuzz", object_type="t", object_id="1"))
        db.session.flush()
        db.session.rollback()
        assert writes.take() == []
        assert "user_sessions" in VOLATILE
    finally:
        writes.close()


def test_generated_webhooks_never_error_nor_apply_anything(app, localstripe, mollie_fake,
                                                           monkeypatch):
    for key, value in {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": localstripe.url,
                       "STRIPE_WEBHOOK_SECRET": SECRET, "MOLLIE_API_KEY": MOLLIE_KEY,
                       "MOLLIE_API_ENDPOINT": mollie_fake.url,
                       "PROVIDER_TIMEOUT_SECONDS": 2}.items():
        monkeypatch.setitem(app.config, key, value)
    with app.app_context():
        plan = make_plan()
        stripe_order = place(plan, make_user(roles={Role.SUBSCRIBER}), provider="stripe")
        mollie_order = place(plan, make_user(roles={Role.SUBSCRIBER}), provider="mollie")
        stripe_payment, mollie_payment = stripe_order.payments[-1], mollie_order.payments[-1]
        ids = {"stripe": stripe_payment.id, "mollie": mollie_payment.id}
        session_ref, mollie_ref = stripe_payment.provider_ref, mollie_payment.provider_ref
        checkout_url = stripe_payment.checkout_url
        states_before = {"stripe": stripe_payment.state, "mollie": mollie_payment.state}
        db.session.remove()
    # Paid at both providers: a webhook that got through would apply it.
    paid = requests.post(checkout_url, data={"method": "card", "outcome": "succeed"},
                         allow_redirects=False, timeout=5)
    assert paid.status_code == 303
    mollie_fake.set_status(mollie_ref, "paid")

    client = app.test_client()
    with app.app_context():
        writes = CommittedWrites(db.engine)
    answers: list[int] = []

    def post(path: str, body: bytes, headers: dict) -> int:
        writes.take()
        response = client.post(path, data=body, headers=headers)
        assert response.status_code < 500, (path, body[:200], headers, response.status_code)
        assert writes.take() == [], (path, body[:200], headers)
        answers.append(response.status_code)
        return response.status_code

    event = st.fixed_dictionaries({
        "id": st.one_of(st.just("evt_1"), HOSTILE),
        "object": st.sampled_from(["event", "", "charge"]),
        "type": st.sampled_from(EVENT_TYPES),
        "data": st.fixed_dictionaries({"object": st.fixed_dictionaries({
            "id": st.sampled_from([session_ref, "cs_unknown", "", "pi_1", "ch_1"]),
            "object": st.sampled_from(["checkout.session", "payment_intent", "charge"]),
            "metadata": st.fixed_dictionaries({"payment_id": st.one_of(
                st.just(str(ids["stripe"])), HOSTILE)}),
            "payment_intent": st.one_of(st.none(), st.just("pi_unknown"), HOSTILE),
            "amount": st.one_of(st.integers(), HOSTILE),
        })}),
    })
    stripe_body = st.one_of(event.map(lambda e: json.dumps(e).encode()),
                            st.binary(max_size=512), HOSTILE.map(str.encode))
    # Every kind of Stripe-Signature but a valid one: none, junk, a well-formed one with the
    # wrong secret, our secret over another body, our secret but an hour old.
    stripe_signature = st.sampled_from(["none", "junk", "wrong-secret", "other-body", "stale",
                                        "empty-v1"])

    @FUZZ_SETTINGS
    @given(body=stripe_body, how=stripe_signature, junk=HOSTILE,
           content_type=st.sampled_from(["application/json", "text/plain", "", "x/y"]))
    def stripe_hooks(body, how, junk, content_type):
        now = int(time.time())
        headers = {"Content-Type": content_type} if content_type else {}
        if how == "junk":
            headers["Stripe-Signature"] = junk.encode("utf-8", "replace").decode("latin-1")
        elif how == "wrong-secret":
            headers["Stripe-Signature"] = signature(body, "whsec_not_ours", now)
        elif how == "other-body":
            headers["Stripe-Signature"] = signature(body + b" ", SECRET, now)
        elif how == "stale":
            headers["Stripe-Signature"] = signature(body, SECRET, now - 3600)
        elif how == "empty-v1":
            headers["Stripe-Signature"] = f"t={now},v1="
        assert post("/webhooks/stripe", body, headers) == 400

    mollie_body = st.one_of(
        st.fixed_dictionaries({"id": st.one_of(
            HOSTILE, st.from_regex(r"tr_[A-Za-z0-9]{1,12}", fullmatch=True),
            st.just(mollie_ref + "x"), st.just(mollie_ref.upper()))}).map(
                lambda form: "&".join(f"{k}={requests.utils.quote(v)}"
                                      for k, v in form.items()).encode()),
        st.binary(max_size=512))

    @FUZZ_SETTINGS
    @given(body=mollie_body, content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "multipart/form-data", ""]))
    def mollie_hooks(body, content_type):
        headers = {"Content-Type": content_type} if content_type else {}
        assert post("/webhooks/mollie", body, headers) == 200

    try:
        stripe_hooks()
        mollie_hooks()
    finally:
        writes.close()
    with app.app_context():
        states = {p.provider: p.state for p in db.session.scalars(
            sa.select(Payment).where(Payment.id.in_(ids.values())))}
    assert states == states_before
    assert PaymentState.PAID not in states.values()
    assert len(answers) == 2 * EXAMPLES
