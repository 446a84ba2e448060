"""The hard tests of issue 6: several scheduler processes at once, and jobs killed with
SIGKILL and run again, over 2,000 due subscriptions, on the suite's database (SQLite, or
PostgreSQL with TEST_DATABASE_URL: CI runs both).

Each process is a real `flask --app wsgi jobs run NAME` against the same database. Renewal
charges go through the real Mollie adapter to the fake Mollie server (tests/fakes), which
honours idempotency keys as Mollie does; charges are counted there, at the provider."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from editorial.models import Issue, IssueState
from magazine.db import db
from magazine.models import JobRun, OutboxMail
from subscriptions.models import (
    ChargeStatus,
    DispatchEntry,
    DispatchLine,
    Invoice,
    Mandate,
    PlanKind,
    RenewalCharge,
    Subscription,
)
from tests.factories import make_issue
from tests.fakes import mollie as fake_mollie
from tests.jobs.factories import make_many_subscriptions
from tests.subscriptions.factories import make_plan

ROOT = Path(__file__).resolve().parents[2]
COUNT = 2000
# The crash tests kill and restart a run ten times: fewer rows keep them short.
CRASH_COUNT = 400
PROCESSES = 4
TIMINGS: dict[str, float] = {}


@pytest.fixture
def env(database_url, mollie_fake) -> dict[str, str]:
    """The environment of a scheduler process: the suite's database and the fake Mollie."""
    mollie_fake.recurring_status = "paid"
    environ = dict(os.environ)
    environ.update({
        "APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key",
        "BASE_URL": "http://localhost", "MOLLIE_API_KEY": fake_mollie.API_KEY,
        "MOLLIE_API_ENDPOINT": mollie_fake.url, "MAIL_URL": "",
        "PASSWORD_TIME_COST": "1", "PASSWORD_MEMORY_COST": "1024",
    })
    environ.pop("TEST_DATABASE_URL", None)
    return environ


def start(job: str, env: dict[str, str], *extra: str) -> subprocess.Popen:
    """A scheduler process running `job`. Its output goes to files, never to pipes: a
    process blocked on a full pipe while holding SQLite's write lock would stall the rest."""
    out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by finish()
    err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by finish()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "run", job, *extra],
        cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
    process.out_file, process.err_file = out, err  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[str, str]:
    # Generous: on a shared, loaded machine 2,000 charges by four processes take minutes;
    # the limit is there to catch a hang, not to time the work.
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    texts = []
    for handle in (process.out_file, process.err_file):  # type: ignore[attr-defined]
        handle.seek(0)
        texts.append(handle.read())
        handle.close()
    return texts[0], texts[1]


def run_at_once(job: str, env: dict[str, str], *extra: str) -> list[str]:
    """PROCESSES schedulers running `job` at the same moment; their summary lines."""
    began = time.monotonic()
    processes = [start(job, env, *extra) for _ in range(PROCESSES)]
    outputs = []
    try:
        for process in processes:
            out, err = finish(process)
            assert process.returncode == 0, err[-3000:]
            assert "Traceback" not in err, err[-3000:]
            outputs.append(out.strip().splitlines()[-1])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    TIMINGS[f"{job} {' '.join(extra)}".strip()] = time.monotonic() - began
    return outputs


def due_renewals(mollie_fake, *, remaining: int = 0, count: int = COUNT) -> list[int]:
    """COUNT subscriptions on Mollie mandates, their term used up (or one issue left)."""
    plan = make_plan(kind=PlanKind.PRINT, code="papier", issues=5, price_cents=6500)
    ids = make_many_subscriptions(plan, count, remaining=remaining)
    users = db.session.execute(sa.select(Subscription.subscriber_id)).scalars().all()
    db.session.execute(sa.insert(Mandate), [
        {"user_id": uid, "provider": "mollie", "customer_ref": f"cst_{uid}",
         "mandate_ref": f"mdt_{uid}", "method": "directdebit", "label": "IBAN •••• 6769",
         "state": "valid"} for uid in users])
    db.session.commit()
    now = datetime.now(UTC)
    with mollie_fake._lock:
        for uid in users:
            mollie_fake.customers[f"cst_{uid}"] = fake_mollie.Customer(
                f"cst_{uid}", now, f"Lezer {uid}", None, None, None)
            mollie_fake.mandates[f"mdt_{uid}"] = fake_mollie.Mandate(
                f"mdt_{uid}", f"cst_{uid}", now, "directdebit",
                {"consumerName": "Lezer", "consumerAccount": "BE71096123456769"})
    return ids


