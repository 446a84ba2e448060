"""The dispatch of an issue (verzending): lock its mailing list, write the printer's
mailing file, mail the digital subscribers their download link, mark the issue dispatched.

Locking is one transaction of set-based statements (INSERT … SELECT), not a loop over
subscriptions: it inserts the issue's `Dispatch` row (unique per issue: whoever inserts it
locks the list, a second run adds nothing), an entry per included subscription, a line per
copy group with the address that applies to this issue, and uses one issue of each
included subscription (of its grace when it is graced). A crash before the commit leaves
nothing; after it, everything. Memory stays flat whatever the number of subscriptions: the
database does the work and the mailing file is streamed.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from sqlalchemy.orm import aliased

from editorial.models import Issue, IssueState
from magazine import audit
from magazine.clock import now_utc
from magazine.db import db, insert_ignoring_duplicates, write_transaction
from magazine.errors import DomainError
from magazine.mail import queue_mail
from magazine.models import User
from magazine.roles import Role
from magazine.urls import external_url
from subscriptions.fulfilment_models import DispatchCopy, OrderDelivery
from subscriptions.models import (
    DeliveryAddress,
    Dispatch,
    DispatchEntry,
    DispatchLine,
    Order,
    OrderLine,
    Plan,
    SingleCopyOffer,
    Subscription,
)
from subscriptions.states import OrderState, SubscriptionState

log = logging.getLogger(__name__)

# The job locks an issue whose cut-off passed at most this long ago; an older issue that
# was never dispatched is left to the coordinator (a first run on old data must not use up
# everyone's issues for numbers that went out long ago by other means).
AUTOMATIC_LOOKBACK = timedelta(days=14)

CSV_HEADER = ["subscriber_number", "name", "organisation", "street", "house_number", "box",
              "postcode", "city", "country_code", "copies"]
SUMMARY_HEADER = ["country_code", "plan", "addresses", "copies"]
STOCK_NUMBER = "STOCK"
SINGLE_COPY_PLAN = "single-copy"  # the print run's name for single copies and back issues


# ---------------------------------------------------------------- locking the list

@dataclass
class LockResult:
    locked: bool              # False: the list of this issue was locked before
    subscriptions: int = 0
    copies: int = 0


def _eligible(issue: Issue, grace_issues: int) -> sa.ColumnElement[bool]:
    """Subscriptions that receive `issue`: active (or cancelled, still running out its
    term) with issues left, or graced with grace issues left; started on or before it."""
    first = aliased(Issue)
    started = sa.exists(
        sa.select(first.id).where(
            first.id == Subscription.first_issue_id,
            sa.or_(first.print_date < issue.print_date,
                   sa.and_(first.print_date == issue.print_date, first.id <= issue.id)),
        )
    )
    return sa.and_(
        sa.or_(
            sa.and_(Subscription.state.in_([SubscriptionState.ACTIVE,
                                            SubscriptionState.CANCELLED]),
                    Subscription.issues_remaining > 0),
            sa.and_(Subscription.state == SubscriptionState.GRACED,
                    Subscription.grace_issues_used < grace_issues),
        ),
        sa.or_(Subscription.first_issue_id.is_(None), started),
    )


def _applying_addresses(issue: Issue, token: str):
    """Per included subscription and copy group: the newest address row that applies to
    this issue (an address change made after the cut-off applies from a later issue)."""
    effective = aliased(Issue)
    return (
        sa.select(DeliveryAddress.subscription_id, DeliveryAddress.group_no,
                  sa.func.max(DeliveryAddress.id).label("address_id"))
        .join(DispatchEntry, sa.and_(DispatchEntry.subscription_id
                                     == DeliveryAddress.subscription_id,
                                     DispatchEntry.issue_id == issue.id,
                                     DispatchEntry.lock_token == token))
        .outerjoin(effective, effective.id == DeliveryAddress.effective_from_issue_id)
        .where(sa.or_(
            DeliveryAddress.effective_from_issue_id.is_(None),
            effective.print_date < issue.print_date,
            sa.and_(effective.print_date == issue.print_date, effective.id <= issue.id),
        ))
        .group_by(DeliveryAddress.subscription_id, DeliveryAddress.group_no)
        .subquery()
    )


def _paid_single_copies(issue: Issue):
    """(order_id, quantity) of the paid single-copy orders of `issue`."""
    return (
        sa.select(OrderLine.order_id, OrderLine.quantity)
        .join(SingleCopyOffer, SingleCopyOffer.id == OrderLine.offer_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(SingleCopyOffer.issue_id == issue.id, OrderLine.kind == "single_copy",
               Order.state == OrderState.PAID)
        .subquery()
    )


def single_copies_from_stock(issue: Issue) -> list[tuple[Order, int]]:
    """Single copies of a locked issue paid after its list was locked (back issues): not
    on the mailing file, sent by the publisher from the stock copies. (order, copies)."""
    paid = _paid_single_copies(issue)
    return [tuple(row) for row in db.session.execute(
        sa.select(Order, paid.c.quantity).join(paid, paid.c.order_id == Order.id)
        .where(~sa.exists(sa.select(DispatchCopy.id).where(
            DispatchCopy.order_id == Order.id)))
        .order_by(Order.paid_at, Order.id))]


def lock_mailing_list(issue: Issue, *, actor: User | None = None) -> LockResult:
    """Lock the mailing list of `issue` once (see the module's docstring)."""
    config = current_app.config
    now = now_utc()
    token = secrets.token_hex(16)
    with write_transaction():
        inserted = db.session.execute(
            insert_ignoring_duplicates(Dispatch)
            .values(issue_id=issue.id, locked_at=now, locked_by_id=actor.id if actor else None,
                    subscriptions=0, copies=0, stock_copies=config["PRINT_STOCK_COPIES"])
            .on_conflict_do_nothing(index_elements=["issue_id"])
            .returning(Dispatch.id)
        ).first()
        if inserted is None:
            return LockResult(locked=False)

        entries = (
            sa.select(sa.literal(issue.id), Subscription.id, Subscription.plan_id,
                      Subscription.copies, Plan.includes_digital,
                      Subscription.state == SubscriptionState.GRACED, sa.literal(token))
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(_eligible(issue, config["GRACE_ISSUES"]))
        )
        db.session.execute(
            insert_ignoring_duplicates(DispatchEntry)
            .from_select(["issue_id", "subscription_id", "plan_id", "copies", "digital",
                          "graced", "lock_token"], entries)
            .on_conflict_do_nothing()
        )

        applying = _applying_addresses(issue, token)
        lines = (
            sa.select(sa.literal(issue.id), DeliveryAddress.subscription_id,
                      DeliveryAddress.group_no, Subscription.plan_id, DeliveryAddress.copies,
                      DeliveryAddress.name, DeliveryAddress.organisation,
                      DeliveryAddress.street, DeliveryAddress.postcode, DeliveryAddress.city,
                      DeliveryAddress.country)
            .select_from(applying)
            .join(DeliveryAddress, DeliveryAddress.id == applying.c.address_id)
            .join(Subscription, Subscription.id == DeliveryAddress.subscription_id)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(Plan.includes_print.is_(True))
        )
        db.session.execute(
            insert_ignoring_duplicates(DispatchLine)
            .from_select(["issue_id", "subscription_id", "group_no", "plan_id", "copies",
                          "name", "organisation", "street", "postcode", "city", "country"],
                         lines)
            .on_conflict_do_nothing()
        )

        # Single copies of this issue paid by now: a line each, once (unique per order).
        # Those paid after the lock go out from the stock (see `single_copies_from_stock`).
        paid = _paid_single_copies(issue)
        single_copies = (
            sa.select(sa.literal(issue.id), paid.c.order_id, paid.c.quantity,
                      OrderDelivery.name, OrderDelivery.organisation, OrderDelivery.street,
                      OrderDelivery.postcode, OrderDelivery.city, OrderDelivery.country)
            .select_from(paid)
            .join(OrderDelivery, OrderDelivery.order_id == paid.c.order_id)
        )
        db.session.execute(
            insert_ignoring_duplicates(DispatchCopy)
            .from_select(["issue_id", "order_id", "copies", "name", "organisation", "street",
                          "postcode", "city", "country"], single_copies)
            .on_conflict_do_nothing()
        )

        # Each included subscription uses one issue: of its term, or of its grace. Only the
        # entries this transaction inserted count, so nothing is used twice.
        mine = sa.select(DispatchEntry.subscription_id).where(
            DispatchEntry.issue_id == issue.id, DispatchEntry.lock_token == token)
        graced = Subscription.state == SubscriptionState.GRACED
        db.session.execute(
            sa.update(Subscription)
            .where(Subscription.id.in_(mine))
            .values(
                issues_remaining=sa.case((graced, Subscription.issues_remaining),
                                         else_=Subscription.issues_remaining - 1),
                grace_issues_used=sa.case((graced, Subscription.grace_issues_used + 1),
                                          else_=Subscription.grace_issues_used),
            )
            .execution_options(synchronize_session=False)
        )
        counted = db.session.execute(
            sa.select(sa.func.count()).select_from(DispatchEntry)
            .where(DispatchEntry.issue_id == issue.id)
        ).scalar_one()
        copies = db.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(DispatchLine.copies), 0))
            .where(DispatchLine.issue_id == issue.id)
        ).scalar_one() + db.session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(DispatchCopy.copies), 0))
            .where(DispatchCopy.issue_id == issue.id)
        ).scalar_one()
        db.session.execute(
            sa.update(Dispatch).where(Dispatch.issue_id == issue.id)
            .values(subscriptions=counted, copies=copies)
            .execution_options(synchronize_session=False)
        )
        audit.record("dispatch.locked", "issue", issue.id, actor=actor,
                     subscriptions=counted, copies=copies,
                     stock_copies=config["PRINT_STOCK_COPIES"])
    return LockResult(locked=True, subscriptions=counted, copies=copies)


