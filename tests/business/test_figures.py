"""Every figure of the desk on the hand-built history of tests/business/fixture.py, with the
expected values worked out by hand there."""

from __future__ import annotations

import pytest

from business import figures
from business.months import Period
from magazine.clock import frozen
from magazine.db import db
from tests.business.fixture import APR, FEB, JAN, MAR, NOW, TODAY, build_history

PERIOD = Period(JAN, APR)


@pytest.fixture
def history(app, app_context):
    with frozen(NOW):
        yield build_history()


def test_running_subscriptions_now_by_plan_kind_status_and_country(history):
    now = figures.now_figures()
    assert now.by_plan.rows == [("individueel", 3, 4, 511 + 511),
                                ("organisatie", 2, 8, 1965 + 1179)]
    assert now.by_kind.rows == [("complimentary", 1, 2, 0), ("individual", 2, 2, 1022),
                                ("organisation", 2, 8, 3144)]
    assert now.by_status.rows == [("active", 4, 11, 3655), ("pending_payment", 1, 1, 0),
                                  ("renewal_off", 1, 1, 511)]
    assert now.by_country.rows == [("BE", 4, 11, 3655), ("NL", 1, 1, 511)]
    assert now.active == 5


def test_running_subscriptions_at_the_end_of_a_past_month(history):
    february = figures.figures_at_month_end(FEB)
    # A, B (511 each) and the complimentary E (2 copies); D (3 copies, 1179), H (5, 1965).
    assert february.by_plan.rows == [("individueel", 3, 4, 1022),
                                     ("organisatie", 2, 8, 1179 + 1965)]
    assert february.by_kind.rows == [("complimentary", 1, 2, 0), ("individual", 2, 2, 1022),
                                     ("organisation", 2, 8, 3144)]
    assert february.by_status.rows == [("active", 5, 12, 4166)]
    assert february.by_country.rows == [("BE", 5, 12, 4166)]
    assert (february.active, february.mrr_cents) == (5, 4166)
    # March: B lapsed; D on its renewed term of 5 copies (the copies of the term then).
    march = figures.figures_at_month_end(MAR)
    assert march.by_plan.rows == [("individueel", 2, 3, 511),
                                  ("organisatie", 2, 10, 1965 + 1965)]
    assert march.mrr_cents == figures.movements(PERIOD).months[2].mrr_end == 4441


def test_the_desk_counts_at_the_end_of_a_past_period_and_today_apart(history):
    past = figures.desk(Period(JAN, MAR), TODAY, "nl_BE")
    assert past.as_at.isoformat() == "2026-03-31"
    assert past.now.mrr_cents == 4441
    # What can only be counted today stays today's.
    assert past.deferred_cents == figures.deferred_revenue() == 2452 + 1226 + 18868 + 14151
    assert past.unpaid.count == 2 and past.print_run.issue.print_date.month == 5
    current = figures.desk(PERIOD, TODAY, "nl_BE")
    assert current.as_at is None and current.now.mrr_cents == 4166


def test_mrr_ignores_the_promo_code_and_counts_complimentary_as_zero(history):
    now = figures.now_figures()
    # A 511 + C 511 + D (5 copies) 1965 + H (3 copies) 1179; B paid less with its promo code
    # but has lapsed; E is complimentary; F is unpaid.
    assert now.mrr_cents == 4166
    assert now.arr_cents == 49992


def test_deferred_revenue_is_the_net_term_price_for_the_issues_left(history):
    # A 6132 × 2 ÷ 5 = 2452; C 6132 × 1 ÷ 5 = 1226; D 23585 × 4 ÷ 5 = 18868; H 14151.
    assert figures.now_figures().deferred_cents == 2452 + 1226 + 18868 + 14151


def test_print_run_of_the_next_issue(app, history):
    run = figures.print_run(TODAY)
    assert run.issue.print_date.isoformat() == "2026-05-15"
    assert (run.paid_copies, run.complimentary_copies) == (1 + 1 + 5 + 3, 2)
    assert run.stock_copies == app.config["PRINT_STOCK_COPIES"]
    assert run.total == 12 + app.config["PRINT_STOCK_COPIES"]


