"""Accounts: registration, verification, login with throttling, server-side sessions,
password reset and change, and roles. Views call these; they flush, the caller commits."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from magazine import audit
from magazine.clock import now_utc
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.mail import queue_mail
from magazine.models import LoginAttempt, User, UserRole, UserSession
from magazine.pagecache import stamps_query_columns
from magazine.roles import ROLE_LABELS, Role
from magazine.urls import external_url

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128

# A few of the passwords people pick most; ASVS asks to refuse the common ones.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890", "12345678910", "0123456789", "qwertyuiop", "azertyuiop",
        "password12", "password123", "passwoord1", "wachtwoord", "wachtwoord1",
        "wachtwoord123", "welkom1234", "welkom12345", "iloveyou12", "aaaaaaaaaa",
        "abcdefghij", "abc1234567", "kinderopvang", "kinderopvang1", "letmein123",
    }
)


class Throttled(DomainError):
    pass


class NotVerified(DomainError):
    pass


# ---------------------------------------------------------------- passwords and tokens

def _hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config["PASSWORD_TIME_COST"], memory_cost=config["PASSWORD_MEMORY_COST"]
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password_rules(password: str, *, email: str = "", field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(
            _("Choose a password of at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            field=field,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DomainError(
            _("A password can have at most %(n)d characters.", n=MAX_PASSWORD_LENGTH),
            field=field,
        )
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or (email and lowered == email.lower()):
        raise DomainError(_("This password is too easy to guess. Choose another."), field=field)


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        # Spend the same time as a real check, so timing does not tell who has an account.
        with contextlib.suppress(VerificationError, InvalidHashError):
            _hasher().verify(_dummy_hash(), password)
        return False
    try:
        _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


_DUMMY_HASHES: dict[tuple[int, int], str] = {}


def _dummy_hash() -> str:
    key = (current_app.config["PASSWORD_TIME_COST"], current_app.config["PASSWORD_MEMORY_COST"])
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[key]


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"magazine.{purpose}")


def _password_fingerprint(user: User) -> str:
    # Part of a reset token: once the password changes, every older reset link is dead.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def make_verification_token(user: User) -> str:
    return _serializer("verify").dumps({"uid": user.id, "email": user.email})


def make_reset_token(user: User, purpose: str = "reset") -> str:
    return _serializer(purpose).dumps({"uid": user.id, "pw": _password_fingerprint(user)})


def _read_token(purpose: str, token: str, max_age: int) -> dict:
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise DomainError(_("This link has expired. Ask for a new one.")) from exc
    except BadSignature as exc:
        raise DomainError(_("This link is not valid. Ask for a new one.")) from exc
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        raise DomainError(_("This link is not valid. Ask for a new one."))
    return data


# ---------------------------------------------------------------- registration

def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def create_user(
    email: str, name: str, password: str, *, roles: set[Role] | frozenset[Role] = frozenset(),
    locale: str = "nl_BE", verified: bool = False, actor: User | None = None,
) -> User:
    email = normalize_email(email)
    if find_user_by_email(email) is not None:
        raise DomainError(_("There is already an account with this e-mail address."), field="email")
    check_password_rules(password, email=email)
    user = User(
        email=email,
        name=name.strip(),
        password_hash=hash_password(password),
        locale=locale,
        email_verified_at=now_utc() if verified else None,
    )
    db.session.add(user)
    db.session.flush()
    for role in sorted(roles):
        user.role_rows.append(UserRole(role=role, granted_by_id=actor.id if actor else None))
    audit.record("user.created", "user", user.id, actor=actor, roles=sorted(roles))
    db.session.flush()
    return user


def register(email: str, name: str, password: str, *, locale: str) -> User | None:
    """Register a subscriber account and mail the verification link.

    An address that already has an account gets a mail saying so instead, and the caller
    shows the same message either way: the form must not tell who has an account.
    """
    email = normalize_email(email)
    existing = find_user_by_email(email)
    if existing is not None:
        check_password_rules(password, email=email)
        queue_mail(
            existing.email, "account_exists",
            key=f"account-exists:{existing.id}:{now_utc().isoformat()}",
            locale=existing.locale, user=existing,
            login_url=external_url("auth.login"),
            reset_url=external_url("auth.forgot_password"),
        )
        return None
    user = create_user(email, name, password, roles={Role.SUBSCRIBER}, locale=locale)
    send_verification(user)
    return user


def send_verification(user: User) -> None:
    queue_mail(
        user.email, "verify_email",
        key=f"verify:{user.id}:{now_utc().isoformat()}",
        locale=user.locale, user=user,
        verify_url=external_url("auth.verify_email", token=make_verification_token(user)),
        valid_days=current_app.config["TOKEN_MAX_AGE_VERIFY"] // 86400,
    )


def resend_verification(email: str) -> None:
    user = find_user_by_email(email)
    if user is not None and not user.is_verified:
        send_verification(user)


def verify_email(token: str) -> User:
    data = _read_token("verify", token, current_app.config["TOKEN_MAX_AGE_VERIFY"])
    user = db.session.get(User, data["uid"])
    if user is None or user.email != data.get("email"):
        raise DomainError(_("This link is not valid. Ask for a new one."))
    if user.email_verified_at is None:
        user.email_verified_at = now_utc()
        audit.record("user.verified", "user", user.id, actor=user)
    return user


# ---------------------------------------------------------------- login and sessions

def _too_many_failures(column, value: str, limit: int) -> bool:
    since = now_utc() - timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    failures = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(LoginAttempt)
        .where(column == value, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False))
    )
    return failures >= limit


def authenticate(email: str, password: str, *, client_address: str) -> User:
    """Check a login. Too many failures for the account or from the address refuse it for a
    while, with the same message whether the account exists or not."""
    email = normalize_email(email)
    config = current_app.config
    if _too_many_failures(
        LoginAttempt.email, email, config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    ) or _too_many_failures(
        LoginAttempt.client_address, client_address, config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    ):
        minutes = config["LOGIN_WINDOW_SECONDS"] // 60
        raise Throttled(
            ngettext("Too many failed attempts. Wait %(num)d minute and try again.",
                     "Too many failed attempts. Wait %(num)d minutes and try again.", minutes)
        )
    user = find_user_by_email(email)
    ok = _password_matches(user, password)
    db.session.add(LoginAttempt(email=email, client_address=client_address, succeeded=ok))
    if not ok:
        raise DomainError(_("The e-mail address or the password is not right."))
    if user.is_blocked:
        raise DomainError(_("This account is blocked. Contact the editors."))
    if not user.is_verified:
        raise NotVerified(
            _("Confirm your e-mail address first: follow the link in the mail we sent you.")
        )
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User, *, client_address: str, user_agent: str) -> str:
    """A new server-side session; returns the token that goes into the cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(
            token_hash=_hash_token(token),
            user_id=user.id,
            expires_at=now_utc() + timedelta(days=current_app.config["SESSION_LIFETIME_DAYS"]),
            client_address=client_address[:64],
            user_agent=user_agent[:300],
        )
    )
    user.session_token = token
    audit.record("user.login", "user", user.id, actor=user, address=client_address)
    return token


