"""The one mail path: the outbox.

`queue_mail` renders a mail and adds it to the outbox in the caller's transaction, so a mail
exists exactly when the change that causes it is committed. `deliver_outbox` (the `outbox`
job) sends due mails over SMTP, each claimed by a conditional update so that two senders
never send the same row, retries with backoff on temporary failures and marks each row sent
once. Without `MAIL_URL` nothing is sent: mails stay in the outbox and are written to the log.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from flask import current_app, render_template
from flask_babel import force_locale

from magazine.clock import now_utc
from magazine.db import db
from magazine.models import MailStatus, OutboxMail

log = logging.getLogger(__name__)

# A claim older than this is taken to belong to a sender that died mid-way.
STALE_CLAIM = timedelta(minutes=10)
SMTP_TIMEOUT_SECONDS = 20


def template_language(locale: str) -> str:
    return "en" if locale.startswith("en") else "nl"


def render_mail(template: str, locale: str, **context) -> tuple[str, str]:
    """Render `templates/email/<template>.<nl|en>.txt`: a `Subject:` line, a blank line, body."""
    with force_locale(locale):
        text = render_template(f"email/{template}.{template_language(locale)}.txt", **context)
    head, _, body = text.lstrip().partition("\n\n")
    if not head.startswith("Subject:"):
        raise ValueError(f"mail template {template!r} must start with a 'Subject:' line")
    return head.removeprefix("Subject:").strip(), body.strip() + "\n"


def queue_mail(
    to_address: str, template: str, *, key: str, locale: str = "nl_BE", **context
) -> OutboxMail:
    """Add a mail to the outbox in the current transaction; a key already queued adds nothing."""
    return queue_mails([Mail(to_address, template, key, locale, context)])[0]


@dataclass(frozen=True)
class Mail:
    """One mail for `queue_mails` (the arguments of `queue_mail`)."""

    to_address: str
    template: str
    key: str
    locale: str = "nl_BE"
    context: dict = field(default_factory=dict)


def queue_mails(mails: Sequence[Mail]) -> list[OutboxMail]:
    """`queue_mail` for several mails at once: the keys already queued found with one
    statement (a key given twice is queued once). Each one's outbox row, in order."""
    if not mails:
        return []
    keys = sorted({mail.key for mail in mails})
    queued = {row.key: row for row in db.session.scalars(sa.select(OutboxMail).where(
        OutboxMail.key.in_(keys) if len(keys) > 1 else OutboxMail.key == keys[0]))}
    rows = []
    for mail in mails:
        row = queued.get(mail.key)
        if row is None:
            subject, body = render_mail(mail.template, mail.locale, **mail.context)
            row = queued[mail.key] = OutboxMail(
                key=mail.key,
                template=mail.template,
                to_address=mail.to_address,
                subject=subject,
                body_text=body,
                locale=mail.locale,
            )
            db.session.add(row)
            if not current_app.config["MAIL_URL"]:
                log.info("mail queued (MAIL_URL unset, not sent) to=%s subject=%s\n%s",
                         mail.to_address, subject, body)
        rows.append(row)
    return rows


@dataclass
class OutboxResult:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    mail_disabled: bool = False

    def summary(self) -> str:
        if self.mail_disabled:
            return "outbox: MAIL_URL is not set, mails stay in the outbox"
        return f"outbox: {self.sent} sent, {self.retry} failed (retry), {self.failed} given up"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    mode: str  # "plain", "starttls" or "ssl"
    username: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        parts = urlsplit(url)
        modes = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}
        if parts.scheme not in modes or not parts.hostname:
            raise ValueError(
                "MAIL_URL must look like smtp://host:port, smtp+starttls://user:pass@host:587 "
                "or smtps://user:pass@host:465"
            )
        mode = modes[parts.scheme]
        default_port = {"plain": 25, "starttls": 587, "ssl": 465}[mode]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            mode=mode,
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )

    def connect(self) -> smtplib.SMTP:
        if self.mode == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS)
            if self.mode == "starttls":
                conn.starttls(context=ssl.create_default_context())
        if self.username:
            conn.login(self.username, self.password)
        return conn


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after each failed attempt, at most an hour."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


