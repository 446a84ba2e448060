"""The Belgian structured communication and the EPC QR code of a bank transfer."""

from __future__ import annotations

from decimal import Decimal

import segno.helpers
from hypothesis import given
from hypothesis import strategies as st
from stdnum.be import ogm_vcs

from subscriptions.providers import PROVIDERS, get_provider
from subscriptions.providers.bank_transfer import (
    epc_qr,
    format_communication,
    structured_communication,
)


@given(st.integers(min_value=1, max_value=10**10 - 1))
def test_every_structured_communication_is_valid(base):
    digits = structured_communication(base)
    assert len(digits) == 12 and ogm_vcs.is_valid(digits)
    check = int(digits[:10]) % 97 or 97
    assert int(digits[10:]) == check


def test_format_is_what_banks_print():
    assert format_communication("000000004242") == "+++000/0000/04242+++"
    assert ogm_vcs.is_valid(format_communication("000000004242").strip("+"))


def test_epc_payload_carries_iban_amount_and_communication():
    payload = segno.helpers._make_epc_qr_data(
        "Kinderopvang Magazine vzw", "BE71096123456769", Decimal("275.00"), None,
        "859373712812", "GKCCBEBB", None, None)
    lines = payload.decode().split("\n")
    assert lines[:4] == ["BCD", "002", "2", "SCT"]
    assert "BE71096123456769" in lines and "EUR275" in lines
    assert lines[-1] == "859373712812"
    qr = epc_qr(name="Kinderopvang Magazine vzw", iban="BE71 0961 2345 6769", bic="GKCCBEBB",
                amount_cents=27500, communication="859373712812")
    assert qr.error == "M" and qr.version <= 13


def test_providers_implement_the_interface(app):
    for name in ("bank_transfer", "manual"):
        provider = get_provider(name)
        for method in ("is_available", "start_payment", "fetch_status", "charge_mandate",
                       "refund"):
            assert callable(getattr(provider, method)), (name, method)
    assert PROVIDERS["bank_transfer"].is_available(app)
    assert not PROVIDERS["manual"].is_available(app)  # only the coordinator records those
