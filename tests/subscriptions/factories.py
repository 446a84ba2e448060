"""Factories for the subscriptions tests: plans, promo codes and placed orders, made
through the services the application uses."""

from __future__ import annotations

import itertools

from magazine.db import db
from magazine.models import User
from subscriptions import services
from subscriptions.models import Plan, PlanKind, PromoCode, PromoKind

_numbers = itertools.count(1)


def make_plan(
    *, kind: PlanKind = PlanKind.PRINT_DIGITAL, price_cents: int = 6500, issues: int = 5,
    bands: list[tuple[int, int]] | None = None, code: str | None = None,
    shipping: tuple[int, int, int] = (0, 500, 900), active: bool = True,
) -> Plan:
    number = next(_numbers)
    includes_print = kind != PlanKind.DIGITAL
    plan = services.save_plan(None, services.PlanData(
        code=code or f"plan-{number}", name_nl=f"Formule {number}", name_en=f"Plan {number}",
        kind=kind, price_cents=price_cents, issues_per_term=issues,
        includes_print=includes_print,
        includes_digital=kind in (PlanKind.DIGITAL, PlanKind.PRINT_DIGITAL),
        shipping_be_cents=shipping[0] if includes_print else 0,
        shipping_nl_cents=shipping[1] if includes_print else 0,
        shipping_eu_cents=shipping[2] if includes_print else 0,
        bands=bands or [], active=active,
    ), actor=None)
    db.session.commit()
    db.session.refresh(plan)  # usable after the test's app context ends
    return plan


def make_promo(
    code: str = "LENTE", *, percent: int = 0, amount_cents: int = 0,
    max_uses: int | None = None, plans: list[Plan] | None = None, **dates,
) -> PromoCode:
    promo = services.save_promo_code(None, services.PromoData(
        code=code, kind=PromoKind.PERCENT if percent else PromoKind.FIXED,
        percent_bp=percent * 100, amount_cents=amount_cents, max_uses=max_uses,
        plan_ids=[p.id for p in plans or []], **dates,
    ), actor=None)
    db.session.commit()
    return promo


def address(**overrides) -> services.AddressInput:
    values = {"name": "Kinderdagverblijf De Rups", "street": "Kerkstraat 12",
              "postcode": "9000", "city": "Gent", "country": "BE"}
    values.update(overrides)
    return services.AddressInput(**values)


def checkout_request(plan: Plan, **overrides) -> services.CheckoutRequest:
    values = {"plan_id": plan.id, "copies": 1,
              "addresses": [address()] if plan.includes_print else []}
    values.update(overrides)
    return services.CheckoutRequest(**values)


def place(plan: Plan, buyer: User, **overrides):
    order = services.place_order(checkout_request(plan, **overrides), buyer=buyer).order
    db.session.commit()
    return order
