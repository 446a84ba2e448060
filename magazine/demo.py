"""Demo data (`flask --app wsgi demo load`): one account per role and sample content.

The contract: every role has `<role>@demo.example` with password `demo-password`. Loading
twice changes nothing: what exists already is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magazine.auth.services import create_user, find_user_by_email
from magazine.db import db
from magazine.roles import Role

DEMO_PASSWORD = "demo-password"  # nosec B105 # the documented demo logins (DESIGN.md contract)

# Flemish names for the demo people; the role is what the login says.
DEMO_PEOPLE = {
    Role.ADMIN: "An Peeters",
    Role.EDITOR_IN_CHIEF: "Katrien Wouters",
    Role.BOARD_MEMBER: "Jonas Claes",
    Role.COPY_EDITOR: "Leen Maes",
    Role.AUTHOR: "Fatima El Amrani",
    Role.REVIEWER: "Pieter Janssens",
    Role.COORDINATOR: "Sofie Willems",
    Role.SUBSCRIBER: "Ellen Verstraeten",
}


@dataclass
class DemoResult:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"demo: {len(self.created)} created, {len(self.kept)} already there"


def demo_email(role: Role) -> str:
    return f"{role.value}@demo.example"


def load_demo() -> DemoResult:
    result = DemoResult()
    for role, name in DEMO_PEOPLE.items():
        email = demo_email(role)
        if find_user_by_email(email) is not None:
            result.kept.append(email)
            continue
        create_user(email, name, DEMO_PASSWORD, roles={role}, verified=True)
        result.created.append(email)
    db.session.commit()
    from editorial.demo import load_editorial_demo

    load_editorial_demo()
    # The issues dispatched before the editorial demo's, before the subscribers use them.
    from business.demo import load_past_issues

    load_past_issues()
    # After the editorial demo: subscriptions start with its upcoming issues.
    from subscriptions.demo import load_subscriptions_demo

    load_subscriptions_demo()
    # After the subscriptions demo: the year before it, and the monthly business figures.
    from business.demo import load_business_demo

    load_business_demo()
    return result
