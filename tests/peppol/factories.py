"""Factories for the Peppol e-invoices: an organisation's order (its invoice). The stand-in
access point and the app pointed at it (`peppol_ap`, `with_peppol`) are in
tests/fakes/fixtures.py."""

from __future__ import annotations

from subscriptions.models import PlanKind
from tests.factories import make_user
from tests.subscriptions.factories import make_plan, place

BUYER_VAT = "BE0202239951"  # valid check digits (stdnum)


def organisation_order(buyer=None, **overrides):
    """Five copies at the volume price for a Belgian organisation with a VAT number and its
    own order reference (what the invoice carries)."""
    values = {"copies": 5, "billing_organisation": "Kinderdagverblijf De Rups vzw",
              "billing_vat_number": BUYER_VAT, "billing_po_reference": "PO-2026-17"}
    values.update(overrides)
    plan = make_plan(kind=PlanKind.ORGANISATION, price_cents=6500, bands=[(5, 5500)])
    return place(plan, buyer or make_user(), **values)
