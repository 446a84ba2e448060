"""Editorial models. The numbered issue (nummer) is shared: subscriptions count in issues."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from magazine.clock import now_utc
from magazine.db import UTCDateTime, db
from magazine.models import User, str_enum


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
    # The printed issue as a PDF, uploaded once it is published.
    pdf_filename: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    pdf_data: Mapped[bytes | None] = mapped_column(sa.LargeBinary, deferred=True)

    slots: Mapped[list[FlatplanSlot]] = relationship(
        back_populates="issue", order_by="FlatplanSlot.position",
        cascade="all, delete-orphan",
    )

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


# ---------------------------------------------------------------- rubrics, flatplan


class Rubric(db.Model):
    """A recurring section of the magazine ("Uit de praktijk", "Tools")."""

    __tablename__ = "rubrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class FlatplanSlot(db.Model):
    """One place in an issue's flatplan, in page order: a rubric, usually an article, and
    its pages (estimated from the article, then set by hand)."""

    __tablename__ = "flatplan_slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(
        sa.ForeignKey("issues.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    rubric_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rubrics.id"))
    # An article stands in one slot of one issue at most.
    article_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="SET NULL"), unique=True
    )
    pages: Mapped[int] = mapped_column(default=1)
    pages_set_by_hand: Mapped[bool] = mapped_column(default=False)

    issue: Mapped[Issue] = relationship(back_populates="slots")
    rubric: Mapped[Rubric | None] = relationship()
    article: Mapped[Article | None] = relationship(back_populates="slot")


# ---------------------------------------------------------------- pitches


class PitchState(enum.StrEnum):
    SUBMITTED = "submitted"
    ON_AGENDA = "on_agenda"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    DEFERRED = "deferred"
    NEEDS_INFO = "needs_info"
    WITHDRAWN = "withdrawn"


class Pitch(db.Model):
    """An idea for an article. From someone with an account (`proposer`), or from a reader
    in the field through the public form (name and address only; it reaches the board once
    `confirmed_at` is set by the mailed link)."""

    __tablename__ = "pitches"
    __table_args__ = (sa.Index("ix_pitches_proposer_email_created", "proposer_email",
                               "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    summary: Mapped[str] = mapped_column(sa.Text)
    rubric_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rubrics.id"))
    proposer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    proposer_name: Mapped[str] = mapped_column(sa.String(200))
    proposer_email: Mapped[str] = mapped_column(sa.String(254))
    proposer_organisation: Mapped[str] = mapped_column(sa.String(200), default="")
    proposed_author: Mapped[str] = mapped_column(sa.String(200), default="")
    estimated_words: Mapped[int | None]
    target_issue_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("issues.id", ondelete="SET NULL")
    )
    state: Mapped[PitchState] = mapped_column(
        str_enum(PitchState), default=PitchState.SUBMITTED, index=True
    )
    is_public: Mapped[bool] = mapped_column(default=False)
    client_address: Mapped[str] = mapped_column(sa.String(64), default="")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deferred_until: Mapped[date | None]
    # The last decision, as the proposer was told.
    decision_note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    rubric: Mapped[Rubric | None] = relationship()
    proposer: Mapped[User | None] = relationship()
    target_issue: Mapped[Issue | None] = relationship()
    votes: Mapped[list[PitchVote]] = relationship(
        back_populates="pitch", cascade="all, delete-orphan", order_by="PitchVote.id"
    )
    article: Mapped[Article | None] = relationship(back_populates="pitch")


class Vote(enum.StrEnum):
    FOR = "for"
    AGAINST = "against"
    ABSTAIN = "abstain"


class PitchVote(db.Model):
    """A board member's vote on a pitch; voting again replaces it."""

    __tablename__ = "pitch_votes"
    __table_args__ = (sa.UniqueConstraint("pitch_id", "voter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pitch_id: Mapped[int] = mapped_column(sa.ForeignKey("pitches.id", ondelete="CASCADE"))
    voter_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    vote: Mapped[Vote] = mapped_column(str_enum(Vote))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    pitch: Mapped[Pitch] = relationship(back_populates="votes")
    voter: Mapped[User] = relationship()


class DeclineReason(db.Model):
    """A reusable reason for declining a pitch, kindly worded (editable by the chief)."""

    __tablename__ = "decline_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100), unique=True)
    text: Mapped[str] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(default=True)


# ---------------------------------------------------------------- articles


class ArticleState(enum.StrEnum):
    COMMISSIONED = "commissioned"
    DRAFT_SUBMITTED = "draft_submitted"
    IN_REVIEW = "in_review"
    REVISIONS_REQUESTED = "revisions_requested"
    ACCEPTED = "accepted"
    COPYEDITING = "copyediting"
    AUTHOR_APPROVAL = "author_approval"
    READY_FOR_LAYOUT = "ready_for_layout"
    IN_LAYOUT = "in_layout"
    PROOF = "proof"
    PRESS_READY = "press_ready"
    PUBLISHED = "published"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    DEFERRED = "deferred"


class Article(db.Model):
    """Commissioned text: written by its author, reviewed, edited, laid out, printed."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    rubric_id: Mapped[int | None] = mapped_column(sa.ForeignKey("rubrics.id"))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    pitch_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("pitches.id", ondelete="SET NULL"), unique=True
    )
    issue_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("issues.id", ondelete="SET NULL"), index=True
    )
    target_words: Mapped[int] = mapped_column(default=1200)
    deadline: Mapped[date | None]
    state: Mapped[ArticleState] = mapped_column(
        str_enum(ArticleState), default=ArticleState.COMMISSIONED, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    rubric: Mapped[Rubric | None] = relationship()
    author: Mapped[User] = relationship()
    pitch: Mapped[Pitch | None] = relationship(back_populates="article")
    issue: Mapped[Issue | None] = relationship()
    slot: Mapped[FlatplanSlot | None] = relationship(back_populates="article")
    revisions: Mapped[list[Revision]] = relationship(
        back_populates="article", order_by="Revision.number", cascade="all, delete-orphan"
    )
    images: Mapped[list[ArticleImage]] = relationship(
        back_populates="article", order_by="ArticleImage.id", cascade="all, delete-orphan"
    )
    rounds: Mapped[list[ReviewRound]] = relationship(
        back_populates="article", order_by="ReviewRound.number", cascade="all, delete-orphan"
    )

    @property
    def current(self) -> Revision | None:
        return self.revisions[-1] if self.revisions else None

    @property
    def word_count(self) -> int:
        return self.current.word_count if self.current else 0


class RevisionKind(enum.StrEnum):
    DRAFT = "draft"
    UPLOAD = "upload"
    COPYEDIT = "copyedit"


class Revision(db.Model):
    """One saved version of an article's text (Markdown). Every save adds one."""

    __tablename__ = "revisions"
    __table_args__ = (sa.UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("articles.id", ondelete="CASCADE"))
    number: Mapped[int]
    body: Mapped[str] = mapped_column(sa.Text, default="")
    word_count: Mapped[int] = mapped_column(default=0)
    kind: Mapped[RevisionKind] = mapped_column(str_enum(RevisionKind),
                                               default=RevisionKind.DRAFT)
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    saved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                                  ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    article: Mapped[Article] = relationship(back_populates="revisions")
    saved_by: Mapped[User | None] = relationship()


class Consent(enum.StrEnum):
    ON_FILE = "on_file"
    NOT_NEEDED = "not_needed"
    MISSING = "missing"


class ArticleImage(db.Model):
    """A picture with an article: checked to be a real image of sane size when uploaded."""

    __tablename__ = "article_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("articles.id", ondelete="CASCADE"),
                                            index=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    content_type: Mapped[str] = mapped_column(sa.String(50))
    width: Mapped[int]
    height: Mapped[int]
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    caption: Mapped[str] = mapped_column(sa.String(500), default="")
    credit: Mapped[str] = mapped_column(sa.String(200), default="")
    consent: Mapped[Consent] = mapped_column(str_enum(Consent), default=Consent.MISSING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    article: Mapped[Article] = relationship(back_populates="images")

    @property
    def is_cleared(self) -> bool:
        return bool(self.credit.strip()) and self.consent != Consent.MISSING


# ---------------------------------------------------------------- review


class ReviewRound(db.Model):
    """The readers' verdicts on one submitted revision; the chief decides after it."""

    __tablename__ = "review_rounds"
    __table_args__ = (sa.UniqueConstraint("article_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("articles.id", ondelete="CASCADE"))
    number: Mapped[int]
    revision_id: Mapped[int | None] = mapped_column(sa.ForeignKey("revisions.id",
                                                                  ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    article: Mapped[Article] = relationship(back_populates="rounds")
    revision: Mapped[Revision | None] = relationship()
    reviews: Mapped[list[Review]] = relationship(
        back_populates="round", order_by="Review.id", cascade="all, delete-orphan"
    )


class Recommendation(enum.StrEnum):
    ACCEPT = "accept"
    MINOR = "minor"
    MAJOR = "major"
    REJECT = "reject"


class Review(db.Model):
    """One reader's reading: a board member (by account) or an external reviewer (by a
    magic link, no account). `confidential_note` is for the editors, never the author."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(sa.ForeignKey("review_rounds.id", ondelete="CASCADE"),
                                          index=True)
    reader_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"),
                                                  index=True)
    reader_name: Mapped[str] = mapped_column(sa.String(200))
    reader_email: Mapped[str] = mapped_column(sa.String(254))
    due_date: Mapped[date]
    recommendation: Mapped[Recommendation | None] = mapped_column(str_enum(Recommendation))
    comments_for_author: Mapped[str] = mapped_column(sa.Text, default="")
    confidential_note: Mapped[str] = mapped_column(sa.Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    round: Mapped[ReviewRound] = relationship(back_populates="reviews")
    reader: Mapped[User | None] = relationship()


# ---------------------------------------------------------------- links, threads


class LinkPurpose(enum.StrEnum):
    CONFIRM_PITCH = "confirm_pitch"
    PITCH_INFO = "pitch_info"
    REVIEW = "review"
    AUTHOR_APPROVAL = "author_approval"


class MagicLink(db.Model):
    """A mailed link that opens one thing without an account. We keep only the token's
    hash; the link expires, and a used one-time link stops working."""

    __tablename__ = "magic_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    purpose: Mapped[LinkPurpose] = mapped_column(str_enum(LinkPurpose))
    object_id: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class Comment(db.Model):
    """A message in the discussion thread of a pitch or an article."""

    __tablename__ = "editorial_comments"
    __table_args__ = (
        sa.CheckConstraint("(pitch_id IS NULL) <> (article_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pitch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("pitches.id", ondelete="CASCADE"),
                                                 index=True)
    article_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    author: Mapped[User | None] = relationship()
    pitch: Mapped[Pitch | None] = relationship()
    article: Mapped[Article | None] = relationship()
