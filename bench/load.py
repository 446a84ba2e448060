"""`make load`: 100 concurrent sessions for 60 s against gunicorn + PostgreSQL, then a count.

    .venv/bin/python -m bench.load [--sessions 100] [--seconds 60] [--workers 4]

What it does, on a throwaway PostgreSQL database it creates and drops (LOAD_PG_URL, default
postgresql://postgres@127.0.0.1:5432/postgres, names the server):
1. migrates it and prepares the people and objects: subscribers with a subscription and a
   delivery address, board members each writing an article (its author, so they may save
   versions), and orders paid with Stripe at the Stripe stand-in (localstripe and our
   Checkout stand-in, tests/fakes/) whose webhooks we have not yet received;
2. starts gunicorn (`wsgi:app`) on a free loopback port;
3. runs the sessions with asyncio + aiohttp, mixed: subscribers log in, view their account
   and subscription and change the delivery address; board members log in, open the agenda
   and save a new version of their article; webhook senders post signed
   `checkout.session.completed` events (signed with STRIPE_WEBHOOK_SECRET) for the paid
   orders — every event twice, and two events per payment;
4. prints requests, errors and p50/p95 per kind, and requires 0 errors;
5. checks the database against what was sent: one new address row and one audit entry per
   accepted address change (the last address is the last one sent), one revision per save,
   every payment whose events were sent paid exactly once (one `payment.paid` audit entry,
   one recorded provider event per distinct event id), and nothing else paid.

Exit status 0 only when there were no errors and every count matches.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import sqlalchemy as sa

REPOSITORY = Path(__file__).resolve().parents[1]
PASSWORD = "load-test-password"  # nosec B105 # throwaway accounts in a throwaway database
WEBHOOK_SECRET = "whsec_load_test"  # nosec B105 # the stand-in's secret, this run only
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the database and the data

@dataclass
class Prepared:
    subscribers: list[tuple[str, int]]  # (e-mail, subscription id)
    board: list[tuple[str, int]]  # (e-mail, article id)
    payments: list[tuple[int, str]]  # (payment id, checkout session id)


def prepare(env: dict, subscribers: int, board: int, payments: int) -> Prepared:
    """Migrate and fill the database through the application's own services."""
    os.environ.update(env)
    sys.path.insert(0, str(REPOSITORY))
    import requests
    from flask_migrate import upgrade

    from editorial.models import Article, Revision
    from magazine import create_app
    from magazine.db import db
    from magazine.roles import Role
    from tests.factories import make_user
    from tests.subscriptions.factories import make_plan, place

    app = create_app({"ENVIRON": env, "INSTANCE_PATH": env["LOAD_INSTANCE"]})
    logging.getLogger().setLevel(logging.WARNING)  # not every queued mail on the terminal
    with app.app_context():
        upgrade()
        plan = make_plan(price_cents=6500)
        prepared = Prepared([], [], [])
        for n in range(subscribers):
            user = make_user(roles={Role.SUBSCRIBER}, email=f"sub{n}@load.example",
                             password=PASSWORD)
            order = place(plan, user, provider="bank_transfer")
            prepared.subscribers.append((user.email, order.subscriptions[0].id))
        for n in range(board):
            user = make_user(roles={Role.BOARD_MEMBER}, email=f"board{n}@load.example",
                             password=PASSWORD)
            article = Article(title=f"Artikel {n}", author=user, target_words=800)
            db.session.add(article)
            db.session.flush()
            db.session.add(Revision(article=article, number=1, body="Eerste versie.\n",
                                    word_count=2))
            db.session.commit()
            prepared.board.append((user.email, article.id))
        # The buyers never log in: a cheap password hash keeps the preparation short.
        app.config.update(PASSWORD_TIME_COST=1, PASSWORD_MEMORY_COST=1024)
        for n in range(payments):
            user = make_user(roles={Role.SUBSCRIBER}, email=f"buyer{n}@load.example",
                             password=PASSWORD)
            order = place(plan, user, provider="stripe")
            payment = order.payments[-1]
            # Paid on Stripe's page; our side hears of it only through the webhook.
            paid = requests.post(payment.checkout_url, timeout=30,
                                 data={"method": "card", "outcome": "succeed"},
                                 allow_redirects=False)
            assert paid.status_code == 303, paid.text
            prepared.payments.append((payment.id, payment.provider_ref))
        db.session.remove()
    return prepared


