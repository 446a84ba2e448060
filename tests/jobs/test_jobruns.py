"""The run ledger and the work keys (magazine.jobruns), on the suite's database."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from magazine.clock import frozen
from magazine.db import db, write_transaction
from magazine.jobruns import (
    RunTaken,
    claim_key,
    claim_run,
    exclusive_run,
    forced,
    owner_is_gone,
)
from magazine.models import JobRun, JobRunStatus

NOW = datetime(2026, 12, 1, 6, tzinfo=UTC)


class Done:
    def summary(self) -> str:
        return "job: done"


def dead_owner() -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def test_one_process_owns_a_run_and_the_next_is_told(app_context):
    with frozen(NOW):
        assert exclusive_run("job", "2026-12-01", Done).summary() == "job: done"
        taken = exclusive_run("job", "2026-12-01", Done)
    assert isinstance(taken, RunTaken) and "already done for 2026-12-01" in taken.summary()
    run = db.session.scalar(sa.select(JobRun))
    assert (run.status, run.summary, run.attempts) == (JobRunStatus.FINISHED, "job: done", 1)
    with forced():
        assert exclusive_run("job", "2026-12-01", Done).summary() == "job: done"


def test_a_run_of_a_dead_process_is_taken_over_a_live_one_is_not(app_context):
    with frozen(NOW):
        db.session.add(JobRun(job="dead", period="p", owner=dead_owner(), started_at=NOW,
                              heartbeat_at=NOW))
        db.session.add(JobRun(job="alive", period="p", owner="elsewhere:1", started_at=NOW,
                              heartbeat_at=NOW))
        db.session.commit()
        assert isinstance(claim_run("dead", "p"), JobRun)
        assert "is running it" in claim_run("alive", "p").summary()
    # Silent for longer than STALE_AFTER: taken over too.
    with frozen(NOW + timedelta(hours=1)):
        run = claim_run("alive", "p")
    assert isinstance(run, JobRun) and run.attempts == 2


def test_a_failed_run_is_run_again(app_context):
    def boom():
        raise RuntimeError("boom")

    with frozen(NOW):
        with pytest.raises(RuntimeError):
            exclusive_run("job", "p", boom)
        assert db.session.scalar(sa.select(JobRun.status)) == JobRunStatus.FAILED
        assert exclusive_run("job", "p", Done).summary() == "job: done"


def test_a_work_key_is_taken_once_and_given_back_by_a_rollback(app_context):
    with write_transaction():
        assert claim_key("reminder:1", "job")
        assert not claim_key("reminder:1", "job")
    with pytest.raises(RuntimeError), write_transaction():
        assert claim_key("reminder:2", "job")
        raise RuntimeError("the work failed")
    with write_transaction():
        assert claim_key("reminder:2", "job")


def test_owner_is_gone_only_for_a_dead_process_on_this_host():
    assert owner_is_gone(dead_owner())
    assert not owner_is_gone(f"{socket.gethostname()}:1")
    assert not owner_is_gone("another-host:12345")


def test_a_long_run_beats_its_heartbeat_and_is_taken_over_only_once_silent(app_context,
                                                                             monkeypatch):
    from magazine import jobruns
    from magazine.jobs import Progress

    progress = Progress()
    seen: list = []

    def other_host_claims(at: datetime) -> None:
        with frozen(at), monkeypatch.context() as other:
            other.setattr(jobruns, "owner_id", lambda: "otherhost:2")
            seen.append(claim_run("long", "p"))

    def work() -> Done:
        # 100 items, one a minute: without a heartbeat the run would look dead after 30.
        for minute in range(100):
            with frozen(NOW + timedelta(minutes=minute)):
                progress.advance(1)
        other_host_claims(NOW + timedelta(minutes=99) + jobruns.STALE_AFTER / 2)
        return Done()

    with frozen(NOW):
        assert exclusive_run("long", "p", work, progress).summary() == "job: done"
    assert isinstance(seen[0], RunTaken) and "is running it" in seen[0].summary()
    run = db.session.scalar(sa.select(JobRun).where(JobRun.job == "long"))
    assert run.attempts == 1 and run.status == JobRunStatus.FINISHED

    # A run that beat and then went silent (its process crashed on another host) is taken
    # over STALE_AFTER after its last beat, not before.
    last_beat = NOW + timedelta(minutes=49)
    db.session.add(JobRun(job="crashed", period="p", owner="otherhost:1", started_at=NOW,
                          heartbeat_at=NOW))
    db.session.commit()
    crashed = db.session.scalar(sa.select(JobRun).where(JobRun.job == "crashed"))
    with frozen(last_beat), monkeypatch.context() as host:
        host.setattr(jobruns, "owner_id", lambda: "otherhost:1")
        assert jobruns.beat(crashed.id)
    with frozen(last_beat + jobruns.STALE_AFTER - timedelta(minutes=1)):
        assert isinstance(claim_run("crashed", "p"), RunTaken)
    with frozen(last_beat + jobruns.STALE_AFTER + timedelta(minutes=1)):
        taken = claim_run("crashed", "p")
    assert isinstance(taken, JobRun) and taken.attempts == 2
