"""Factories: objects made through the same services the application uses."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from editorial.models import Issue, IssueState
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


def make_issue(
    *, volume: int = 1, number: int | None = None, print_date: date | None = None,
    state: IssueState = IssueState.PLANNED, theme: str = "", page_budget: int = 32,
) -> Issue:
    """An issue with deadlines a few weeks before its print date (the editorial services
    derive real ones from configurable offsets)."""
    number = number if number is not None else next(_numbers)
    print_date = print_date or date(2027, 1, 15)
    issue = Issue(
        volume=volume, number=number, theme=theme, state=state, page_budget=page_budget,
        print_date=print_date,
        copy_deadline=print_date - timedelta(days=42),
        board_meeting=print_date - timedelta(days=35),
        layout_deadline=print_date - timedelta(days=28),
        proof_deadline=print_date - timedelta(days=14),
        printer_deadline=print_date - timedelta(days=7),
        dispatch_cutoff=print_date - timedelta(days=5),
    )
    db.session.add(issue)
    db.session.commit()
    return issue
