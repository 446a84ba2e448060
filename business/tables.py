"""Every table of the desk as data (title, columns, rows), so the page and its CSV download
show the very same numbers. Built from the summed figures: loops here run over months,
plans and buckets, never over subscriptions or payments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from business import figures
from business.months import month_label


@dataclass(frozen=True)
class Money:
    cents: int


@dataclass(frozen=True)
class Share:
    value: float | None
    digits: int = 1


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    footer: list | None = None


KIND_LABELS = {
    "individual": _l("individual"), "organisation": _l("organisation"),
    "student": _l("student"), "gift": _l("gift"), "complimentary": _l("complimentary"),
}
STATUS_LABELS = {
    "active": _l("active"), "renewal_off": _l("active, renewal off"),
    "graced": _l("graced"), "pending_payment": _l("awaiting payment"),
}
KIND_OF_MONEY = {"received": _l("received"), "refunded": _l("refunded"),
                 "charged_back": _l("charged back")}


def _breakdown(name: str, title: str, label_title: str, breakdown: figures.Breakdown,
               labels: dict | None = None) -> Table:
    table = Table(name, title, [label_title, _("subscriptions"), _("copies"), _("MRR")])
    for label, subscriptions, copies, mrr in breakdown.rows:
        shown = str(labels.get(label, label)) if labels else label
        table.rows.append([shown, subscriptions, copies, Money(mrr)])
    table.footer = [_("total"), breakdown.subscriptions, breakdown.copies,
                    Money(breakdown.mrr_cents)]
    return table


def now_tables(now: figures.Now, plan_names: dict[str, str]) -> list[Table]:
    return [
        _breakdown("by-plan", _("Running subscriptions by plan"), _("plan"), now.by_plan,
                   plan_names),
        _breakdown("by-kind", _("Running subscriptions by kind"), _("kind"), now.by_kind,
                   KIND_LABELS),
        _breakdown("by-status", _("Subscriptions by status"), _("status"), now.by_status,
                   STATUS_LABELS),
        _breakdown("by-country", _("Running subscriptions by country"), _("country"),
                   now.by_country),
    ]


def movements_table(movements: figures.Movements) -> Table:
    table = Table("movements", _("Subscribers and MRR per month"), [
        _("month"), _("at the start"), _("new"), _("reactivated"), _("churned"),
        _("at the end"), _("churn rate"), _("MRR new"), _("MRR reactivation"),
        _("MRR expansion"), _("MRR contraction"), _("MRR churn"), _("MRR net movement"),
        _("MRR at the end"),
    ])
    for m in movements.months:
        table.rows.append([
            month_label(m.month), m.active_start, m.new, m.reactivated, m.churned,
            m.active_end, Share(m.churn_rate), Money(m.mrr_new), Money(m.mrr_reactivation),
            Money(m.mrr_expansion), Money(m.mrr_contraction), Money(m.mrr_churn),
            Money(m.mrr_net), Money(m.mrr_end),
        ])
    if movements.months:
        first, last = movements.months[0], movements.months[-1]
        table.footer = [
            _("period"), first.active_start, movements.new, movements.reactivated,
            movements.churned, last.active_end, Share(movements.churn_rate),
            Money(sum(m.mrr_new for m in movements.months)),
            Money(sum(m.mrr_reactivation for m in movements.months)),
            Money(sum(m.mrr_expansion for m in movements.months)),
            Money(sum(m.mrr_contraction for m in movements.months)),
            Money(sum(m.mrr_churn for m in movements.months)),
            Money(sum(m.mrr_net for m in movements.months)), Money(last.mrr_end),
        ]
    return table


def _revenue_rows(table: Table, rows: list[figures.RevenueRow], label) -> Table:
    for row in rows:
        table.rows.append([label(row.label), Money(row.received), Money(row.refunded),
                           Money(row.charged_back), Money(row.gross), Money(row.vat),
                           Money(row.net)])
    return table


def revenue_tables(revenue: figures.Revenue, plan_names: dict[str, str]) -> list[Table]:
    money_columns = [_("received"), _("refunded"), _("charged back"), _("gross"), _("VAT"),
                     _("net")]
    months = _revenue_rows(Table("revenue", _("Revenue per month"),
                                 [_("month"), *money_columns]), revenue.months, month_label)
    total = revenue.total
    months.footer = [_("period"), Money(total.received), Money(total.refunded),
                     Money(total.charged_back), Money(total.gross), Money(total.vat),
                     Money(total.net)]
    providers = _revenue_rows(Table("revenue-by-provider", _("Revenue by provider"),
                                    [_("provider"), *money_columns]), revenue.by_provider,
                              str)
    plans = _revenue_rows(
        Table("revenue-by-plan", _("Revenue by plan"), [_("plan"), *money_columns]),
        revenue.by_plan,
        lambda code: _("single copies") if code == "single_copies"
        else plan_names.get(code, code))
    return [months, providers, plans]


def issues_table(issues: list[figures.DispatchedIssue],
                 rates: list[figures.RenewalRate]) -> Table:
    table = Table("issues", _("Dispatched issues: recognised revenue and renewal rate"), [
        _("issue"), _("print date"), _("subscriptions that received it"),
        _("recognised revenue"), _("due for renewal"), _("renewed"), _("renewal rate")])
    by_code = {rate.issue_code: rate for rate in rates}
    for issue in issues:
        rate = by_code.get(issue.issue_code) or figures.RenewalRate(issue.issue_code, 0, 0)
        table.rows.append([issue.issue_code, issue.print_date, issue.subscriptions,
                           Money(issue.recognised_cents), rate.due, rate.renewed,
                           Share(rate.rate)])
    if issues:
        due = sum(rate.due for rate in rates)
        renewed = sum(rate.renewed for rate in rates)
        table.footer = [_("period"), None, sum(i.subscriptions for i in issues),
                        Money(sum(i.recognised_cents for i in issues)), due, renewed,
                        Share(renewed / due if due else None)]
    return table


def unpaid_tables(unpaid: figures.Unpaid) -> list[Table]:
    ageing = Table("ageing", _("Unpaid invoices by age"),
                   [_("days since the invoice"), _("invoices"), _("outstanding")])
    for bucket, count, cents in unpaid.buckets:
        ageing.rows.append([bucket, count, Money(cents)])
    ageing.footer = [_("total"), unpaid.count, Money(unpaid.cents)]
    listing = Table("unpaid", _("Unpaid invoices, oldest first"),
                    [_("invoice"), _("buyer"), _("invoice date"),
                     _("days since the invoice"), _("outstanding")])
    for invoice in unpaid.invoices:
        listing.rows.append([invoice.number, invoice.buyer_name,
                             invoice.issue_date, invoice.bucket,
                             Money(invoice.outstanding_cents)])
    return [ageing, listing]


def renewals_table(renewals: list[figures.Renewal]) -> Table:
    table = Table("renewals", _("Renewals for the next three issues"),
                  [_("term ends with issue"), _("subscriptions"), _("next term's price"),
                   _("on automatic renewal")])
    for renewal in renewals:
        table.rows.append([renewal.issue.code, renewal.subscriptions,
                           Money(renewal.amount_cents), renewal.auto_renew])
    return table


def cohort_table(cohorts: list[figures.Cohort]) -> Table:
    span = max((len(cohort.retained) for cohort in cohorts), default=1)
    table = Table("cohorts", _("Cohort retention"),
                  [_("first paid issue in"), _("subscribers"),
                   *[_("+%(n)d issues", n=n) for n in range(span)]])
    for cohort in cohorts:
        shares = cohort.shares()
        table.rows.append([month_label(cohort.month), cohort.size,
                           *[Share(s, digits=0) for s in shares],
                           *[None] * (span - len(shares))])
    return table


def print_run_table(run: figures.PrintRun) -> Table:
    table = Table("print-run", _("Print run of the next issue"),
                  [_("for"), _("copies")])
    table.rows = [[_("subscribers"), run.paid_copies],
                  [_("complimentary"), run.complimentary_copies],
                  [_("stock"), run.stock_copies]]
    table.footer = [_("total"), run.total]
    return table


def is_number(value) -> bool:
    """Numbers are right-aligned on the page."""
    return isinstance(value, Money | Share | int) and not isinstance(value, bool)


def share_text(share: Share) -> str:
    """A share as a percentage in the reader's language (1,4% in Dutch)."""
    from flask_babel import format_decimal

    if share.value is None:
        return "–"
    pattern = "0" if share.digits == 0 else "0." + "0" * share.digits
    return format_decimal(share.value * 100, format=pattern) + "%"