def test_subscriber_and_mrr_movements_per_month(history):
    moves = figures.movements(PERIOD)
    jan, feb, mar, apr = moves.months
    assert (jan.month, jan.active_start, jan.new, jan.reactivated, jan.churned,
            jan.active_end) == (JAN, 0, 2, 0, 0, 2)
    assert (jan.mrr_new, jan.mrr_end, jan.churn_rate) == (1022, 1022, 0.0)
    assert (feb.month, feb.active_start, feb.new, feb.churned, feb.active_end) == (
        FEB, 2, 2, 0, 4)
    assert (feb.mrr_new, feb.mrr_end) == (1179 + 1965, 4166)
    # March: B lapses (churn), D grows from 3 to 5 copies (expansion).
    assert (mar.month, mar.active_start, mar.new, mar.churned, mar.active_end) == (
        MAR, 4, 0, 1, 3)
    assert (mar.mrr_churn, mar.mrr_expansion, mar.mrr_net, mar.mrr_end) == (
        511, 786, 275, 4441)
    assert mar.churn_rate == 0.25
    # April: B is back with a new subscription (reactivation), H shrinks to 3 copies.
    assert (apr.month, apr.active_start, apr.new, apr.reactivated, apr.churned,
            apr.active_end) == (APR, 3, 0, 1, 0, 4)
    assert (apr.mrr_reactivation, apr.mrr_contraction, apr.mrr_net, apr.mrr_end) == (
        511, 786, -275, 4166)
    # The period: 1 churned ÷ (0 at its start + 4 new).
    assert (moves.new, moves.reactivated, moves.churned, moves.churn_rate) == (4, 1, 1, 0.25)


def test_revenue_per_month_with_a_refund_in_another_month(history):
    revenue = figures.revenue(PERIOD)
    rows = [(r.label, r.received, r.refunded, r.gross, r.vat, r.net) for r in revenue.months]
    assert rows == [
        # A 6500 (VAT 368) + B 5525 after its promo code (VAT 368 − 55 = 313).
        (JAN, 12025, 0, 12025, 681, 11344),
        # D 15000 (849) + H 25000 (1415); B's €10 refund in February, VAT 10 × 313 ÷ 5525.
        (FEB, 40000, 1000, 39000, 849 + 1415 - 57, 39000 - 2207),
        (MAR, 25000, 0, 25000, 1415, 23585),
        (APR, 21500, 0, 21500, 849 + 368, 21500 - 1217),
    ]
    providers = {r.label: (r.received, r.refunded, r.vat) for r in revenue.by_provider}
    assert providers == {
        "bank_transfer": (6500 + 15000 + 25000 + 25000 + 15000, 0,
                          368 + 849 + 1415 + 1415 + 849),
        "mollie": (6500, 0, 368),
        "stripe": (5525, 1000, 313 - 57),
    }
    plans = {r.label: (r.received, r.refunded, r.vat) for r in revenue.by_plan}
    assert plans == {"individueel": (18525, 1000, 368 + 313 - 57 + 368),
                     "organisatie": (80000, 0, 849 + 1415 + 1415 + 849)}
    assert revenue.total.gross == 12025 + 39000 + 25000 + 21500


def test_refund_falls_outside_a_period_that_ends_before_it(history):
    january = figures.revenue(Period(JAN, JAN))
    assert [(r.received, r.refunded) for r in january.months] == [(12025, 0)]


def test_chargeback_is_subtracted_in_its_own_month(history):
    if figures.Chargeback is None:
        pytest.skip("chargebacks arrive with the payments work")
    from magazine.db import db

    db.session.add(figures.Chargeback(
        payment_id=history.payments["A"].id, provider="bank_transfer", provider_ref="chb_1",
        amount_cents=6500, created_at=NOW))
    db.session.commit()
    april = figures.revenue(Period(APR, APR)).months[0]
    assert (april.received, april.charged_back, april.gross, april.vat) == (
        21500, 6500, 15000, 1217 - 368)


def test_unpaid_invoices_by_age(history):
    unpaid = figures.unpaid_invoices(TODAY)
    assert unpaid.buckets == [("0-30", 1, 5000), ("31-60", 0, 0), ("61-90", 0, 0),
                              ("90+", 1, 6500)]
    assert [(i.number, i.outstanding_cents, i.bucket) for i in unpaid.invoices] == [
        (history.invoices["F"].number, 6500, "90+"),
        (history.invoices["G"].number, 5000, "0-30"),
    ]


def test_upcoming_renewals_for_the_next_three_issues(history):
    renewals = figures.upcoming_renewals(TODAY)
    assert [(r.issue.print_date.month, r.subscriptions, r.amount_cents, r.auto_renew)
            for r in renewals] == [(5, 1, 6500, 1), (7, 1, 6500, 0), (9, 0, 0, 0)]


def test_cohort_retention_by_the_month_of_the_first_paid_issue(history):
    cohorts = figures.cohorts(PERIOD)
    assert [(c.month, c.size, c.retained) for c in cohorts] == [
        # A and B first received 2.1 (January); B missed 2.2 and is back (C) for 2.3.
        (JAN, 2, [2, 1, 2]),
        # D and H first received 2.2 (March); the complimentary E is no cohort's.
        (MAR, 2, [2, 2]),
    ]
    assert cohorts[0].shares() == [1.0, 0.5, 1.0]
    # A period that ends in March: the issues after it are not shown.
    assert [(c.month, c.retained) for c in figures.cohorts(Period(JAN, MAR))] == [
        (JAN, [2, 1]), (MAR, [2])]
    # Cohorts whose first paid issue is before the period are left out.
    assert [c.month for c in figures.cohorts(Period(FEB, APR))] == [MAR]


