"""Accounts, sessions, audit log and the mail outbox."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.roles import Role


def str_enum(enum_class: type[enum.Enum], length: int = 32) -> sa.Enum:
    """An enum stored by its value as a plain string column (no database enum type)."""
    return sa.Enum(
        enum_class,
        values_callable=lambda members: [member.value for member in members],
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
    )


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    locale: Mapped[str] = mapped_column(sa.String(8), default="nl_BE")
    is_blocked: Mapped[bool] = mapped_column(default=False)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        lazy="selectin",
        foreign_keys="UserRole.user_id",
    )

    # Flask-Login: the id we put in the cookie is the server-side session's token, so that a
    # revoked session stops working even if someone kept a copy of the cookie.
    session_token = None

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(row.role for row in self.role_rows)

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def has_any_role(self, roles: frozenset[Role] | set[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    # Flask-Login's user protocol.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return not self.is_blocked

    def get_id(self) -> str | None:
        return self.session_token

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class UserRole(db.Model):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(str_enum(Role), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    granted_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    user: Mapped[User] = relationship(back_populates="role_rows", foreign_keys=[user_id])


class UserSession(db.Model):
    """A login. The cookie carries the token; we keep only its hash."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(300), default="")

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class LoginAttempt(db.Model):
    """Failed and successful logins, read by the throttle (per account and per address)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.Index("ix_login_attempts_email_at", "email", "at"),
        sa.Index("ix_login_attempts_address_at", "client_address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    client_address: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    succeeded: Mapped[bool] = mapped_column(default=False)


class AuditEvent(db.Model):
    """Who did what to which object, and when. Written by every service that changes state."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(64))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    object_id: Mapped[str] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    actor: Mapped[User | None] = relationship()


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMail(db.Model):
    """One mail to send. Written in the same transaction as the change that causes it."""

    __tablename__ = "outbox_mails"
    __table_args__ = (sa.Index("ix_outbox_mails_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # What this mail is about, unique: the same event never queues the same mail twice.
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    template: Mapped[str] = mapped_column(sa.String(100))
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body_text: Mapped[str] = mapped_column(sa.Text)
    locale: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[MailStatus] = mapped_column(str_enum(MailStatus), default=MailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class JobRunStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class JobRun(db.Model):
    """The run ledger: one row per job and period (e.g. `renewals` on 2026-11-25), unique,
    so that of several schedulers exactly one process owns each run (see magazine.jobruns).
    `owner` is `host:pid`; a run whose owner died is taken over by the next one."""

    __tablename__ = "job_runs"
    __table_args__ = (sa.UniqueConstraint("job", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(64))
    period: Mapped[str] = mapped_column(sa.String(64))
    owner: Mapped[str] = mapped_column(sa.String(160))
    status: Mapped[JobRunStatus] = mapped_column(str_enum(JobRunStatus),
                                                 default=JobRunStatus.RUNNING)
    attempts: Mapped[int] = mapped_column(default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(sa.Text, default="")


class JobClaim(db.Model):
    """One piece of work done once, by its key (e.g. `renewal-reminder:12:3:last-issue`).

    Inserted in the same transaction as the work itself: a concurrent insert of the same key
    waits for the first transaction and then inserts nothing, and a rolled-back piece of
    work gives its key back."""

    __tablename__ = "job_claims"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
