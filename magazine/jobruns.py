"""The database's guarantees for scheduled jobs, generic for every job.

APScheduler guarantees nothing across processes (its job store cannot be shared), so:

- the run ledger (`JobRun`, unique per job and period): `exclusive_run` lets exactly one
  process own, say, the `renewals` run of 25 November; the others report who has it;
- work keys (`JobClaim`): `claim_key` inserts a key in the transaction that does the work,
  so a piece of work (a reminder, a state move) happens once even if two runs overlap;
- work rows with a status (a renewal charge): `claim_next` takes one due row for this
  process (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so processes never wait on each other's
  rows; SQLite: under `BEGIN IMMEDIATE`, one writer at a time) and marks it claimed by
  `host:pid`; `release_orphans` hands back rows whose claimer died.

Each piece of work runs in its own transaction (`magazine.db.write_transaction`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from magazine.clock import BRUSSELS, now_utc
from magazine.db import db, dialect_name, insert_ignoring_duplicates, write_transaction
from magazine.models import JobClaim, JobRun, JobRunStatus

log = logging.getLogger(__name__)

# A run or a claimed row not heard from for this long belongs to a process that is gone
# (on another host, where we cannot ask the operating system).
STALE_AFTER = timedelta(minutes=30)
# A run that reports its progress beats its heartbeat every this many items, so a long run
# stays its owner's and a crashed one is taken over STALE_AFTER after its last beat.
HEARTBEAT_EVERY = 50

_forced = False

R = TypeVar("R")


def owner_id() -> str:
    """This process, as written into claims: `host:pid` (read each time: a forked worker
    has its own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` is a process on this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def today_period() -> str:
    """The period of a daily job: the date in Brussels."""
    return now_utc().astimezone(BRUSSELS).date().isoformat()


def period_of(day: date) -> str:
    return day.isoformat()


@contextlib.contextmanager
def forced() -> Iterator[None]:
    """Run jobs without the ledger (`jobs run NAME --again`): a second run of a period that
    finished. The work rows and keys still make every piece of work happen once."""
    global _forced
    previous, _forced = _forced, True
    try:
        yield
    finally:
        _forced = previous


# ---------------------------------------------------------------- the run ledger

@dataclass(frozen=True)
class RunTaken:
    """Why this process does not run: another one has or had the run."""

    job: str
    period: str
    owner: str
    status: JobRunStatus

    def summary(self) -> str:
        if self.status == JobRunStatus.FINISHED:
            return f"{self.job}: already done for {self.period} (by {self.owner})"
        return f"{self.job}: {self.owner} is running it for {self.period}; nothing done here"


def claim_run(job: str, period: str) -> JobRun | RunTaken:
    """Own the run of `job` for `period`, or say who does. A run left `running` by a
    process that died (or went silent for STALE_AFTER) is taken over; a failed run is
    taken again."""
    me = owner_id()
    now = now_utc()
    with write_transaction():
        inserted = db.session.execute(
            insert_ignoring_duplicates(JobRun)
            .values(job=job, period=period, owner=me, status=JobRunStatus.RUNNING,
                    attempts=1, started_at=now, heartbeat_at=now, summary="")
            .on_conflict_do_nothing(index_elements=["job", "period"])
            .returning(JobRun.id)
        ).first() is not None
    run = db.session.scalar(sa.select(JobRun).where(JobRun.job == job, JobRun.period == period)
                            .execution_options(populate_existing=True))
    if inserted:
        return run
    takeable = run.status == JobRunStatus.FAILED or (
        run.status == JobRunStatus.RUNNING
        and (owner_is_gone(run.owner) or run.heartbeat_at < now - STALE_AFTER)
    )
    if takeable:
        with write_transaction():
            taken = db.session.execute(
                sa.update(JobRun)
                .where(JobRun.id == run.id, JobRun.owner == run.owner,
                       JobRun.status == run.status)
                .values(owner=me, status=JobRunStatus.RUNNING, heartbeat_at=now,
                        attempts=JobRun.attempts + 1)
                .execution_options(synchronize_session=False)
            ).rowcount
        db.session.refresh(run)
        if taken == 1:
            log.warning("%s %s: took over the run of %s", job, period, run.owner)
            return run
    return RunTaken(job, period, run.owner, run.status)


def finish_run(run: JobRun, status: JobRunStatus, summary: str) -> None:
    with write_transaction():
        db.session.execute(
            sa.update(JobRun).where(JobRun.id == run.id, JobRun.owner == owner_id())
            .values(status=status, finished_at=now_utc(), heartbeat_at=now_utc(),
                    summary=summary[:2000])
            .execution_options(synchronize_session=False)
        )


def beat(run_id: int) -> bool:
    """Write this process's heartbeat on its run, on a connection of its own (the job's
    session may be in the middle of a unit of work that must not be committed by us).
    False when the run is no longer ours (taken over after a silence) or the write lock is
    busy (SQLite; the next beat tries again)."""
    sqlite = dialect_name() == "sqlite"
    try:
        with db.engine.connect() as connection:
            if sqlite:
                # Do not queue behind a long writer: a heartbeat that waits is no heartbeat.
                connection.exec_driver_sql("PRAGMA busy_timeout = 200")
            try:
                beaten = connection.execute(
                    sa.update(JobRun)
                    .where(JobRun.id == run_id, JobRun.owner == owner_id(),
                           JobRun.status == JobRunStatus.RUNNING)
                    .values(heartbeat_at=now_utc())
                ).rowcount == 1
                connection.commit()
            finally:
                if sqlite:  # the pooled connection goes back as it came
                    connection.rollback()
                    connection.exec_driver_sql("PRAGMA busy_timeout = 30000")
                    connection.commit()
    except sa.exc.OperationalError as error:
        log.info("heartbeat of run %s skipped: %s", run_id, error)
        return False
    if not beaten:
        log.warning("run %s is no longer %s's (taken over?)", run_id, owner_id())
    return beaten


def _beating(advance: Callable[[int], None], run_id: int) -> Callable[[int], None]:
    """`advance` that also beats the run's heartbeat every HEARTBEAT_EVERY items."""
    done = 0

    def advance_and_beat(n: int) -> None:
        nonlocal done
        advance(n)
        before, done = done, done + n
        if done // HEARTBEAT_EVERY > before // HEARTBEAT_EVERY:
            beat(run_id)

    return advance_and_beat


def exclusive_run(job: str, period: str, work: Callable[[], R],
                  progress: Any = None) -> R | RunTaken:
    """Run `work()` if this process owns the run of `job` for `period` (or the ledger is
    bypassed with `forced`); record how it ended. With the job's `progress`
    (magazine.jobs.Progress), the run's heartbeat is written as the work advances."""
    if _forced:
        return work()
    run = claim_run(job, period)
    if isinstance(run, RunTaken):
        return run
    if progress is not None:
        progress.advance = _beating(progress.advance, run.id)
    try:
        result = work()
    except BaseException:
        db.session.rollback()
        finish_run(run, JobRunStatus.FAILED, "failed")
        raise
    finish_run(run, JobRunStatus.FINISHED, getattr(result, "summary", lambda: "")())
    return result


# ---------------------------------------------------------------- work keys

def claim_key(key: str, job: str) -> bool:
    """Take the work key `key` in the current transaction; False if it was taken already.
    Commit or roll back together with the work."""
    return db.session.execute(
        insert_ignoring_duplicates(JobClaim)
        .values(key=key, job=job, claimed_at=now_utc())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(JobClaim.key)
    ).first() is not None


# ---------------------------------------------------------------- work rows

def claim_next(model: Any, due: sa.ColumnElement[bool], order_by: Any,
               claim: dict[str, Any]) -> int | None:
    """Claim one due row of `model` for this process and commit: returns its id, or None
    when nothing is due. `claim` holds the values that mark it taken (its status, and
    `claimed_by`/`claimed_at` set here); `due` must stop matching once they are set."""
    values = dict(claim, claimed_by=owner_id(), claimed_at=now_utc())
    with write_transaction():
        select = sa.select(model.id).where(due).order_by(order_by).limit(1)
        if dialect_name() == "postgresql":
            select = select.with_for_update(skip_locked=True)
        row_id = db.session.scalar(select)
        if row_id is None:
            return None
        taken = db.session.execute(
            sa.update(model).where(model.id == row_id, due).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    return row_id if taken == 1 else claim_next(model, due, order_by, claim)


def release_orphans(model: Any, claimed: sa.ColumnElement[bool],
                    release: dict[str, Any]) -> int:
    """Hand back rows claimed by a process that died (on this host) or went silent for
    STALE_AFTER, so the next run finishes their work. Returns how many."""
    rows = db.session.execute(
        sa.select(model.id, model.claimed_by, model.claimed_at).where(claimed)
    ).all()
    db.session.rollback()
    now = now_utc()
    gone = [row.id for row in rows
            if owner_is_gone(row.claimed_by or "")
            or (row.claimed_at is not None and row.claimed_at < now - STALE_AFTER)]
    released = 0
    for row_id, owner in ((row.id, row.claimed_by) for row in rows if row.id in gone):
        with write_transaction():
            released += db.session.execute(
                sa.update(model)
                .where(model.id == row_id, model.claimed_by == owner, claimed)
                .values(**release)
                .execution_options(synchronize_session=False)
            ).rowcount
    if released:
        log.warning("%s: %d rows of a process that died handed back", model.__tablename__,
                    released)
    return released