def csv_value(value) -> str:
    """Belgian spreadsheet conventions: decimal comma, no thousands separator."""
    if value is None:
        return ""
    if isinstance(value, Money):
        sign = "-" if value.cents < 0 else ""
        return f"{sign}{abs(value.cents) // 100},{abs(value.cents) % 100:02d}"
    if isinstance(value, Share):
        return "" if value.value is None else (
            f"{value.value * 100:.{value.digits}f}".replace(".", ","))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# What each figure means, one click away on the desk (Dutch through the catalogue).
DEFINITIONS = {
    "running": _l(
        "Running subscriptions: active, graced (the term ran out, the renewal is not paid yet, "
        "one grace issue) or active with automatic renewal off and issues left. Awaiting "
        "payment is not running; it appears only in the split by status. Counted at the end "
        "of the period: now when the period runs to this month, else from the monthly count "
        "of its last month (which holds running subscriptions only)."),
    "by-plan": _l(
        "Running subscriptions at the end of the period, per plan, with their copies and MRR "
        "(of the term each was on then)."),
    "by-kind": _l(
        "Kind: complimentary (free, given by the coordinator), else gift (a gift plan or a "
        "gift recipient), else organisation or student by the plan's kind, else individual."),
    "by-status": _l(
        "Status at the end of the period: active, active with automatic renewal off (ends "
        "after its last issue), graced, awaiting payment (ordered, not paid; only when the "
        "period runs to this month)."),
    "by-country": _l(
        "The country of the first delivery address (its latest version); digital "
        "subscriptions without an address: the country of the invoice address."),
    "mrr": _l(
        "MRR (monthly recurring revenue): for each running paid subscription, the term price "
        "without VAT spread over the term's length in months (issues per term × 12 ÷ "
        "%(per_year)d issues per year), rounded to the cent. The term price is the "
        "subscription lines of its order: volume prices and cheaper plans are lasting and "
        "count; a promo code lowers only the order it was used on (the first term), so it is "
        "time-limited and does not lower MRR; shipping is not counted. Complimentary and "
        "unpaid subscriptions count 0. ARR = 12 × MRR."),
    "deferred": _l(
        "Deferred revenue today, whatever the period: money received for issues not yet "
        "dispatched — for each running paid subscription (not graced), the term price "
        "without VAT × issues left ÷ issues per term."),
    "print-run": _l(
        "Today, whatever the period: copies for the next issue (the first whose dispatch "
        "cut-off has not passed): the "
        "copies of running subscriptions with print that start no later than it, "
        "complimentary copies apart, plus the stock copies of the setting PRINT_STOCK_COPIES."),
    "movements": _l(
        "Per month, from the monthly count of paying subscribers (complimentary left out; "
        "the count of a month is the state at its end, the running month: at the last "
        "hourly count). New: counted this month, never before. Reactivated: counted this "
        "month, not the month before, but in an earlier month. Churned: counted the month "
        "before, not this month. Churn rate = churned ÷ (counted at the start + new). MRR "
        "movements: new + reactivation + expansion (a subscriber's MRR went up) − "
        "contraction (went down) − churn = the change in MRR. The line for the period uses "
        "the start of its first month."),
    "revenue": _l(
        "Money received (payments marked paid, in the month they were paid, VAT included) "
        "minus refunds and chargebacks in the month they happened, whatever month the "
        "payment was. VAT of a part: the order's VAT in proportion. Net = gross − VAT."),
    "revenue-by-provider": _l("The same money over the whole period, per payment provider."),
    "revenue-by-plan": _l(
        "The same money over the whole period, per plan of the order (single copies and "
        "back issues apart)."),
    "issues": _l(
        "Per issue dispatched in the period: the subscriptions that received it; the revenue "
        "recognised with it (for each paid subscription: the net price of the term it was on "
        "when the list was locked ÷ issues per term); and the renewal rate = renewed ÷ due "
        "for renewal. Due: the paid subscriptions for which this issue was the last of a "
        "term (every issue received counts, grace issues too). Renewed: of those, the ones "
        "whose renewal order for the next term was paid and applied (so far: a recent "
        "issue's rate can still rise)."),
    "ageing": _l(
        "Invoices of orders still awaiting payment, minus what credit notes took off, by "
        "days since the invoice date. Counted today, whatever the period."),
    "unpaid": _l(
        "Every unpaid invoice, oldest first, %(n)d a page (the CSV holds them all). The "
        "reminder is a mail of its own with the invoice number, the amount still due, the due "
        "date, the bank details with the structured communication and a pay link; at most "
        "one per invoice per day, numbered (first reminder, second …). Counted now."),
    "renewals": _l(
        "Today, whatever the period: paid subscriptions whose term ends with each of the next "
        "three issues (issues left "
        "1, 2, 3), what their next term costs at the current term's price (VAT included) "
        "and how many renew automatically (the others renew only if they pay)."),
    "cohorts": _l(
        "Paying subscribers (complimentary ones apart) grouped by the month of their first "
        "paid issue (a cohort); each column: the share of the cohort that received that "
        "issue and each later dispatched issue (+0 is the first, +1 the next …), still "
        "subscribed. Darker is more."),
}
