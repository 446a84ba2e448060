"""renewals: 10k automatic renewals charged by the `renewals` job through our provider
interface (the real Mollie adapter and SDK) against the fake Mollie of tests/fakes, against
the floor: the same 10k recurring charges made directly with the SDK, nothing recorded.

The fake Mollie runs in a process of its own (`python -m bench.renewals serve`), seeded with
a customer and a mandate per subscriber, so it does not share an interpreter with the code
measured. It answers at once (~1.7 ms a call on loopback), unless BENCH_MOLLIE_LATENCY_MS
makes every answer that much later, for both sides alike (Mollie itself takes 100-300 ms):
our side makes RENEWAL_CONCURRENCY charges at a time (the setting's default), the floor
one after the other. Our side runs on a fresh copy of the generated database, where the world's own
due renewals are switched off first and 10k new subscribers on Mollie mandates have used up
their term; afterwards every one of them must be charged once and renewed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.common import ROOT, BenchResult
from bench.generate import bench_app, scaled, working_copy

RATIO_GOAL = 1.5
RENEWALS = 10_000


class MollieServer:
    """The fake Mollie in its own process, seeded with customers and mandates."""

    def __init__(self, user_ids: list[int]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.renewals", "serve"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(json.dumps(user_ids) + "\n")
        self.process.stdin.flush()
        self.url = self.process.stdout.readline().strip()

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve() -> None:
    from tests.fakes import mollie as fake_mollie

    user_ids = json.loads(sys.stdin.readline())
    server = fake_mollie.FakeMollie()
    server.recurring_status = "paid"
    latency = latency_seconds()
    if latency:
        # Every answer this much later, as Mollie's own over the internet: the same for our
        # side and the floor; outside the fake's lock, so calls made at once wait at once.
        answer = server._answer

        def answer_later(*args, **kwargs):
            time.sleep(latency)
            return answer(*args, **kwargs)

        server._answer = answer_later
    now = datetime.now(UTC)
    with server._lock:
        for uid in user_ids:
            server.customers[f"cst_{uid}"] = fake_mollie.Customer(
                f"cst_{uid}", now, f"Lezer {uid}", None, None, None)
            server.mandates[f"mdt_{uid}"] = fake_mollie.Mandate(
                f"mdt_{uid}", f"cst_{uid}", now, "directdebit",
                {"consumerName": "Lezer", "consumerAccount": "BE71096123456769"})
    print(server.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    server.stop()


def latency_seconds() -> float:
    """BENCH_MOLLIE_LATENCY_MS: how long the fake Mollie takes to answer (default 0; Mollie
    itself answers in 100-300 ms)."""
    return float(os.environ.get("BENCH_MOLLIE_LATENCY_MS", "0") or 0) / 1000


def _due_world(count: int) -> list[int]:
    """In the app's database: the existing due renewals switched off, and `count` new
    subscribers whose term is used up, each with a valid Mollie mandate. Their user ids."""
    from magazine.db import db
    from magazine.models import User
    from subscriptions.models import DeliveryAddress, Mandate, Plan, Subscription

    db.session.execute(sa.update(Subscription).where(Subscription.issues_remaining == 0)
                       .values(auto_renew=False))
    plan = db.session.scalar(sa.select(Plan).where(Plan.code == "papier"))
    first_user = (db.session.scalar(sa.select(sa.func.max(User.id))) or 0) + 1
    first_sub = (db.session.scalar(sa.select(sa.func.max(Subscription.id))) or 0) + 1
    user_ids = list(range(first_user, first_user + count))
    db.session.execute(sa.insert(User), [
        {"id": uid, "email": f"renew{uid}@bench.example", "name": f"Lezer {uid}",
         "password_hash": "x", "locale": "nl_BE"} for uid in user_ids])
    db.session.execute(sa.insert(Subscription), [
        {"id": first_sub + i, "subscriber_id": uid, "plan_id": plan.id, "state": "active",
         "copies": 1, "issues_granted": plan.issues_per_term, "issues_remaining": 0,
         "auto_renew": True, "term": 1, "complimentary": False, "grace_issues_used": 0,
         "cancel_reason": "", "note": "", "gift_recipient_name": "",
         "gift_recipient_email": "", "gift_message": ""} for i, uid in enumerate(user_ids)])
    db.session.execute(sa.insert(DeliveryAddress), [
        {"subscription_id": first_sub + i, "group_no": 1, "copies": 1, "name": f"Lezer {uid}",
         "organisation": "", "street": "Dorpsstraat 4", "postcode": "2000",
         "city": "Antwerpen", "country": "BE"} for i, uid in enumerate(user_ids)])
    db.session.execute(sa.insert(Mandate), [
        {"user_id": uid, "provider": "mollie", "customer_ref": f"cst_{uid}",
         "mandate_ref": f"mdt_{uid}", "method": "directdebit", "label": "IBAN •••• 6769",
         "state": "valid"} for uid in user_ids])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        for table in ("users", "subscriptions"):
            db.session.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"))
        db.session.commit()
    return user_ids


def run(url: str, database: str, factor: float) -> BenchResult:
    from tests.fakes.mollie import API_KEY

    # BENCH_RENEWALS: fewer on a busy machine (the cost per renewal is what is compared).
    count = int(os.environ.get("BENCH_RENEWALS", "0") or 0) or scaled(RENEWALS, factor, 20)
    copy = working_copy(url, "renewals")
    app = bench_app(copy, MOLLIE_API_KEY=API_KEY, BASE_URL="http://127.0.0.1")
    with app.app_context():
        from magazine.db import db
        from subscriptions.models import ChargeStatus, RenewalCharge

        user_ids = _due_world(count)
        server = MollieServer(user_ids)
        try:
            app.config["MOLLIE_API_ENDPOINT"] = server.url
            from subscriptions import renewals

            started = time.perf_counter()
            result = renewals.run_renewals()
            ours = time.perf_counter() - started
            paid = db.session.scalar(sa.select(sa.func.count()).select_from(RenewalCharge)
                                     .where(RenewalCharge.status == ChargeStatus.PAID))
            if result.charged != count or paid != count:
                raise RuntimeError(f"renewals: {result.summary()}; {paid} paid of {count}")
            floor = _floor(server.url, API_KEY, user_ids)
        finally:
            server.stop()
        db.session.remove()
        db.engine.dispose()
    ratio = ours / floor
    return BenchResult("renewals", database, ours, floor, "s", f"ratio ≤ {RATIO_GOAL:g}",
                       ratio <= RATIO_GOAL, ratio=ratio,
                       extra={"renewals": count,
                              "per_renewal_ms": round(ours / count * 1000, 2),
                              "floor_per_charge_ms": round(floor / count * 1000, 2),
                              "concurrency": app.config.get("RENEWAL_CONCURRENCY", 1),
                              "mollie_latency_ms": round(latency_seconds() * 1000)})


def _floor(endpoint: str, api_key: str, user_ids: list[int]) -> float:
    """The same recurring charges, straight from the SDK (new idempotency keys: the fake
    would otherwise replay our side's answers)."""
    from mollie.api.client import Client

    client = Client(api_endpoint=endpoint, timeout=(2, 5), retry=0)
    client.set_api_key(api_key)
    started = time.perf_counter()
    for uid in user_ids:
        created = client.payments.create({
            "amount": {"currency": "EUR", "value": "55.00"},
            "description": f"Kinderopvang Magazine floor {uid}",
            "sequenceType": "recurring", "customerId": f"cst_{uid}",
            "mandateId": f"mdt_{uid}", "webhookUrl": "http://127.0.0.1/webhooks/mollie",
            "metadata": {"payment_id": uid},
        }, idempotency_key=f"floor-{uid}")
        assert created.status == "paid"
    return time.perf_counter() - started


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
