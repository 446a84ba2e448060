"""Editorial models. The numbered issue (nummer) is shared: subscriptions count in issues."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import str_enum


class IssueState(enum.StrEnum):
    PLANNED = "planned"
    COPY_CLOSED = "copy_closed"
    IN_LAYOUT = "in_layout"
    AT_PRINTER = "at_printer"
    PUBLISHED = "published"
    DISPATCHED = "dispatched"


class Issue(db.Model):
    """One numbered print issue: volume (jaargang) and number, or a special (themanummer).

    The deadlines are worked back from the print date (see editorial services) and can be
    edited; `dispatch_cutoff` is the last day on which a subscriber's change (address, new
    subscription) still applies to this issue."""

    __tablename__ = "issues"
    __table_args__ = (sa.UniqueConstraint("volume", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    volume: Mapped[int]
    number: Mapped[int]
    theme: Mapped[str] = mapped_column(sa.String(200), default="")
    is_special: Mapped[bool] = mapped_column(default=False)
    state: Mapped[IssueState] = mapped_column(str_enum(IssueState), default=IssueState.PLANNED)
    print_date: Mapped[date]
    copy_deadline: Mapped[date]
    board_meeting: Mapped[date]
    layout_deadline: Mapped[date]
    proof_deadline: Mapped[date]
    printer_deadline: Mapped[date]
    dispatch_cutoff: Mapped[date]
    page_budget: Mapped[int] = mapped_column(default=32)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    @property
    def code(self) -> str:
        """Short reference used on labels and in lists: `3.2` for volume 3, number 2."""
        return f"{self.volume}.{self.number}"

    def __repr__(self) -> str:
        return f"<Issue {self.code} {self.state.value}>"


def next_issue_for_changes(today: date) -> Issue | None:
    """The first issue whose dispatch cut-off has not passed: a change made today (a new
    subscription, an address) applies to it."""
    return db.session.scalar(
        sa.select(Issue)
        .where(Issue.dispatch_cutoff >= today, Issue.state != IssueState.DISPATCHED)
        .order_by(Issue.dispatch_cutoff, Issue.id)
        .limit(1)
    )