@functools.cache
def _session_query() -> sa.Select:
    # Built once: building it (and its scalar subqueries) cost more than running it.
    return sa.select(UserSession, *stamps_query_columns()).where(
        UserSession.token_hash == sa.bindparam("token_hash"),
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > sa.bindparam("now"),
    ).options(sa.orm.joinedload(UserSession.user, innerjoin=True).joinedload(User.role_rows))


def load_session(token: str) -> User | None:
    # Every logged-in request: the session, its user, the user's roles and the validity
    # stamps of the user's cached pages (magazine.pagecache) in one statement.
    token_hash = _hash_token(token)
    row = db.session.execute(
        _session_query(), {"token_hash": token_hash, "now": now_utc()}
    ).unique().one_or_none()
    if row is None:
        return None
    session_row, user_stamp, global_stamp = row
    user = session_row.user
    user.session_token = token
    user.session_token_hash = token_hash
    user.page_stamps = (user_stamp, global_stamp)
    return user


def end_session(token: str) -> None:
    db.session.execute(
        sa.update(UserSession)
        .where(UserSession.token_hash == _hash_token(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=now_utc())
    )


def revoke_sessions(user: User) -> None:
    db.session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now_utc())
    )


# ---------------------------------------------------------------- passwords

def request_password_reset(email: str) -> None:
    """Mail a reset link if the address has an account; say nothing either way."""
    user = find_user_by_email(email)
    if user is None:
        return
    queue_mail(
        user.email, "reset_password",
        key=f"reset:{user.id}:{now_utc().isoformat()}",
        locale=user.locale, user=user,
        reset_url=external_url("auth.reset_password", token=make_reset_token(user)),
        valid_minutes=current_app.config["TOKEN_MAX_AGE_RESET"] // 60,
    )


