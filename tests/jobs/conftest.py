"""Fixtures of the jobs tests: a coordinator, plans of each kind, two issues in a row."""

from __future__ import annotations

from datetime import date

import pytest

from editorial.models import IssueState
from magazine.roles import Role
from subscriptions.models import PlanKind
from tests.factories import make_issue, make_user
from tests.subscriptions.factories import make_plan


@pytest.fixture
def world(app_context):
    class World:
        pass

    w = World()
    w.print_plan = make_plan(kind=PlanKind.PRINT, code="papier", issues=5, price_cents=6500)
    w.digital_plan = make_plan(kind=PlanKind.DIGITAL, code="digitaal", issues=5,
                               price_cents=4500)
    w.both_plan = make_plan(kind=PlanKind.PRINT_DIGITAL, code="papier-digitaal", issues=5,
                            price_cents=7500)
    w.org_plan = make_plan(kind=PlanKind.ORGANISATION, code="organisatie", issues=5,
                           price_cents=6000, bands=[(5, 5000)])
    w.issue = make_issue(volume=3, number=2, print_date=date(2027, 1, 15),
                         state=IssueState.AT_PRINTER, theme="Taal")
    w.next_issue = make_issue(volume=3, number=3, print_date=date(2027, 3, 15))
    w.coordinator = make_user(roles={Role.COORDINATOR}, email="coordinator@example.org")
    return w


@pytest.fixture
def testpay(monkeypatch):
    """The `testpay` provider, registered for this test."""
    from subscriptions.providers import PROVIDERS
    from tests.jobs.fakepay import FakePay

    provider = FakePay()
    monkeypatch.setitem(PROVIDERS, "testpay", provider)
    return provider


@pytest.fixture
def mandate_for(app_context):
    from magazine.db import db
    from subscriptions.models import Mandate

    def make(user, provider: str = "testpay", ref: str | None = None) -> Mandate:
        mandate = Mandate(user_id=user.id, provider=provider, customer_ref=f"cst_{user.id}",
                          mandate_ref=ref or f"mdt_{user.id}", method="directdebit",
                          label="IBAN •••• 6769")
        db.session.add(mandate)
        db.session.commit()
        return mandate

    return make
