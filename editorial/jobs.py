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
from editorial.services import INFO_LINK_DAYS, _new_link, today_local
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

        token = _new_link(LinkPurpose.REVIEW, int(item.key.split(":")[1]),
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
