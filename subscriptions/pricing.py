"""Price and VAT arithmetic: the one place where amounts are computed.

Everything is in integer euro cents, and every price includes VAT (publications: 6% in
Belgium). The rule, applied per line and nowhere else:

    VAT = gross × rate ÷ (1 + rate), rounded half away from zero to whole cents;
    net = gross − VAT.

So net + VAT = gross holds exactly for every line, and a negative line (a discount) is the
mirror image of the positive one. An order's VAT is the sum of its lines' VAT; the invoice
shows it per rate. Rates are in basis points (600 = 6%).

The functions here take plain values (no database), so they are tested with hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BASIS_POINTS = 10_000


def _divide_half_away_from_zero(numerator: int, denominator: int) -> int:
    """numerator ÷ denominator (denominator > 0) rounded half away from zero, in integers
    (no floats: 0.5 cent must round the same way on every machine)."""
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return sign * quotient


def vat_in_gross(gross_cents: int, rate_bp: int) -> int:
    """The VAT contained in a price that includes it (see the module's rounding rule)."""
    if rate_bp < 0:
        raise ValueError("a VAT rate cannot be negative")
    return _divide_half_away_from_zero(gross_cents * rate_bp, BASIS_POINTS + rate_bp)


def percentage_of(amount_cents: int, percent_bp: int) -> int:
    """`percent_bp` basis points of an amount, rounded half away from zero (discounts)."""
    return _divide_half_away_from_zero(amount_cents * percent_bp, BASIS_POINTS)


@dataclass(frozen=True)
class PricedLine:
    """One line of an order: quantity × unit price (VAT included), and its VAT split."""

    kind: str  # "subscription", "shipping", "discount", "single_copy"
    description: str
    quantity: int
    unit_cents: int
    rate_bp: int
    gross_cents: int
    vat_cents: int

    @property
    def net_cents(self) -> int:
        return self.gross_cents - self.vat_cents


def price_line(
    kind: str, description: str, quantity: int, unit_cents: int, rate_bp: int
) -> PricedLine:
    gross = quantity * unit_cents
    return PricedLine(
        kind=kind, description=description, quantity=quantity, unit_cents=unit_cents,
        rate_bp=rate_bp, gross_cents=gross, vat_cents=vat_in_gross(gross, rate_bp),
    )


@dataclass(frozen=True)
class VatGroup:
    rate_bp: int
    net_cents: int
    vat_cents: int
    gross_cents: int


@dataclass(frozen=True)
class Totals:
    lines: tuple[PricedLine, ...]
    groups: tuple[VatGroup, ...] = field(default=())

    @property
    def gross_cents(self) -> int:
        return sum(line.gross_cents for line in self.lines)

    @property
    def vat_cents(self) -> int:
        return sum(line.vat_cents for line in self.lines)

    @property
    def net_cents(self) -> int:
        return self.gross_cents - self.vat_cents


def totals(lines: Iterable[PricedLine]) -> Totals:
    """The lines with their VAT split per rate (sums of the lines, never recomputed)."""
    lines = tuple(lines)
    by_rate: dict[int, list[PricedLine]] = {}
    for line in lines:
        by_rate.setdefault(line.rate_bp, []).append(line)
    groups = tuple(
        VatGroup(
            rate_bp=rate,
            net_cents=sum(x.net_cents for x in group),
            vat_cents=sum(x.vat_cents for x in group),
            gross_cents=sum(x.gross_cents for x in group),
        )
        for rate, group in sorted(by_rate.items())
    )
    return Totals(lines=lines, groups=groups)


def unit_price_for_copies(base_cents: int, bands: Sequence[tuple[int, int]], copies: int) -> int:
    """The price per copy for an order of `copies`: the band with the highest minimum that
    `copies` reaches, else the plan's own price. `bands` holds (min_copies, price_cents)."""
    price = base_cents
    best_min = 0
    for min_copies, band_price in bands:
        if best_min < min_copies <= copies:
            best_min, price = min_copies, band_price
    return price


def discount_cents(gross_cents: int, *, percent_bp: int = 0, fixed_cents: int = 0) -> int:
    """How much a promo code takes off `gross_cents` (never more than the amount itself)."""
    off = percentage_of(gross_cents, percent_bp) if percent_bp else fixed_cents
    return max(0, min(off, gross_cents))
