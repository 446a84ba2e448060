"""Price and VAT arithmetic, property-based: net + VAT = gross on every line, and the VAT
follows the one documented rounding rule."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from subscriptions import pricing

cents = st.integers(min_value=-10_000_000, max_value=10_000_000)
rates = st.sampled_from([0, 600, 1200, 2100]) | st.integers(min_value=0, max_value=10_000)


def reference_vat(gross: int, rate_bp: int) -> int:
    """The rule in decimal arithmetic: gross × rate ÷ (1 + rate), half away from zero."""
    exact = Decimal(gross) * Decimal(rate_bp) / (Decimal(10_000) + Decimal(rate_bp))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(gross=cents, rate=rates)
def test_vat_follows_the_rounding_rule(gross, rate):
    assert pricing.vat_in_gross(gross, rate) == reference_vat(gross, rate)


@given(quantity=st.integers(min_value=1, max_value=1000),
       unit=st.integers(min_value=-100_000, max_value=100_000), rate=rates)
def test_net_plus_vat_is_gross_on_every_line(quantity, unit, rate):
    line = pricing.price_line("subscription", "x", quantity, unit, rate)
    assert line.gross_cents == quantity * unit
    assert line.net_cents + line.vat_cents == line.gross_cents
    assert abs(line.vat_cents) <= abs(line.gross_cents)


@given(gross=cents, rate=rates)
def test_a_discount_line_mirrors_the_positive_line(gross, rate):
    assert pricing.vat_in_gross(-gross, rate) == -pricing.vat_in_gross(gross, rate)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(-20_000, 20_000),
                          st.sampled_from([600, 2100])), min_size=1, max_size=8))
def test_totals_are_the_sums_of_the_lines_per_rate(specs):
    lines = [pricing.price_line("x", "x", q, u, r) for q, u, r in specs]
    result = pricing.totals(lines)
    assert result.gross_cents == sum(x.gross_cents for x in lines)
    assert result.vat_cents == sum(g.vat_cents for g in result.groups)
    assert result.net_cents + result.vat_cents == result.gross_cents
    for group in result.groups:
        assert group.net_cents + group.vat_cents == group.gross_cents


def test_known_amounts():
    # € 65,00 incl. 6%: VAT 3,68 (65 × 6 / 106 = 3,679…), net 61,32.
    line = pricing.price_line("subscription", "x", 1, 6500, 600)
    assert (line.net_cents, line.vat_cents) == (6132, 368)
    # Exactly half a cent rounds away from zero: 53 × 6/106 = 3,0 → 3; 159 × 600/10600 = 9.
    assert pricing.vat_in_gross(53, 600) == 3
    assert pricing.vat_in_gross(9, 10_000) == 5  # 4,5 → 5
    assert pricing.vat_in_gross(-9, 10_000) == -5


@given(gross=st.integers(0, 1_000_000), percent=st.integers(0, 10_000),
       fixed=st.integers(0, 2_000_000))
def test_a_discount_never_exceeds_the_amount(gross, percent, fixed):
    assert 0 <= pricing.discount_cents(gross, percent_bp=percent) <= gross
    assert 0 <= pricing.discount_cents(gross, fixed_cents=fixed) <= gross


def test_volume_price_takes_the_highest_band_reached():
    bands = [(5, 5500), (10, 5000), (25, 4500)]
    assert pricing.unit_price_for_copies(6500, bands, 1) == 6500
    assert pricing.unit_price_for_copies(6500, bands, 4) == 6500
    assert pricing.unit_price_for_copies(6500, bands, 5) == 5500
    assert pricing.unit_price_for_copies(6500, bands, 24) == 5000
    assert pricing.unit_price_for_copies(6500, list(reversed(bands)), 100) == 4500
