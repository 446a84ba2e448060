"""Bank statement reconciliation: importing a camt.053 or CODA statement, matching each
incoming transfer to the open invoice (order) whose structured communication it carries,
and the coordinator's manual matching of the rest.

The amount rules are the same for the import and for a manual link (`_count_towards`):
- exactly what is still due: the order is paid (its invoice paid, subscriptions active);
- less: the transfer is recorded as a partial payment; the order stays open, and the page
  shows what is still due; a later transfer that completes it pays the order;
- more: the order is paid and the surplus is flagged for the coordinator until settled.

Every state change of an entry goes through `move_bank_entry` (a conditional update plus
an audit record); views call one function per change. Functions only flush: the request
commits once, so a file with one bad entry imports nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.exc import IntegrityError

from magazine import audit
from magazine.clock import now_utc
from magazine.db import db
from magazine.errors import DomainError
from magazine.models import User
from subscriptions import services
from subscriptions.bank_models import (
    BANK_ENTRY_TRANSITIONS,
    BankEntry,
    BankEntryState,
    UnmatchedReason,
)
from subscriptions.models import Invoice, Order
from subscriptions.statements import (
    StatementError,
    StatementProblems,
    parse_statement,
)
from subscriptions.states import OrderState


class BadStatementEntries(DomainError):
    """The statement was read but some entries are wrong; `problems` lists them."""

    def __init__(self, message: str, problems: list, *, count: int,
                 field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.problems = problems
        self.count = count


def move_bank_entry(entry: BankEntry, to: BankEntryState, *, actor: User | None,
                    **details) -> None:
    """The one way an entry changes state (checked against BANK_ENTRY_TRANSITIONS, under a
    conditional update so two coordinators cannot both move it; audited)."""
    services._move(entry, to, BANK_ENTRY_TRANSITIONS, BankEntry, "bank_entry", actor,
                   **details)


# ---------------------------------------------------------------- amounts

def received_cents(order: Order) -> int:
    """What matched bank entries already counted towards the order."""
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(BankEntry.applied_cents), 0))
        .where(BankEntry.order_id == order.id, BankEntry.state == BankEntryState.MATCHED)
    ) or 0


def amount_due(order: Order) -> int:
    """What is still to pay on an open order (its total less the partial payments)."""
    if order.state != OrderState.AWAITING_PAYMENT:
        return 0
    return max(order.total_cents - received_cents(order), 0)


@dataclass(frozen=True)
class Outcome:
    kind: str          # "paid", "partly_paid" or "overpaid"
    still_due: int = 0
    surplus: int = 0


def _count_towards(entry: BankEntry, order: Order, *, actor: User, how: str) -> Outcome:
    """Count an unmatched entry towards an open order, by the amount rules."""
    order = services._locked_order(order.id)
    if order.state != OrderState.AWAITING_PAYMENT:
        raise DomainError(_("This order is not open: it cannot take a payment any more."))
    due = amount_due(order)
    applied = min(entry.amount_cents, due)
    surplus = entry.amount_cents - applied
    entry.order_id = order.id
    entry.applied_cents = applied
    entry.surplus_cents = surplus
    entry.resolved_at = now_utc()
    entry.resolved_by_id = actor.id
    if entry.amount_cents < due:
        outcome = Outcome("partly_paid", still_due=due - entry.amount_cents)
    else:
        payment = services.record_payment(
            order, provider_name="bank_transfer", actor=actor, received_on=entry.booked_on,
            provider_ref=f"bank-entry:{entry.id}",
            note=_("bank statement %(ref)s: %(payer)s", ref=entry.reference,
                   payer=entry.payer_name)[:300])
        entry.payment_id = payment.id if payment is not None else None
        outcome = Outcome("overpaid" if surplus else "paid", surplus=surplus)
    move_bank_entry(entry, BankEntryState.MATCHED, actor=actor, order=order.id, how=how,
                    outcome=outcome.kind, applied_cents=applied, surplus_cents=surplus,
                    still_due_cents=outcome.still_due)
    return outcome


# ---------------------------------------------------------------- import

@dataclass
class ImportResult:
    """What importing one file did, entry by entry."""

    format: str = ""
    account: str = ""
    statement_ref: str = ""
    paid: list[BankEntry] = field(default_factory=list)
    partly_paid: list[tuple[BankEntry, int]] = field(default_factory=list)  # (entry, due)
    overpaid: list[BankEntry] = field(default_factory=list)
    to_match: list[BankEntry] = field(default_factory=list)
    already: int = 0   # recorded by an earlier import (or twice in this file)
    skipped: int = 0   # outgoing, pending, other currencies

    @property
    def recorded(self) -> int:
        return (len(self.paid) + len(self.partly_paid) + len(self.overpaid)
                + len(self.to_match))


def import_bank_statement(data: bytes, *, actor: User) -> ImportResult:
    """Import a camt.053 or CODA statement (told apart by content): each incoming transfer
    is recorded once by its bank reference; one with the structured communication of an open
    order counts towards it by the amount rules; the others wait for manual matching.

    Raises DomainError for an unreadable file and BadStatementEntries (with the list of
    bad entries) for a file with wrong entries: the caller rolls back, nothing is kept."""
    services._require_coordinator(actor)
    try:
        statement = parse_statement(data)
    except StatementProblems as error:
        raise BadStatementEntries(
            ngettext("%(num)d entry of this file is wrong (listed below): nothing was "
                     "imported. Ask the bank for a correct file.",
                     "%(num)d entries of this file are wrong (listed below): nothing was "
                     "imported. Ask the bank for a correct file.", error.count),
            error.problems, count=error.count, field="statement") from error
    except StatementError as error:
        if error.format == "coda":
            message = _("This CODA file cannot be read (%(reason)s): nothing was imported.",
                        reason=str(error))
        elif error.format == "camt053":
            message = _("This XML file is not a camt.053 bank statement we can read "
                        "(%(reason)s): nothing was imported.", reason=str(error))
        else:
            message = _("This file is neither a camt.053 (XML) nor a CODA bank statement: "
                        "nothing was imported.")
        raise DomainError(message, field="statement") from error

    result = ImportResult(format=statement.format, account=statement.account,
                          statement_ref=statement.statement_ref, skipped=statement.skipped)
    seen: set[str] = set()
    for parsed in statement.entries:
        if not parsed.credit:
            result.skipped += 1
            continue
        if parsed.reference in seen or db.session.scalar(
                sa.select(BankEntry.id).where(BankEntry.account == statement.account,
                                              BankEntry.reference == parsed.reference)):
            result.already += 1
            continue
        seen.add(parsed.reference)
        entry = BankEntry(
            account=statement.account, reference=parsed.reference, source=statement.format,
            statement_ref=statement.statement_ref[:60], position=parsed.position,
            booked_on=parsed.booked_on, amount_cents=parsed.amount_cents,
            payer_name=parsed.payer, payer_account=parsed.payer_account,
            communication=parsed.communication, text=parsed.text,
            state=BankEntryState.UNMATCHED, imported_by_id=actor.id,
        )
        db.session.add(entry)
        try:
            db.session.flush()
        except IntegrityError as error:
            raise DomainError(_("Someone imported this statement at the same moment: "
                                "nothing was imported here. Reload the page."),
                              field="statement") from error
        _match_by_communication(entry, actor, result)
    audit.record("bank_statement.imported", "bank_statement",
                 statement.statement_ref or statement.format, actor=actor,
                 format=statement.format, account=statement.account,
                 recorded=result.recorded, paid=len(result.paid),
                 partly_paid=len(result.partly_paid), overpaid=len(result.overpaid),
                 to_match=len(result.to_match), already=result.already,
                 skipped=result.skipped)
    return result


def _match_by_communication(entry: BankEntry, actor: User, result: ImportResult) -> None:
    if not entry.communication:
        entry.reason = UnmatchedReason.NO_COMMUNICATION.value
        result.to_match.append(entry)
        return
    order = db.session.scalar(
        sa.select(Order).where(Order.structured_communication == entry.communication))
    if order is None:
        entry.reason = UnmatchedReason.UNKNOWN_COMMUNICATION.value
    elif order.state == OrderState.PAID:
        entry.reason = UnmatchedReason.ORDER_PAID.value
    elif order.state != OrderState.AWAITING_PAYMENT:
        entry.reason = UnmatchedReason.ORDER_CLOSED.value
    if entry.reason:
        result.to_match.append(entry)
        return
    outcome = _count_towards(entry, order, actor=actor, how="communication")
    if outcome.kind == "partly_paid":
        result.partly_paid.append((entry, outcome.still_due))
    elif outcome.kind == "overpaid":
        result.overpaid.append(entry)
    else:
        result.paid.append(entry)


# ---------------------------------------------------------------- manual matching

def _locked_entry(entry: BankEntry) -> BankEntry:
    db.session.refresh(entry)
    return entry


def link_entry(entry: BankEntry, order: Order, *, actor: User) -> Outcome:
    """The coordinator links an unmatched transfer to an open order (found by name or
    amount): the same amount rules as the import."""
    services._require_coordinator(actor)
    entry = _locked_entry(entry)
    if entry.state != BankEntryState.UNMATCHED:
        raise DomainError(_("This transfer is not waiting to be matched any more."))
    return _count_towards(entry, order, actor=actor, how="by hand")


def ignore_entry(entry: BankEntry, *, actor: User, note: str) -> None:
    """Not ours, or nothing to do (a supplier's refund, a donation): off the list."""
    services._require_coordinator(actor)
    note = note.strip()
    if not note:
        raise DomainError(_("Say why (e.g. a refund from a supplier)."), field="note")
    entry.note = note[:300]
    entry.resolved_at = now_utc()
    entry.resolved_by_id = actor.id
    move_bank_entry(entry, BankEntryState.IGNORED, actor=actor, note=entry.note)


def restore_entry(entry: BankEntry, *, actor: User) -> None:
    """Take an ignored transfer back onto the list to match."""
    services._require_coordinator(actor)
    entry.resolved_at = None
    entry.resolved_by_id = None
    move_bank_entry(entry, BankEntryState.UNMATCHED, actor=actor)


def settle_surplus(entry: BankEntry, *, actor: User, note: str) -> None:
    """The coordinator dealt with what was paid too much (paid back, or kept with the
    payer's agreement): the flag goes, the note says how."""
    services._require_coordinator(actor)
    note = note.strip()
    if not note:
        raise DomainError(_("Say what was done with it (e.g. paid back on 2 December)."),
                          field="note")
    settled = db.session.execute(
        sa.update(BankEntry)
        .where(BankEntry.id == entry.id, BankEntry.surplus_cents > 0,
               BankEntry.surplus_settled_at.is_(None))
        .values(surplus_settled_at=now_utc(), note=note[:300])
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(entry)
    if settled != 1:
        raise DomainError(_("This surplus is settled already."))
    audit.record("bank_entry.surplus_settled", "bank_entry", entry.id, actor=actor,
                 surplus_cents=entry.surplus_cents, note=entry.note)


# ---------------------------------------------------------------- lists

def unmatched_entries() -> Sequence[BankEntry]:
    return db.session.scalars(
        sa.select(BankEntry).where(BankEntry.state == BankEntryState.UNMATCHED)
        .order_by(BankEntry.booked_on.desc(), BankEntry.id.desc())).all()


def open_surpluses() -> Sequence[BankEntry]:
    return db.session.scalars(
        sa.select(BankEntry).where(BankEntry.state == BankEntryState.MATCHED,
                                   BankEntry.surplus_cents > 0,
                                   BankEntry.surplus_settled_at.is_(None))
        .order_by(BankEntry.booked_on, BankEntry.id)).all()


def partly_paid_orders() -> list[tuple[Order, int, int]]:
    """Open orders with partial payments: (order, received, still due)."""
    rows = db.session.execute(
        sa.select(Order, sa.func.sum(BankEntry.applied_cents))
        .join(BankEntry, BankEntry.order_id == Order.id)
        .where(Order.state == OrderState.AWAITING_PAYMENT,
               BankEntry.state == BankEntryState.MATCHED)
        .group_by(Order.id).order_by(Order.id)).all()
    return [(order, received, order.total_cents - received) for order, received in rows]


def ignored_entries(limit: int = 20) -> Sequence[BankEntry]:
    return db.session.scalars(
        sa.select(BankEntry).where(BankEntry.state == BankEntryState.IGNORED)
        .order_by(BankEntry.resolved_at.desc(), BankEntry.id.desc()).limit(limit)).all()


def entries_of(order: Order) -> Sequence[BankEntry]:
    return db.session.scalars(
        sa.select(BankEntry).where(BankEntry.order_id == order.id)
        .order_by(BankEntry.booked_on, BankEntry.id)).all()


_AMOUNT = re.compile(r"^\s*(?:€|eur)?\s*(\d{1,7})(?:[.,](\d{1,2}))?\s*(?:€|eur)?\s*$",
                     re.IGNORECASE)


def parse_amount(text: str) -> int | None:
    """'65', '65,00', '€ 65.5' → cents; None when the text is not an amount."""
    match = _AMOUNT.match(text or "")
    if not match:
        return None
    euros, cents = match.groups()
    return int(euros) * 100 + int((cents or "0").ljust(2, "0"))


@dataclass(frozen=True)
class Candidate:
    order: Order
    invoice: Invoice | None
    due_cents: int


def search_open_invoices(query: str, *, limit: int = 25) -> list[Candidate]:
    """Open (awaiting payment) orders whose buyer's name, organisation, e-mail, invoice
    number or structured communication contains the query, or — when the query is an
    amount — whose total or amount still due is that amount."""
    query = query.strip()
    if not query:
        return []
    received = (
        sa.select(BankEntry.order_id, sa.func.sum(BankEntry.applied_cents).label("received"))
        .where(BankEntry.state == BankEntryState.MATCHED, BankEntry.order_id.is_not(None))
        .group_by(BankEntry.order_id).subquery())
    due = Order.total_cents - sa.func.coalesce(received.c.received, 0)
    select = (sa.select(Order, Invoice, due)
              .outerjoin(Invoice, Invoice.order_id == Order.id)
              .outerjoin(received, received.c.order_id == Order.id)
              .where(Order.state == OrderState.AWAITING_PAYMENT))
    cents = parse_amount(query)
    if cents is not None:
        select = select.where(sa.or_(Order.total_cents == cents, due == cents))
    else:
        like = f"%{query.lower()}%"
        digits = re.sub(r"\D", "", query)
        conditions = [sa.func.lower(Order.billing_name).like(like),
                      sa.func.lower(Order.billing_organisation).like(like),
                      sa.func.lower(Order.billing_email).like(like),
                      sa.func.lower(Invoice.number).like(like)]
        if len(digits) >= 4:
            conditions.append(Order.structured_communication.like(f"%{digits}%"))
        select = select.where(sa.or_(*conditions))
    rows = db.session.execute(select.order_by(Order.created_at.desc()).limit(limit)).all()
    return [Candidate(order, invoice, due_cents) for order, invoice, due_cents in rows]


def suggestions_for(entry: BankEntry, *, limit: int = 10) -> list[Candidate]:
    """Open invoices that may be what this transfer pays: same amount, or the payer's
    name."""
    found = {c.order.id: c for c in search_open_invoices(
        f"{entry.amount_cents // 100},{entry.amount_cents % 100:02d}", limit=limit)}
    name = (entry.payer_name or "").strip()
    if len(name) >= 3:
        for candidate in search_open_invoices(name, limit=limit):
            found.setdefault(candidate.order.id, candidate)
    return list(found.values())[:limit]


def booked_range(entries: Sequence[BankEntry]) -> tuple[date | None, date | None]:
    days = [e.booked_on for e in entries if e.booked_on]
    return (min(days), max(days)) if days else (None, None)
