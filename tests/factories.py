"""Factories: objects made through the same services the application uses."""

from __future__ import annotations

import itertools

from magazine.auth.services import create_user
from magazine.db import db
from magazine.models import User
from magazine.roles import Role

DEFAULT_PASSWORD = "a-good-long-password"
_numbers = itertools.count(1)


def make_user(
    *, roles: set[Role] | None = None, email: str | None = None, name: str | None = None,
    password: str = DEFAULT_PASSWORD, verified: bool = True, locale: str = "nl_BE",
) -> User:
    number = next(_numbers)
    user = create_user(
        email or f"person{number}@example.org",
        name or f"Persoon {number}",
        password,
        roles=roles or set(),
        verified=verified,
        locale=locale,
    )
    db.session.commit()
    return user