def assert_renewed_exactly_once(mollie_fake, ids: list[int]) -> None:
    count = len(ids)
    db.session.expire_all()
    per_customer = Counter(p.customer_id for p in mollie_fake.payments.values())
    assert len(per_customer) == count and set(per_customer.values()) == {1}, \
        "every subscriber charged exactly once at the provider"
    statuses = Counter(db.session.scalars(sa.select(RenewalCharge.status)))
    assert statuses == {ChargeStatus.PAID: count}, statuses
    terms = Counter(db.session.execute(
        sa.select(Subscription.term, Subscription.issues_remaining)).all())
    assert terms == {(2, 5): count}
    renewed = Counter(db.session.scalars(sa.select(OutboxMail.to_address).where(
        OutboxMail.template == "renewals_renewed")))
    assert len(renewed) == count and set(renewed.values()) == {1}
    sequences = sorted(db.session.scalars(sa.select(Invoice.sequence)))
    assert sequences == list(range(1, count + 1)), "invoice numbers without gaps or doubles"


def test_four_schedulers_charge_each_renewal_once(app_context, env, mollie_fake):
    ids = due_renewals(mollie_fake)
    # --again: no ledger, so all four really compete for the same rows.
    outputs = run_at_once("renewals", env, "--again")
    charged = [int(line.split(": ")[1].split()[0]) for line in outputs]
    assert sum(charged) == COUNT, outputs
    assert_renewed_exactly_once(mollie_fake, ids)
    print(f"\n4 processes, {COUNT} renewals: {TIMINGS['renewals --again']:.1f} s; "
          f"charges per process {charged}")


def test_four_schedulers_mail_each_reminder_once_and_one_owns_the_run(app_context, env,
                                                                        mollie_fake):
    make_issue(volume=3, number=2, print_date=date.today() + timedelta(days=60))
    due_renewals(mollie_fake, remaining=1)
    outputs = run_at_once("renewal-reminders", env)
    owners = [line for line in outputs if "charge notices" in line]
    assert owners == [f"renewal-reminders: {COUNT} charge notices, 0 renewal links, "
                      "0 gift reminders"], outputs
    assert all("already done" in line or "is running it" in line
               for line in outputs if line not in owners), outputs
    keys = Counter(db.session.scalars(sa.select(OutboxMail.to_address).where(
        OutboxMail.template == "renewals_charge_notice")))
    assert len(keys) == COUNT and set(keys.values()) == {1}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(JobRun)) == 1
    # Without the ledger the work keys still keep every mail single.
    run_at_once("renewal-reminders", env, "--again")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMail).where(
        OutboxMail.template == "renewals_charge_notice")) == COUNT


def dispatch_world(mollie_fake, count: int = COUNT) -> Issue:
    today = date.today()
    # Its cut-off (five days before printing) was two days ago.
    issue = make_issue(volume=3, number=2, print_date=today + timedelta(days=3),
                       state=IssueState.PUBLISHED)
    issue.pdf_filename, issue.pdf_data = "nummer.pdf", b"%PDF-1.4"
    db.session.commit()
    printed = make_plan(kind=PlanKind.PRINT_DIGITAL, code="beide", issues=5)
    make_many_subscriptions(printed, count, remaining=3)
    return issue