# ---------------------------------------------------------------- the sessions

@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    addresses: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    revisions: Counter = field(default_factory=Counter)
    events: dict[str, int] = field(default_factory=dict)  # event id → payment id (answered)


class Load:
    def __init__(self, base: str, prepared: Prepared, deadline: float, stats: Stats):
        self.base = base
        self.prepared = prepared
        self.deadline = deadline
        self.stats = stats
        self.next_payment = 0

    async def request(self, http: aiohttp.ClientSession, kind: str, method: str, path: str,
                      expect: tuple[int, ...], **kwargs) -> str | None:
        started = time.perf_counter()
        try:
            async with http.request(method, self.base + path, allow_redirects=False,
                                    **kwargs) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            self.stats.errors.append(f"{kind} {path}: {error!r}")
            return None
        self.stats.latencies[kind].append(time.perf_counter() - started)
        if status not in expect:
            self.stats.errors.append(f"{kind} {method} {path}: {status} {text[:200]!r}")
            return None
        return text

    async def log_in(self, http, email: str) -> str | None:
        page = await self.request(http, "login", "GET", "/login", (200,))
        if page is None:
            return None
        token = CSRF.search(page).group(1)
        done = await self.request(http, "login", "POST", "/login", (302,), data={
            "email": email, "password": PASSWORD, "csrf_token": token})
        if done is None:
            return None
        # Logging in starts a new session, with a CSRF token of its own.
        page = await self.request(http, "account", "GET", "/account", (200,))
        return CSRF.search(page).group(1) if page is not None else None

    async def subscriber(self, email: str, subscription_id: int) -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            token = await self.log_in(http, email)
            n = 0
            while token and time.monotonic() < self.deadline:
                await self.request(http, "account", "GET", "/account", (200,))
                await self.request(http, "account", "GET",
                                   f"/account/subscriptions/{subscription_id}", (200,))
                n += 1
                street = f"Laadstraat {n} ({email})"
                changed = await self.request(
                    http, "address", "POST", f"/account/subscriptions/{subscription_id}/address",
                    (302,), data={"csrf_token": token, "group_no": "1",
                                  "address-name": "Kinderdagverblijf Laad",
                                  "address-street": street, "address-postcode": "9000",
                                  "address-city": "Gent", "address-country": "BE"})
                if changed is not None:
                    self.stats.addresses[subscription_id].append(street)

    async def board_member(self, email: str, article_id: int) -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            token = await self.log_in(http, email)
            n = 0
            while token and time.monotonic() < self.deadline:
                await self.request(http, "agenda", "GET", "/editorial/pitches", (200,))
                await self.request(http, "agenda", "GET",
                                   f"/editorial/articles/{article_id}/write", (200,))
                n += 1
                saved = await self.request(
                    http, "revision", "POST", f"/editorial/articles/{article_id}/write", (302,),
                    data={"csrf_token": token, "save": "1", "note": f"versie {n}",
                          "body": f"# Artikel\n\nVersie {n} van {email}: " + "woord " * 300})
                if saved is not None:
                    self.stats.revisions[article_id] += 1

    async def webhooks(self) -> None:
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < self.deadline:
                index = self.next_payment
                self.next_payment += 1
                payment_id, session_id = self.prepared.payments[
                    index % len(self.prepared.payments)]
                # Two events per payment, each delivered twice: applied once, the rest
                # duplicates (or a re-read that finds it paid already).
                for suffix in ("a", "a", "b", "b"):
                    event_id = f"evt_load_{payment_id}_{suffix}"
                    body = json.dumps({
                        "id": event_id, "object": "event", "type": "checkout.session.completed",
                        "data": {"object": {"id": session_id, "object": "checkout.session",
                                            "metadata": {"payment_id": str(payment_id)}}},
                    }).encode()
                    answer = await self.request(
                        http, "webhook", "POST", "/webhooks/stripe", (200,), data=body,
                        headers={"Stripe-Signature": sign(body),
                                 "Content-Type": "application/json"})
                    if answer is not None:
                        self.stats.events[event_id] = payment_id


