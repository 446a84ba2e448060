"""Access checks, safe redirects, client addresses and the security headers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, abort, request
from flask_login import current_user, login_required

from magazine.roles import ADMIN_ROLES, Role


def roles_required(roles: Iterable[Role]) -> Callable:
    """Log in first (anonymous: to the login page), then hold one of `roles` (else 403)."""
    allowed = frozenset(roles) | ADMIN_ROLES

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.has_any_role(allowed):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None.

    Refuses `//host` and `/\\host` (browsers treat both as another host), any scheme or host,
    and control characters (which browsers strip, turning `/\\t/host` into `//host`)."""
    if not target or not target.startswith("/"):
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target) or "\\" in target:
        return None
    if target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def client_address() -> str:
    """The client's address; behind a proxy, ProxyFix (PROXY_HOPS) has set remote_addr."""
    return request.remote_addr or "unknown"


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# The headers every response gets unless it set its own, as (name, value) pairs built once:
# this runs on every request.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HSTS_HEADER = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
# Pages can hold personal data: never keep them in shared caches.
NO_STORE_HEADER = ("Cache-Control", "no-store")


def install_security_headers(app: Flask) -> None:
    defaults = SECURITY_HEADERS + ((HSTS_HEADER,) if app.config["SESSION_COOKIE_SECURE"]
                                   else ())
    page_defaults = (*defaults, NO_STORE_HEADER)

    @app.before_request
    def _refuse_nul_characters():
        # No browser puts a NUL character in a URL or a form, and PostgreSQL cannot store one
        # in a text column (the whole request would fail with a 500): a bad request, at once.
        # The query's values hold one only if its raw text has `%00` or a NUL byte (UTF-8
        # decoding makes no NUL of anything else): the arguments are parsed only then.
        query = request.query_string
        fields = [request.args] if b"%00" in query or b"\x00" in query else []
        if "form" in request.environ.get("CONTENT_TYPE", "").lower() \
                and request.mimetype in FORM_TYPES:  # (parsed only when it can be a form)
            fields.append(request.form)
        if any("\x00" in value for multi in fields for _, values in multi.lists()
               for value in values):
            abort(400)

    @app.after_request
    def _headers(response):
        headers = response.headers
        endpoint = request.endpoint
        wanted = page_defaults if endpoint and not endpoint.endswith("static") else defaults
        present = {name.lower() for name, _ in headers}
        for name, value in wanted:
            if name.lower() not in present:
                headers.add(name, value)
        return response