def assert_dispatched_exactly_once(issue_id: int, count: int = COUNT) -> None:
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DispatchEntry)) == count
    assert db.session.scalar(sa.select(sa.func.count(sa.distinct(
        DispatchLine.subscription_id)))) == count
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DispatchLine)) == count
    assert Counter(db.session.scalars(sa.select(Subscription.issues_remaining))) == {2: count}
    mails = Counter(db.session.scalars(sa.select(OutboxMail.to_address).where(
        OutboxMail.template == "dispatch_digital_issue")))
    assert len(mails) == count and set(mails.values()) == {1}
    assert db.session.get(Issue, issue_id).state == IssueState.DISPATCHED


def test_four_schedulers_dispatch_each_subscription_once(app_context, env, mollie_fake):
    issue = dispatch_world(mollie_fake)
    outputs = run_at_once("dispatch", env, "--again")
    assert sum("locked before" in line for line in outputs) == PROCESSES - 1, outputs
    assert_dispatched_exactly_once(issue.id)


def wait_until_it_owns_the_run(process: subprocess.Popen, timeout: float = 300) -> None:
    """Until `process` has claimed its run in the ledger (or ended)."""
    owner = f"%:{process.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        owned = db.session.scalar(sa.select(JobRun.id).where(JobRun.owner.like(owner)))
        db.session.rollback()
        if owned is not None:
            return
        time.sleep(0.05)


def wait_for_work(process: subprocess.Popen, done, target: int,
                  timeout: float = 300) -> None:
    """Until `done()` (work seen outside the process) reaches `target`, or it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and done() < target:
        time.sleep(0.002)


def kill_and_rerun(job: str, env: dict[str, str], trials: int = 10,
                   done=None) -> list[float]:
    """Start `job`, SIGKILL it at a random moment of its work, `trials` times; then run it
    to the end. Returns the moments of the kills: seconds after it owned the run or, with
    `done` (a count of its work seen from outside, e.g. provider calls), how much work it
    had done since it started (so that the kill falls in its work however fast that is)."""
    rng = random.Random(6)
    moments = []
    for _ in range(trials):
        process = start(job, env)
        # Killed while it works: a random moment after it owns the run (starting Python
        # and the app takes from one second to many on a loaded machine).
        wait_until_it_owns_the_run(process)
        if done is None:
            moment = rng.uniform(0.0, 2.0)
            time.sleep(moment)
        else:
            moment = rng.randint(1, 60)
            wait_for_work(process, done, done() + moment)
        process.send_signal(signal.SIGKILL)
        finish(process)
        moments.append(round(moment, 2))
    final = start(job, env)
    _out, err = finish(final)
    assert final.returncode == 0, err[-3000:]
    return moments


def test_renewals_killed_at_random_moments_and_rerun_charge_each_once(app_context, env,
                                                                      mollie_fake):
    ids = due_renewals(mollie_fake, count=CRASH_COUNT)
    began = time.monotonic()
    # Killed after a random number (1-60) of its charges reached the provider: a batch of
    # charges takes well under the time-based moments on a quiet machine.
    moments = kill_and_rerun("renewals", env, done=lambda: len(mollie_fake.calls))
    TIMINGS["renewals killed 10 times"] = time.monotonic() - began
    assert_renewed_exactly_once(mollie_fake, ids)
    replayed = sum(call.replayed for call in mollie_fake.calls)
    print(f"\nkilled after {moments} provider calls; {replayed} charges repaired by "
          f"replaying their key; "
          f"{TIMINGS['renewals killed 10 times']:.1f} s")
    run = db.session.scalar(sa.select(JobRun))
    assert run.status == "finished" and run.attempts >= 2, (run.attempts, moments)


def test_dispatch_killed_at_random_moments_and_rerun_is_exact(app_context, env, mollie_fake):
    issue = dispatch_world(mollie_fake, count=CRASH_COUNT)
    kill_and_rerun("dispatch", env)
    assert_dispatched_exactly_once(issue.id, count=CRASH_COUNT)