# ---------------------------------------------------------------- digital subscribers

class _ClockSigner(TimestampSigner):
    """Link timestamps from our clock, so tests can move past a link's expiry."""

    def get_timestamp(self) -> int:
        return int(now_utc().timestamp())


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="issue-download",
                                  signer=_ClockSigner)


def download_token(subscription_id: int, issue_id: int) -> str:
    return _serializer().dumps([subscription_id, issue_id])


def issue_for_download(token: str) -> Issue | None:
    """The issue a personal download link opens, while it is valid and its subscription
    was in that issue's dispatch; None otherwise."""
    max_age = current_app.config["DIGITAL_LINK_DAYS"] * 86400
    try:
        subscription_id, issue_id = _serializer().loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired, ValueError, TypeError):
        return None
    entry = db.session.get(DispatchEntry, (issue_id, subscription_id))
    if entry is None or not entry.digital:
        return None
    issue = db.session.get(Issue, issue_id)
    return issue if issue is not None and issue.pdf_filename else None


def _recipient(subscription: Subscription) -> tuple[str, str, str] | None:
    """(address, name, locale) of whoever reads the subscription."""
    user = subscription.subscriber
    locale = user.locale if user else "nl_BE"
    if subscription.is_gift:
        return subscription.gift_recipient_email, subscription.gift_recipient_name, locale
    if user is None:
        return None
    return user.email, user.name, locale


