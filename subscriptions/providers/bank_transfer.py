"""Bank transfer with a Belgian structured communication (`+++123/4567/89012+++`).

The buyer transfers the amount with the communication; the coordinator marks the payment
received (or a bank statement import does, later). Nothing is charged automatically, so
there is no mandate; a refund is a transfer the coordinator makes by hand.
"""

from __future__ import annotations

from decimal import Decimal

import segno
import segno.helpers
from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from stdnum.be import ogm_vcs

from subscriptions.providers.base import (
    ChargeResult,
    NotSupported,
    PaymentStart,
    RefundResult,
)
from subscriptions.states import PaymentState


def structured_communication(base: int) -> str:
    """The 12 digits for a number below 10**10: ten digits and two check digits
    (modulo 97, 97 when the remainder is 0), as stdnum computes them."""
    if not 0 < base < 10**10:
        raise ValueError("the base of a structured communication has 1 to 10 digits")
    digits = f"{base:010d}"
    return digits + ogm_vcs.calc_check_digits(digits)


def format_communication(digits: str) -> str:
    """`+++123/4567/89012+++`, the way Belgian banks print it."""
    return f"+++{ogm_vcs.format(digits)}+++"


def epc_qr(
    *, name: str, iban: str, bic: str, amount_cents: int, communication: str
) -> segno.QRCode:
    """An EPC QR code (SEPA credit transfer) that banking apps scan: the structured
    communication goes into the structured remittance field, as Belgian banks expect."""
    return segno.helpers.make_epc_qr(
        name=name[:70], iban=iban.replace(" ", ""), bic=bic or None,
        amount=Decimal(amount_cents).scaleb(-2), reference=communication,
    )


class BankTransferProvider:
    name = "bank_transfer"
    label = _l("Bank transfer")
    online = False

    def is_available(self, app: Flask) -> bool:
        return bool(app.config.get("BANK_IBAN"))

    def start_payment(self, payment, *, return_url: str) -> PaymentStart:
        order = payment.order
        config = current_app.config
        return PaymentStart(
            provider_ref=None,
            instructions={
                "iban": config["BANK_IBAN"],
                "bic": config["BANK_BIC"],
                "beneficiary": config["PUBLISHER_NAME"],
                "communication": format_communication(order.structured_communication),
            },
        )

    def fetch_status(self, payment) -> PaymentState:
        # Only the coordinator (or a statement import) knows: the record is the truth.
        return payment.state

    def charge_mandate(self, payment, *, mandate_ref: str, idempotency_key: str) -> ChargeResult:
        raise NotSupported("a bank transfer has no mandate to charge")

    def refund(self, payment, amount_cents: int, *, reason: str) -> RefundResult:
        return RefundResult(provider_ref=None, amount_cents=amount_cents,
                            needs_manual_transfer=True)