def sign(body: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body,
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def run_sessions(base: str, prepared: Prepared, seconds: float, mix: tuple[int, int, int]
                       ) -> tuple[Stats, float]:
    stats = Stats()
    started = time.monotonic()
    load = Load(base, prepared, started + seconds, stats)
    subscribers, board, webhooks = mix
    tasks = [load.subscriber(*prepared.subscribers[i]) for i in range(subscribers)]
    tasks += [load.board_member(*prepared.board[i]) for i in range(board)]
    tasks += [load.webhooks() for _ in range(webhooks)]
    await asyncio.gather(*tasks)
    return stats, time.monotonic() - started


# ---------------------------------------------------------------- the count afterwards

def check_counts(database_url: str, prepared: Prepared, stats: Stats) -> list[str]:
    engine = sa.create_engine(database_url)
    problems = []
    with engine.connect() as c:
        for _, subscription_id in prepared.subscribers:
            sent = stats.addresses.get(subscription_id, [])
            rows = c.execute(sa.text(
                "SELECT street FROM delivery_addresses WHERE subscription_id = :s ORDER BY id"),
                {"s": subscription_id}).scalars().all()
            if len(rows) != 1 + len(sent) or (sent and rows[-1] != sent[-1]):
                problems.append(f"subscription {subscription_id}: {len(sent)} changes sent, "
                                f"{len(rows) - 1} stored")
        audited = c.execute(sa.text("SELECT count(*) FROM audit_events "
                                    "WHERE action = 'subscription.address_changed'")).scalar()
        sent_changes = sum(len(v) for v in stats.addresses.values())
        if audited != sent_changes:
            problems.append(f"address changes: {sent_changes} sent, {audited} audited")
        for _, article_id in prepared.board:
            stored = c.execute(sa.text("SELECT count(*) FROM revisions WHERE article_id = :a"),
                               {"a": article_id}).scalar()
            if stored != 1 + stats.revisions[article_id]:
                problems.append(f"article {article_id}: {stats.revisions[article_id]} saves "
                                f"sent, {stored - 1} stored")
        touched = set(stats.events.values())
        paid = set(c.execute(sa.text("SELECT id FROM payments WHERE provider = 'stripe' "
                                     "AND state = 'paid'")).scalars())
        if paid != touched:
            problems.append(f"payments: events sent for {len(touched)}, {len(paid)} paid "
                            f"({len(paid - touched)} never sent, {len(touched - paid)} unpaid)")
        paid_audits = c.execute(sa.text("SELECT object_id, count(*) FROM audit_events "
                                        "WHERE action = 'payment.paid' GROUP BY object_id"
                                        )).all()
        twice = [row for row in paid_audits if row[1] != 1]
        if len(paid_audits) != len(touched) or twice:
            problems.append(f"payment.paid audited for {len(paid_audits)} payments "
                            f"({len(twice)} more than once), expected {len(touched)}")
        recorded = c.execute(sa.text("SELECT count(*) FROM provider_events "
                                     "WHERE provider = 'stripe'")).scalar()
        if recorded != len(stats.events):
            problems.append(f"provider events: {len(stats.events)} distinct sent, "
                            f"{recorded} recorded")
        active = c.execute(sa.text(
            "SELECT count(*) FROM subscriptions s JOIN orders o ON o.id = s.order_id "
            "JOIN payments p ON p.order_id = o.id WHERE p.provider = 'stripe' "
            "AND s.state = 'active'")).scalar()
        if active != len(touched):
            problems.append(f"subscriptions made active: {active}, expected {len(touched)}")
    engine.dispose()
    return problems


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(stats: Stats, elapsed: float) -> dict:
    everything = [v for values in stats.latencies.values() for v in values]
    lines = {}
    for kind in [*sorted(stats.latencies), "all"]:
        values = everything if kind == "all" else stats.latencies[kind]
        lines[kind] = {"requests": len(values),
                       "p50_ms": round(statistics.median(values) * 1000, 1) if values else 0,
                       "p95_ms": round(percentile(values, 0.95) * 1000, 1)}
    print(f"{'kind':<10} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for kind, line in lines.items():
        print(f"{kind:<10} {line['requests']:>9} {line['p50_ms']:>8} {line['p95_ms']:>8}")
    print(f"{len(everything)} requests in {elapsed:.1f} s ({len(everything) / elapsed:.0f}/s), "
          f"{len(stats.errors)} errors")
    return lines


# ---------------------------------------------------------------- putting it together

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--payments", type=int, default=250, help="Stripe orders prepared")
    options = parser.parse_args()

    sessions = options.sessions
    mix = (sessions * 6 // 10, sessions * 25 // 100, 0)
    mix = (mix[0], mix[1], sessions - mix[0] - mix[1])
    server = os.environ.get("LOAD_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"magazine_load_{os.getpid()}"
    admin = sa.create_engine(server.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = server.rsplit("/", 1)[0] + f"/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="magazine-load-"))
    gunicorn = None
    stripe_stand_in = None
    try:
        sys.path.insert(0, str(REPOSITORY))
        from tests.fakes.localstripe import API_KEY, LocalStripe

        stripe_stand_in = LocalStripe(workdir / "localstripe")
        port = free_port()
        env = {
            "APP_ENV": "production", "DATABASE_URL": database_url,
            "SECRET_KEY": "load-test-" + os.urandom(16).hex(),
            "BASE_URL": f"http://127.0.0.1:{port}",
            "STRIPE_SECRET_KEY": API_KEY, "STRIPE_API_BASE": stripe_stand_in.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "PROVIDER_TIMEOUT_SECONDS": "20",
            "LOAD_INSTANCE": str(workdir / "instance"),
        }
        started = time.monotonic()
        print(f"preparing {name}: {mix[0]} subscribers, {mix[1]} board members, "
              f"{options.payments} Stripe payments …", flush=True)
        prepared = prepare(env, mix[0], mix[1], options.payments)
        print(f"prepared in {time.monotonic() - started:.0f} s", flush=True)

        log = (workdir / "gunicorn.log").open("wb")
        gunicorn = subprocess.Popen(  # nosec B603 # our own venv's gunicorn, fixed arguments
            [str(Path(sys.executable).parent / "gunicorn"), "-w", str(options.workers),
             "-k", "gthread", "--threads", str(options.threads), "--timeout", "120",
             "--backlog", "2048", "-b", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=REPOSITORY, env={**os.environ, **env}, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, gunicorn)
        print(f"gunicorn -w {options.workers} -k gthread --threads {options.threads} on {base};"
              f" {sessions} sessions for {options.seconds:.0f} s "
              f"({mix[0]} subscribers, {mix[1]} board members, {mix[2]} webhook senders)",
              flush=True)
        load_before = os.getloadavg()[0]
        stats, elapsed = asyncio.run(run_sessions(base, prepared, options.seconds, mix))
        print(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before the "
              f"run and {os.getloadavg()[0]:.1f} after it")
        lines = report(stats, elapsed)
        for error in stats.errors[:20]:
            print("  error:", error)
        problems = check_counts(database_url.replace("postgresql://", "postgresql+psycopg://",
                                                     1), prepared, stats)
        sent = (f"{sum(len(v) for v in stats.addresses.values())} address changes, "
                f"{sum(stats.revisions.values())} revisions, {len(stats.events)} distinct "
                f"webhook events for {len(set(stats.events.values()))} payments")
        print(f"sent and accepted: {sent}")
        print("database counts:", "all match" if not problems else "MISMATCH")
        for problem in problems[:20]:
            print("  ", problem)
        (workdir / "result.json").write_text(json.dumps(
            {"kinds": lines, "errors": len(stats.errors), "problems": problems,
             "seconds": elapsed}, indent=2))
        return 0 if not stats.errors and not problems else 1
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        if stripe_stand_in is not None:
            stripe_stand_in.stop()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        print(f"dropped {name}; logs in {workdir}")


def wait_until_up(base: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn ended at start; see its log")
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer /healthz")


if __name__ == "__main__":
    sys.exit(main())