def mail_digital_subscribers(issue: Issue) -> int:
    """Mail each digital subscriber of a locked issue a personal, expiring link to the
    issue's PDF, once the PDF is uploaded. Each mail in its own transaction, claimed by a
    conditional update on the entry (and keyed in the outbox)."""
    if not issue.pdf_filename:
        return 0
    ids = db.session.scalars(
        sa.select(DispatchEntry.subscription_id)
        .where(DispatchEntry.issue_id == issue.id, DispatchEntry.digital.is_(True),
               DispatchEntry.mailed_at.is_(None))
        .order_by(DispatchEntry.subscription_id)
    ).all()
    db.session.rollback()
    days = current_app.config["DIGITAL_LINK_DAYS"]
    mailed = 0
    for subscription_id in ids:
        with write_transaction():
            claimed = db.session.execute(
                sa.update(DispatchEntry)
                .where(DispatchEntry.issue_id == issue.id,
                       DispatchEntry.subscription_id == subscription_id,
                       DispatchEntry.mailed_at.is_(None))
                .values(mailed_at=now_utc())
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                continue
            subscription = db.session.get(Subscription, subscription_id)
            recipient = _recipient(subscription)
            if recipient is None:
                continue
            address, name, locale = recipient
            queue_mail(
                address, "dispatch_digital_issue", key=f"issue-download:{issue.id}:"
                f"{subscription_id}", locale=locale, name=name, issue=issue,
                expires_on=(now_utc() + timedelta(days=days)).date(),
                download_url=external_url("dispatch_public.download",
                                          token=download_token(subscription_id, issue.id)),
                # A gift's reader has no account: they write to us for a new link.
                issues_url="" if subscription.is_gift
                else external_url("dispatch_public.my_issues"),
            )
            mailed += 1
    return mailed


@dataclass(frozen=True)
class ReceivedIssue:
    """One issue a subscriber's subscription was dispatched with (their /account/issues)."""

    issue: Issue
    subscription: Subscription
    locked_at: object
    digital: bool
    copies: int
    download_token: str | None  # a fresh personal link, when there is a PDF to download


def received_issues(user: User) -> list[ReceivedIssue]:
    """The issues of `user`'s subscriptions, newest first, each with a fresh expiring
    download token for a digital subscription once the PDF is uploaded (not for a gift:
    its link went to the person who receives it)."""
    rows = db.session.execute(
        sa.select(DispatchEntry, Issue, Subscription, Dispatch.locked_at)
        .join(Issue, Issue.id == DispatchEntry.issue_id)
        .join(Subscription, Subscription.id == DispatchEntry.subscription_id)
        .join(Dispatch, Dispatch.issue_id == DispatchEntry.issue_id)
        .where(Subscription.subscriber_id == user.id)
        .order_by(Issue.print_date.desc(), Issue.id.desc(), Subscription.id)
    ).all()
    received = []
    for entry, issue, subscription, locked_at in rows:
        downloadable = entry.digital and bool(issue.pdf_filename) and not subscription.is_gift
        received.append(ReceivedIssue(
            issue, subscription, locked_at, entry.digital, entry.copies,
            download_token(subscription.id, issue.id) if downloadable else None))
    return received


# ---------------------------------------------------------------- the whole dispatch

@dataclass
class DispatchResult:
    issue_code: str
    locked: bool = False
    subscriptions: int = 0
    copies: int = 0
    mailed: int = 0
    marked_dispatched: bool = False

    def summary(self) -> str:
        if not self.locked:
            text = f"dispatch {self.issue_code}: the list was locked before; nothing added"
        else:
            text = (f"dispatch {self.issue_code}: {self.subscriptions} subscriptions, "
                    f"{self.copies} printed copies")
        if self.mailed:
            text += f", {self.mailed} download links mailed"
        if self.marked_dispatched:
            text += ", issue marked dispatched"
        return text


def _may_start(actor: User | None) -> None:
    if actor is not None and not actor.has_any_role(
            frozenset({Role.COORDINATOR, Role.EDITOR_IN_CHIEF, Role.ADMIN})):
        raise DomainError(_("Only the coordinator or the editor-in-chief starts a dispatch."))


def dispatch_issue(issue: Issue, *, actor: User | None = None) -> DispatchResult:
    """Lock the list (once), mail the digital subscribers (when the PDF is there), and
    mark the issue dispatched when it is published. Safe to run again at any time."""
    _may_start(actor)
    code = issue.code
    lock = lock_mailing_list(issue, actor=actor)
    result = DispatchResult(code, lock.locked, lock.subscriptions, lock.copies)
    issue = db.session.get(Issue, issue.id)
    result.mailed = mail_digital_subscribers(issue)
    result.marked_dispatched = mark_dispatched(issue, actor=actor)
    return result


def mark_dispatched(issue: Issue, *, actor: User | None) -> bool:
    """Published → dispatched, once the list is locked (through the editorial move, which
    claims the state with a conditional update)."""
    from editorial.services import move_issue

    issue_id = issue.id
    mover = actor if actor is not None and actor.has_role(Role.COORDINATOR) else None
    try:
        with write_transaction():
            issue = db.session.get(Issue, issue_id)
            if issue.state != IssueState.PUBLISHED:
                return False
            move_issue(issue, IssueState.DISPATCHED, actor=mover)
            db.session.execute(
                sa.update(Dispatch).where(Dispatch.issue_id == issue_id)
                .values(dispatched_at=now_utc())
                .execution_options(synchronize_session=False)
            )
    except DomainError:
        # Someone moved it meanwhile (another scheduler, the chief): nothing to do here.
        return False
    return True


def issues_due(today: date) -> list[Issue]:
    """Issues the dispatch job looks at: not dispatched and their cut-off passed (lately),
    or locked already and still waiting to be published or to mail download links."""
    locked_open = sa.select(Dispatch.issue_id).where(Dispatch.dispatched_at.is_(None))
    unmailed = sa.select(DispatchEntry.issue_id).where(
        DispatchEntry.digital.is_(True), DispatchEntry.mailed_at.is_(None))
    return list(db.session.scalars(
        sa.select(Issue)
        .where(sa.or_(
            sa.and_(Issue.state != IssueState.DISPATCHED, Issue.dispatch_cutoff < today,
                    Issue.dispatch_cutoff >= today - AUTOMATIC_LOOKBACK),
            sa.and_(Issue.state != IssueState.DISPATCHED, Issue.id.in_(locked_open)),
            sa.and_(Issue.pdf_filename != "", Issue.id.in_(unmailed)),
        ))
        .order_by(Issue.dispatch_cutoff, Issue.id)
    ))


def dispatch_of(issue: Issue) -> Dispatch | None:
    return db.session.scalar(sa.select(Dispatch).where(Dispatch.issue_id == issue.id))


def find_issue(reference: str) -> Issue | None:
    """An issue by its code (`3.2`) or its id."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", reference)
    if match:
        return db.session.scalar(sa.select(Issue).where(
            Issue.volume == int(match[1]), Issue.number == int(match[2])))
    if reference.strip().isdigit():
        return db.session.get(Issue, int(reference))
    return None


# ---------------------------------------------------------------- the mailing file

_STREET = re.compile(
    r"^(?P<street>.*?\D)\s*,?\s+(?P<number>\d+(?:\s?[A-Za-z](?![A-Za-z]))?(?:-\d+[A-Za-z]?)?)"
    r"(?:\s*(?:,\s*)?(?:(?:bus|bte|boîte|box|b\.)\s*|/\s*)(?P<box>[\w.-]+))?\s*$",
    re.IGNORECASE,
)


def split_street(street: str) -> tuple[str, str, str]:
    """`Kerkstraat 12 bus 3` → (`Kerkstraat`, `12`, `3`), as a Belgian mailing house wants
    street, house number and box apart. An address it cannot read stays whole in street."""
    text = " ".join(street.split())
    match = _STREET.match(text)
    if not match:
        return text, "", ""
    return (match["street"].rstrip(" ,"), match["number"].replace(" ", ""),
            match["box"] or "")


def _publisher_line(copies: int) -> list[str]:
    """The extra stock copies go to the publisher (PUBLISHER_ADDRESS: `street nr, postcode
    city, country`)."""
    config = current_app.config
    parts = [part.strip() for part in config["PUBLISHER_ADDRESS"].split(",")]
    street, number, box = split_street(parts[0] if parts else "")
    postcode, _, city = (parts[1] if len(parts) > 1 else "").partition(" ")
    return [STOCK_NUMBER, config["PUBLISHER_NAME"], "", street, number, box, postcode, city,
            "BE", str(copies)]


def subscriber_number(subscription_id: int) -> str:
    return f"A{subscription_id:06d}"


def _line_rows(issue: Issue) -> Iterator[sa.Row]:
    """The addresses of the file: the subscriptions' copy groups and the single copies
    (kind 1: number is the order's), in one stream sorted by country and postcode."""
    columns = ("name", "organisation", "street", "postcode", "city", "country", "copies")
    subscriptions = (
        sa.select(sa.literal(0).label("kind"), DispatchLine.subscription_id.label("number"),
                  DispatchLine.group_no.label("group_no"),
                  *(getattr(DispatchLine, name).label(name) for name in columns))
        .where(DispatchLine.issue_id == issue.id)
    )
    single_copies = (
        sa.select(sa.literal(1).label("kind"), DispatchCopy.order_id.label("number"),
                  sa.literal(1).label("group_no"),
                  *(getattr(DispatchCopy, name).label(name) for name in columns))
        .where(DispatchCopy.issue_id == issue.id)
    )
    both = sa.union_all(subscriptions, single_copies).subquery()
    statement = (
        sa.select(both)
        .order_by(both.c.country, both.c.postcode, both.c.kind, both.c.number,
                  both.c.group_no)
        .execution_options(yield_per=1000)
    )
    yield from db.session.execute(statement)


def mailing_rows(issue: Issue, dispatch: Dispatch) -> Iterator[list[str]]:
    """The rows of the mailing file, header first, in a fixed order (country, postcode,
    subscriber), so that the same list always gives the same file. A single copy is a line
    like a subscriber's, numbered with its order (`B000123`): the mailing house handles
    every line the same way, one envelope with its copies, sorted by postcode for the
    post's sorting; the stock copies come last."""
    yield CSV_HEADER
    for line in _line_rows(issue):
        street, number, box = split_street(line.street)
        reference = (subscriber_number(line.number) if line.kind == 0
                     else f"B{line.number:06d}")  # the order's reference (Order.reference)
        yield [reference, line.name, line.organisation, street, number, box, line.postcode,
               line.city, line.country, str(line.copies)]
    if dispatch.stock_copies:
        yield _publisher_line(dispatch.stock_copies)


@dataclass
class PrintRun:
    rows: list[tuple[str, str, int, int]] = field(default_factory=list)  # country, plan, …
    digital_only: list[tuple[str, int]] = field(default_factory=list)     # plan, subscriptions
    stock_copies: int = 0

    @property
    def copies(self) -> int:
        return sum(row[3] for row in self.rows) + self.stock_copies

    @property
    def addresses(self) -> int:
        return sum(row[2] for row in self.rows) + (1 if self.stock_copies else 0)


def print_run(issue: Issue) -> PrintRun:
    """The print run of a locked issue by country and plan, the stock copies, and the
    subscriptions that receive it only digitally."""
    dispatch = dispatch_of(issue)
    run = PrintRun(stock_copies=dispatch.stock_copies if dispatch else 0)
    run.rows = [tuple(row) for row in db.session.execute(
        sa.select(DispatchLine.country, Plan.code, sa.func.count(), sa.func.sum(
            DispatchLine.copies))
        .join(Plan, Plan.id == DispatchLine.plan_id)
        .where(DispatchLine.issue_id == issue.id)
        .group_by(DispatchLine.country, Plan.code)
        .order_by(DispatchLine.country, Plan.code)
    )]
    run.rows += [tuple(row) for row in db.session.execute(
        sa.select(DispatchCopy.country, sa.literal(SINGLE_COPY_PLAN), sa.func.count(),
                  sa.func.sum(DispatchCopy.copies))
        .where(DispatchCopy.issue_id == issue.id)
        .group_by(DispatchCopy.country)
    )]
    run.rows.sort(key=lambda row: (row[0], row[1]))
    run.digital_only = [tuple(row) for row in db.session.execute(
        sa.select(Plan.code, sa.func.count())
        .select_from(DispatchEntry)
        .join(Plan, Plan.id == DispatchEntry.plan_id)
        .where(DispatchEntry.issue_id == issue.id, Plan.includes_print.is_(False))
        .group_by(Plan.code).order_by(Plan.code)
    )]
    return run


def summary_rows(run: PrintRun) -> Iterator[list[str]]:
    yield SUMMARY_HEADER
    for country, plan, addresses, copies in run.rows:
        yield [country, plan, str(addresses), str(copies)]
    if run.stock_copies:
        yield ["BE", STOCK_NUMBER.lower(), "1", str(run.stock_copies)]
    yield ["", "total", str(run.addresses), str(run.copies)]


def _write_atomically(path: Path, rows: Iterator[list[str]],
                      progress: Callable[[int], None] | None = None) -> None:
    """Write the CSV next to its destination, flush it to disk, then rename it over the
    destination: a reader sees the old file or the whole new one, never half of it."""
    path = path.resolve()
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            for count, row in enumerate(rows):
                writer.writerow(row)
                if progress and count and count % 500 == 0:
                    progress(500)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def summary_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-summary{path.suffix or '.csv'}")


def write_mailing_file(issue: Issue, path: Path,
                       progress: Callable[[int], None] | None = None,
                       on_start: Callable[[int], None] | None = None) -> PrintRun:
    """Write the mailing file of a locked issue to `path` and its print-run summary next
    to it (`…-summary.csv`), both atomically."""
    dispatch = dispatch_of(issue)
    if dispatch is None:
        raise DomainError(_("The mailing list of this issue is not locked yet."))
    if on_start:
        on_start(dispatch_lines_count(issue))
    _write_atomically(path, mailing_rows(issue, dispatch), progress)
    run = print_run(issue)
    _write_atomically(summary_path(path), summary_rows(run))
    return run


def dispatch_lines_count(issue: Issue) -> int:
    return db.session.execute(
        sa.select(sa.func.count()).select_from(DispatchLine)
        .where(DispatchLine.issue_id == issue.id)
    ).scalar_one() + db.session.execute(
        sa.select(sa.func.count()).select_from(DispatchCopy)
        .where(DispatchCopy.issue_id == issue.id)
    ).scalar_one()


def mailing_file_bytes(issue: Issue) -> Iterator[bytes]:
    """The mailing file streamed for a download (the same bytes as `write_mailing_file`)."""
    import io

    dispatch = dispatch_of(issue)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for count, row in enumerate(mailing_rows(issue, dispatch)):
        writer.writerow(row)
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