def _set_password(user: User, password: str, *, actor: User, how: str) -> None:
    check_password_rules(password, email=user.email)
    user.password_hash = hash_password(password)
    user.password_changed_at = now_utc()
    revoke_sessions(user)
    audit.record("user.password_changed", "user", user.id, actor=actor, how=how)
    queue_mail(
        user.email, "password_changed",
        key=f"password-changed:{user.id}:{user.password_changed_at.isoformat()}",
        locale=user.locale, user=user, reset_url=external_url("auth.forgot_password"),
    )


def check_reset_token(token: str, purpose: str = "reset") -> User:
    """The user a reset (or invitation) link is for; refuses expired and used links."""
    setting = "TOKEN_MAX_AGE_RESET" if purpose == "reset" else "TOKEN_MAX_AGE_INVITE"
    max_age = current_app.config[setting]
    data = _read_token(purpose, token, max_age)
    user = db.session.get(User, data["uid"])
    fingerprint = str(data.get("pw", ""))
    if user is None or not hmac.compare_digest(fingerprint, _password_fingerprint(user)):
        # The password changed since the link was made: the link was used already.
        raise DomainError(_("This link has been used already. Ask for a new one."))
    return user


def reset_password(token: str, password: str, purpose: str = "reset") -> User:
    """Set a new password from a reset or invitation link; the link works once; all
    sessions end. Following the link proves the address, so the account becomes verified."""
    user = check_reset_token(token, purpose)
    _set_password(user, password, actor=user, how=purpose)
    if user.email_verified_at is None:
        user.email_verified_at = now_utc()
    return user


def invite_user(
    email: str, name: str, roles: set[Role] | frozenset[Role], *, actor: User | None,
    message: str = "",
) -> User:
    """Make an account for someone (a board member, an author) and mail them a link to
    choose their password. The account has no usable password until they do."""
    user = create_user(
        email, name, secrets.token_urlsafe(32), roles=roles, locale="nl_BE", actor=actor
    )
    queue_mail(
        user.email, "invitation", key=f"invite:{user.id}", locale=user.locale,
        user=user, inviter=actor, message=message,
        roles=[ROLE_LABELS[role] for role in sorted(roles)],
        invite_url=external_url(
            "auth.accept_invitation", token=make_reset_token(user, "invite")
        ),
        valid_days=current_app.config["TOKEN_MAX_AGE_INVITE"] // 86400,
    )
    return user


def change_password(user: User, current: str, new: str) -> None:
    """Change one's own password; every session ends (the caller starts a new one)."""
    if not _password_matches(user, current):
        raise DomainError(_("Your current password is not right."), field="current_password")
    if current == new:
        raise DomainError(_("Choose a password that differs from the current one."),
                          field="password")
    _set_password(user, new, actor=user, how="change")


def set_locale(user: User, locale: str) -> None:
    user.locale = locale