def test_recognised_revenue_per_dispatched_issue_at_the_term_then(history):
    issues = figures.recognised_per_issue(PERIOD)
    assert [(i.issue_code, i.subscriptions, i.recognised_cents) for i in issues] == [
        # A and B 6132 ÷ 5 = 1226 each (B's promo code is no part of the term price); E 0.
        ("2.1", 3, 1226 + 1226),
        # D still on its 3-copy term (renewed on 10 March): 14151 ÷ 5; H 23585 ÷ 5.
        ("2.2", 4, 1226 + 2830 + 4717),
        # A, C; D on its 5-copy term now, H on its 3-copy one.
        ("2.3", 5, 1226 + 1226 + 4717 + 2830),
    ]
    assert [i.issue_code for i in figures.recognised_per_issue(Period(FEB, MAR))] == ["2.2"]


def test_renewal_rate_is_renewed_over_due_for_renewal_at_each_issue(history):
    """A plan of two issues a term; five paid subscriptions and a complimentary one receive
    issues 4.1 and 4.2 (the end of their first term):
    P and Q renew (paid, applied); R's renewal order is not paid; S has none; U renews
    during grace (it receives 4.3 as a grace issue, counted in its second term).
    4.4: P (issue 4 = the end of term 2, renewed again) and U (term 2 ends, not renewed)."""
    from datetime import date

    from subscriptions.models import Plan, PlanKind
    from tests.business.fixture import _dispatch, _order, _renew, _subscription
    from tests.factories import make_user

    short = Plan(code="kort", name_nl="Kort", name_en="Short", kind=PlanKind.PRINT,
                 price_cents=2000, issues_per_term=2)
    db.session.add(short)
    db.session.flush()
    subs = {}
    for key in "PQRSUT":
        user = make_user(email=f"{key.lower()}@kort.be", name=key)
        paid = None if key == "T" else _order(user, short, copies=1, placed=date(2026, 1, 2),
                                               paid=date(2026, 1, 3))[0]
        subs[key] = _subscription(user, short, paid, complimentary=key == "T")

    def renewal(key: str, *, paid: date | None):
        order = _order(subs[key].subscriber, short, copies=1, placed=date(2026, 2, 12),
                       paid=paid)[0]
        return _renew(subs[key], order, short)

    every = [subs[k] for k in "PQRSUT"]
    _dispatch(4, 1, date(2026, 1, 10), every)
    _dispatch(4, 2, date(2026, 2, 10), every)
    renewal("P", paid=date(2026, 2, 14))
    renewal("Q", paid=date(2026, 2, 20))
    renewal("R", paid=None)
    _dispatch(4, 3, date(2026, 3, 10), [subs["P"], subs["U"]], graced=[subs["U"]])
    renewal("U", paid=date(2026, 3, 20))
    renewal("P", paid=date(2026, 3, 25))
    _dispatch(4, 4, date(2026, 4, 1), [subs["P"], subs["U"]])
    db.session.commit()

    rates = {r.issue_code: (r.due, r.renewed, r.rate) for r in figures.renewal_rates(PERIOD)}
    assert rates == {
        "2.1": (0, 0, None), "2.2": (0, 0, None), "2.3": (0, 0, None),
        "4.1": (0, 0, None),
        "4.2": (5, 3, 0.6),   # P, Q, U renewed; R and S did not (T is complimentary)
        "4.3": (0, 0, None),
        "4.4": (2, 1, 0.5),   # P renewed its second term, U did not
    }


def test_mrr_follows_the_order_of_the_current_term_after_a_renewal(history):
    from datetime import date

    from magazine.db import db
    from subscriptions.models import RenewalOrder
    from tests.business.fixture import _order

    # A's second term is paid by a renewal order (here: 3 organisation copies, 15000, net
    # 14151).
    renewal, _invoice, _payment = _order(history.users["A"], history.plans["organisatie"],
                                         copies=3, placed=date(2026, 4, 12),
                                         paid=date(2026, 4, 13))
    db.session.add(RenewalOrder(subscription_id=history.subscriptions["A"].id, term=2,
                                plan_id=history.plans["individueel"].id, order_id=renewal.id,
                                applied_at=NOW))
    db.session.add(RenewalOrder(subscription_id=history.subscriptions["C"].id, term=2,
                                plan_id=history.plans["individueel"].id,
                                order_id=history.orders["G"].id))  # not paid: not applied
    db.session.commit()
    assert figures.now_figures().mrr_cents == 4166 - 511 + 1179
