"""Scheduled jobs: one registry read by the scheduler process and by `jobs run NAME`.

APScheduler runs in its own process (`flask --app wsgi scheduler`), never inside web
workers, and holds no guarantee of its own: every job claims its rows in the database, so a
second scheduler, a crash or a rerun never does the same work twice.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from magazine.clock import BRUSSELS

log = logging.getLogger(__name__)


class JobResult(Protocol):
    def summary(self) -> str: ...


@dataclass
class Progress:
    """What a job reports while it runs: how many rows it will handle, and each one done."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[int], None] = lambda n: None


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Progress], JobResult]
    trigger: BaseTrigger
    description: str = ""


JOBS: dict[str, Job] = {}


def brussels_cron(**fields) -> CronTrigger:
    """A cron trigger read in Brussels time (APScheduler would otherwise take the machine's
    zone for a trigger made before the scheduler exists)."""
    return CronTrigger(timezone=BRUSSELS, **fields)


def register_job(name: str, trigger: BaseTrigger, description: str = "") -> Callable:
    def decorator(function: Callable[[Progress], JobResult]) -> Callable[[Progress], JobResult]:
        JOBS[name] = Job(name=name, run=function, trigger=trigger, description=description)
        return function

    return decorator


@register_job("outbox", IntervalTrigger(seconds=30), "send the mails waiting in the outbox")
def outbox_job(progress: Progress) -> JobResult:
    from magazine.mail import deliver_outbox

    return deliver_outbox(progress=progress.advance, on_start=progress.start)


@dataclass
class HousekeepingResult:
    login_attempts: int = 0
    sessions: int = 0

    def summary(self) -> str:
        return (f"housekeeping: {self.login_attempts} old login attempts and "
                f"{self.sessions} ended sessions removed")


@register_job("housekeeping", brussels_cron(hour=4, minute=17),
              "remove old login attempts and ended sessions")
def housekeeping_job(progress: Progress) -> JobResult:
    """Login attempts matter only inside the throttle window, ended sessions not at all;
    keeping them would only keep personal data (addresses, browsers) longer than needed."""
    import sqlalchemy as sa

    from magazine.clock import now_utc
    from magazine.db import db
    from magazine.models import LoginAttempt, UserSession

    now = now_utc()
    result = HousekeepingResult()
    result.login_attempts = db.session.execute(
        sa.delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1))
    ).rowcount
    result.sessions = db.session.execute(
        sa.delete(UserSession).where(
            sa.or_(UserSession.expires_at < now - timedelta(days=1),
                   UserSession.revoked_at < now - timedelta(days=1))
        )
    ).rowcount
    db.session.commit()
    return result


@dataclass
class SchedulerRun:
    scheduler: BlockingScheduler
    jobs: list[str] = field(default_factory=list)


def build_scheduler(app: Flask) -> SchedulerRun:
    scheduler = BlockingScheduler(timezone=BRUSSELS)
    run = SchedulerRun(scheduler)

    def runner(job: Job) -> Callable[[], Any]:
        def run_in_app() -> None:
            with app.app_context():
                try:
                    result = job.run(Progress())
                    log.info("%s", result.summary())
                except Exception:  # a failing job must not stop the scheduler
                    log.exception("job %s failed", job.name)
                finally:
                    from magazine.db import db

                    db.session.remove()

        return run_in_app

    for job in JOBS.values():
        scheduler.add_job(
            runner(job), job.trigger, id=job.name, name=job.name,
            max_instances=1, coalesce=True, misfire_grace_time=300,
        )
        run.jobs.append(job.name)
    return run


def run_scheduler(app: Flask) -> None:
    run = build_scheduler(app)

    def stop(signum, _frame):
        log.info("scheduler stopping (signal %s)", signum)
        run.scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler starting with jobs: %s", ", ".join(run.jobs))
    run.scheduler.start()