def build_message(mail: OutboxMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    # Derived from the key: a mail sent twice after a crash carries the same Message-ID, so
    # mail clients show it once.
    digest = hashlib.sha256(mail.key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "en" if mail.locale.startswith("en") else "nl-BE"
    message.set_content(mail.body_text)
    return message


def _is_permanent(error: Exception) -> bool:
    code = getattr(error, "smtp_code", None)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in error.recipients.values()]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    return isinstance(code, int) and 500 <= code < 600


def _claim(mail_id: int) -> bool:
    """Take one due mail for this sender; False if another sender took it first."""
    now = now_utc()
    claimed = db.session.execute(
        sa.update(OutboxMail)
        .where(
            OutboxMail.id == mail_id,
            OutboxMail.status == MailStatus.PENDING,
            OutboxMail.next_attempt_at <= now,
        )
        .values(status=MailStatus.SENDING, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _release_stale_claims() -> None:
    db.session.execute(
        sa.update(OutboxMail)
        .where(
            OutboxMail.status == MailStatus.SENDING,
            OutboxMail.claimed_at < now_utc() - STALE_CLAIM,
        )
        .values(status=MailStatus.PENDING)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def deliver_outbox(
    batch_size: int = 200, progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> OutboxResult:
    """Send the due mails of the outbox; each row in its own transaction."""
    result = OutboxResult()
    mail_url = current_app.config["MAIL_URL"]
    if not mail_url:
        result.mail_disabled = True
        return result
    settings = SmtpSettings.from_url(mail_url)
    sender = current_app.config["MAIL_FROM"]
    max_attempts = current_app.config["MAIL_MAX_ATTEMPTS"]

    _release_stale_claims()
    due_ids = db.session.scalars(
        sa.select(OutboxMail.id)
        .where(OutboxMail.status == MailStatus.PENDING, OutboxMail.next_attempt_at <= now_utc())
        .order_by(OutboxMail.id)
        .limit(batch_size)
    ).all()
    db.session.rollback()
    if on_start:
        on_start(len(due_ids))

    connection: smtplib.SMTP | None = None
    try:
        for mail_id in due_ids:
            if progress:
                progress(1)
            if not _claim(mail_id):
                continue
            mail = db.session.get(OutboxMail, mail_id)
            try:
                if connection is None:
                    connection = settings.connect()
                connection.send_message(build_message(mail, sender))
            except (smtplib.SMTPException, OSError) as error:
                answered = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)
                if not isinstance(error, answered):
                    # The connection itself broke: open a fresh one for the next mail.
                    connection = _close_quietly(connection)
                mail.attempts += 1
                mail.last_error = f"{type(error).__name__}: {error}"[:2000]
                if _is_permanent(error) or mail.attempts >= max_attempts:
                    mail.status = MailStatus.FAILED
                    result.failed += 1
                    log.error("mail %s given up after %s attempts: %s",
                              mail.id, mail.attempts, error)
                else:
                    mail.status = MailStatus.PENDING
                    mail.next_attempt_at = now_utc() + retry_delay(mail.attempts)
                    result.retry += 1
                    log.warning("mail %s not sent (attempt %s), will retry: %s",
                                mail.id, mail.attempts, error)
            else:
                mail.attempts += 1
                mail.status = MailStatus.SENT
                mail.sent_at = now_utc()
                mail.last_error = ""
                result.sent += 1
            db.session.commit()
    finally:
        _close_quietly(connection)
    return result


def _close_quietly(connection: smtplib.SMTP | None) -> None:
    if connection is None:
        return None
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.quit()
    return None