def update_name(user: User, name: str) -> None:
    name = name.strip()
    if not name:
        raise DomainError(_("Fill in your name."), field="name")
    if name != user.name:
        audit.record("user.renamed", "user", user.id, actor=user, old=user.name, new=name)
        user.name = name


def request_email_change(user: User, new_email: str, password: str) -> None:
    """Mail a confirmation link to the new address; the change happens when it is followed.
    The current password is asked because the address is where password resets go."""
    new_email = normalize_email(new_email)
    if not _password_matches(user, password):
        raise DomainError(_("Your current password is not right."), field="password")
    if new_email == user.email:
        raise DomainError(_("This is your current address already."), field="email")
    if find_user_by_email(new_email) is not None:
        raise DomainError(
            _("There is already an account with this e-mail address."), field="email"
        )
    token = _serializer("email-change").dumps({"uid": user.id, "old": user.email,
                                                "new": new_email})
    queue_mail(
        new_email, "confirm_email_change",
        key=f"email-change:{user.id}:{now_utc().isoformat()}",
        locale=user.locale, user=user, new_email=new_email,
        confirm_url=external_url("auth.confirm_email_change", token=token),
        valid_days=current_app.config["TOKEN_MAX_AGE_VERIFY"] // 86400,
    )


def confirm_email_change(token: str) -> User:
    """Switch to the new address (once: the link names the old one) and tell the old one."""
    data = _read_token("email-change", token, current_app.config["TOKEN_MAX_AGE_VERIFY"])
    user = db.session.get(User, data["uid"])
    if user is None or user.email != data.get("old"):
        raise DomainError(_("This link has been used already. Ask for a new one."))
    new_email = str(data.get("new", ""))
    if find_user_by_email(new_email) is not None:
        raise DomainError(_("There is already an account with this e-mail address."))
    old_email = user.email
    user.email = new_email
    user.email_verified_at = now_utc()
    audit.record("user.email_changed", "user", user.id, actor=user, old=old_email, new=new_email)
    queue_mail(
        old_email, "email_changed",
        key=f"email-changed:{user.id}:{now_utc().isoformat()}",
        locale=user.locale, user=user, new_email=new_email,
        reset_url=external_url("auth.forgot_password"),
    )
    return user


# ---------------------------------------------------------------- roles

@dataclass(frozen=True)
class RoleChange:
    granted: frozenset[Role]
    removed: frozenset[Role]


def set_roles(user: User, roles: set[Role] | frozenset[Role], *, actor: User) -> RoleChange:
    """Give `user` exactly `roles`. Only an admin may; the last admin keeps the admin role."""
    if not actor.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only an administrator can change roles."))
    roles = frozenset(roles)
    current = user.roles
    granted, removed = roles - current, current - roles
    if Role.ADMIN in removed:
        admins = db.session.scalar(
            sa.select(sa.func.count()).select_from(UserRole).where(UserRole.role == Role.ADMIN)
        )
        if admins <= 1:
            raise DomainError(_("There must always be at least one administrator."), field="roles")
    for row in list(user.role_rows):
        if row.role in removed:
            user.role_rows.remove(row)
    for role in sorted(granted):
        user.role_rows.append(UserRole(role=role, granted_by_id=actor.id))
    if granted or removed:
        audit.record(
            "user.roles_changed", "user", user.id, actor=actor,
            granted=sorted(granted), removed=sorted(removed),
        )
    db.session.flush()
    return RoleChange(granted=granted, removed=removed)


def set_blocked(user: User, blocked: bool, *, actor: User) -> None:
    if not actor.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only an administrator can block accounts."))
    if user.id == actor.id and blocked:
        raise DomainError(_("You cannot block your own account."))
    if user.is_blocked == blocked:
        return
    user.is_blocked = blocked
    if blocked:
        revoke_sessions(user)
    audit.record("user.blocked" if blocked else "user.unblocked", "user", user.id, actor=actor)
