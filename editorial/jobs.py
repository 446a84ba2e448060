"""The `deadline-reminders` job: a mail to each responsible person a set number of days
before and after each due date (REMINDER_DAYS_BEFORE / REMINDER_DAYS_AFTER).

Once per deadline: the mail's outbox key names the work, its due date and before/after, and
the outbox keeps keys unique, so a rerun, a second scheduler or a crash halfway sends
nothing twice. A moved deadline is a new deadline and gets its own reminders. Each reminder
is queued in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from editorial.overview import WorkItem, due_work
from editorial.services import INFO_LINK_DAYS, new_link, today_local
from magazine.db import db
from magazine.jobs import JobResult, Progress, brussels_cron, register_job
from magazine.mail import queue_mail
from magazine.models import OutboxMail
from magazine.urls import external_url

# Work whose due date belongs to a person who should be reminded.
REMINDED_KINDS = frozenset({"write", "revise", "approve", "read", "production"})


@dataclass
class ReminderResult:
    sent: int = 0
    already: int = 0

    def summary(self) -> str:
        return f"deadline-reminders: {self.sent} sent, {self.already} already sent"


def reminder_key(item: WorkItem, moment: str) -> str:
    return f"editorial:reminder:{item.key}:{item.email}:{item.due.isoformat()}:{moment}"


def _link(item: WorkItem) -> str:
    values = dict(item.values)
    if item.kind == "read" and item.person is None:
        # An external reader has no account: a fresh link to their own reading.
        from editorial.models import LinkPurpose

        token = new_link(LinkPurpose.REVIEW, int(item.key.split(":")[1]),
                          days=INFO_LINK_DAYS)
        return external_url("editorial_public.review", token=token)
    return external_url(item.endpoint, **values)


def send_deadline_reminders(progress: Progress | None = None) -> ReminderResult:
    progress = progress or Progress()
    today = today_local()
    before = timedelta(days=current_app.config["REMINDER_DAYS_BEFORE"])
    after = timedelta(days=current_app.config["REMINDER_DAYS_AFTER"])
    due: list[tuple[WorkItem, str]] = []
    for item in due_work():
        if item.kind not in REMINDED_KINDS or item.due is None or not item.email:
            continue
        if item.due - before <= today < item.due:
            due.append((item, "before"))
        elif today >= item.due + after:
            due.append((item, "after"))
    db.session.rollback()
    result = ReminderResult()
    progress.start(len(due))
    for item, moment in due:
        progress.advance(1)
        key = reminder_key(item, moment)
        if db.session.scalar(sa.select(OutboxMail.id).where(OutboxMail.key == key)):
            result.already += 1
            continue
        locale = item.person.locale if item.person else "nl_BE"
        try:
            mail = queue_mail(item.email, "editorial_reminder", key=key, locale=locale,
                              item=item, name=item.name, overdue=moment == "after",
                              url=_link(item), days=(item.due - today).days)
            if mail not in db.session.new:
                # Queued by another scheduler between our check and now.
                db.session.rollback()
                result.already += 1
                continue
            db.session.commit()
        except sa.exc.IntegrityError:
            # Another scheduler queued the same reminder a moment ago.
            db.session.rollback()
            result.already += 1
        else:
            result.sent += 1
    return result


@register_job("deadline-reminders", brussels_cron(hour=7, minute=30),
              "mail editorial deadline reminders (before and after each due date)")
def deadline_reminders_job(progress: Progress) -> JobResult:
    return send_deadline_reminders(progress)


@dataclass
class HousekeepingResult:
    back_on_agenda: int = 0
    unconfirmed_removed: int = 0
    links_removed: int = 0

    def summary(self) -> str:
        return (f"editorial-housekeeping: {self.back_on_agenda} deferred proposals back on "
                f"the agenda, {self.unconfirmed_removed} unconfirmed proposals and "
                f"{self.links_removed} old links removed")


def editorial_housekeeping(progress: Progress | None = None) -> HousekeepingResult:
    """Deferred pitches whose date has come go back on the agenda (each in its own
    transaction, moved by the system); public pitches never confirmed are removed once their
    link has expired (a stranger's name and address are not kept for nothing); links that
    expired a month ago are removed."""
    from editorial.models import MagicLink, Pitch, PitchState
    from editorial.services import CONFIRM_LINK_DAYS, move_pitch
    from magazine.clock import now_utc
    from magazine.errors import DomainError

    progress = progress or Progress()
    result = HousekeepingResult()
    today = today_local()
    due = db.session.scalars(sa.select(Pitch.id).where(
        Pitch.state == PitchState.DEFERRED, Pitch.deferred_until <= today)).all()
    progress.start(len(due) + 2)
    for pitch_id in due:
        progress.advance(1)
        pitch = db.session.get(Pitch, pitch_id)
        try:
            move_pitch(pitch, PitchState.ON_AGENDA, actor=None,
                       note=f"{pitch.deferred_until:%d-%m-%Y}")
            db.session.commit()
            result.back_on_agenda += 1
        except DomainError:
            db.session.rollback()  # moved by someone else meanwhile
    cutoff = now_utc() - timedelta(days=CONFIRM_LINK_DAYS + 1)
    result.unconfirmed_removed = db.session.execute(
        sa.delete(Pitch).where(Pitch.is_public.is_(True), Pitch.confirmed_at.is_(None),
                               Pitch.created_at < cutoff)
        .execution_options(synchronize_session=False)).rowcount
    progress.advance(1)
    result.links_removed = db.session.execute(
        sa.delete(MagicLink).where(MagicLink.expires_at < now_utc() - timedelta(days=30))
        .execution_options(synchronize_session=False)).rowcount
    progress.advance(1)
    db.session.commit()
    return result


@register_job("editorial-housekeeping", brussels_cron(hour=4, minute=37),
              "deferred proposals back on the agenda; remove unconfirmed proposals, old links")
def editorial_housekeeping_job(progress: Progress) -> JobResult:
    return editorial_housekeeping(progress)
