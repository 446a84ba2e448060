"""What waits on whom: "my work", the board's overview, the calendar of deadlines, search,
and the personal iCalendar feed. Read-only; the reminders job (editorial.jobs) uses the
same list of due work, so that what a person sees and what they are reminded of agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import icalendar
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, Signer

from editorial.models import (
    Article,
    ArticleState,
    Issue,
    IssueState,
    Pitch,
    PitchState,
    Review,
    ReviewRound,
    Rubric,
)
from editorial.services import (
    OPEN_PITCH_STATES,
    OVERVIEW_ROLES,
    today_local,
    visible_articles,
    visible_pitches,
)
from editorial.states import FINAL_ARTICLE_STATES
from magazine.clock import now_utc
from magazine.db import db
from magazine.models import User
from magazine.roles import Role


@dataclass(frozen=True)
class WorkItem:
    """One thing that waits on one person. `key` names the deadline (for reminders)."""

    key: str
    kind: str  # write, revise, approve, read, decide_article, assign, copyedit, layout, ...
    what: str
    title: str
    endpoint: str
    values: tuple[tuple[str, int], ...]
    due: date | None
    person: User | None = None  # None: an external reader (see `email`)
    email: str = ""
    name: str = ""

    def overdue(self, today: date) -> bool:
        return self.due is not None and self.due < today


def _item(key, kind, what, title, endpoint, due, person=None, email="", name="", **values):
    return WorkItem(key=key, kind=kind, what=what, title=title, endpoint=endpoint,
                    values=tuple(values.items()), due=due, person=person,
                    email=email or (person.email if person else ""),
                    name=name or (person.name if person else ""))


def _production_due(article: Article) -> date | None:
    issue = article.issue
    if issue is None:
        return None
    return {
        ArticleState.ACCEPTED: issue.layout_deadline,
        ArticleState.COPYEDITING: issue.layout_deadline,
        ArticleState.AUTHOR_APPROVAL: issue.layout_deadline,
        ArticleState.READY_FOR_LAYOUT: issue.layout_deadline,
        ArticleState.IN_LAYOUT: issue.proof_deadline,
        ArticleState.PROOF: issue.printer_deadline,
    }.get(article.state)


def due_work() -> list[WorkItem]:
    """Every piece of editorial work that waits on someone, with its due date."""
    items: list[WorkItem] = []
    chiefs = _people(Role.EDITOR_IN_CHIEF)
    copy_editors = _people(Role.COPY_EDITOR)
    articles = db.session.scalars(
        sa.select(Article).where(Article.state.not_in(list(FINAL_ARTICLE_STATES)))
    ).all()
    for article in articles:
        state = article.state
        args = {"article_id": article.id}
        if state == ArticleState.COMMISSIONED:
            items.append(_item(f"article:{article.id}:write", "write", _("Write and submit"),
                               article.title, "editorial.article_detail", article.deadline,
                               article.author, **args))
        elif state == ArticleState.REVISIONS_REQUESTED:
            items.append(_item(f"article:{article.id}:revise", "revise",
                               _("Revise and submit again"), article.title,
                               "editorial.article_detail", article.deadline, article.author,
                               **args))
        elif state == ArticleState.AUTHOR_APPROVAL:
            items.append(_item(f"article:{article.id}:approve", "approve",
                               _("Approve the final text (link in your mail)"), article.title,
                               "editorial.article_detail", _production_due(article),
                               article.author, **args))
        elif state == ArticleState.DRAFT_SUBMITTED:
            items += [_item(f"article:{article.id}:assign", "assign",
                            _("Ask readers or decide"), article.title,
                            "editorial.article_detail", None, chief, **args)
                      for chief in chiefs]
        elif state == ArticleState.IN_REVIEW:
            round_ = article.rounds[-1] if article.rounds else None
            if round_ is not None and all(r.submitted_at for r in round_.reviews):
                items += [_item(f"article:{article.id}:decide", "decide_article",
                                _("All readings are in: decide"), article.title,
                                "editorial.article_detail", None, chief, **args)
                          for chief in chiefs]
        elif state in (ArticleState.ACCEPTED, ArticleState.COPYEDITING,
                       ArticleState.READY_FOR_LAYOUT, ArticleState.IN_LAYOUT,
                       ArticleState.PROOF):
            what = {ArticleState.ACCEPTED: _("Start copy editing"),
                    ArticleState.COPYEDITING: _("Copy edit"),
                    ArticleState.READY_FOR_LAYOUT: _("Send to layout"),
                    ArticleState.IN_LAYOUT: _("Layout: proof due"),
                    ArticleState.PROOF: _("Check the proof")}[state]
            items += [_item(f"article:{article.id}:{state.value}", "production", what,
                            article.title, "editorial.article_detail", _production_due(article),
                            editor, **args) for editor in copy_editors]
    reviews = db.session.scalars(
        sa.select(Review).join(ReviewRound, Review.round_id == ReviewRound.id)
        .where(Review.submitted_at.is_(None), ReviewRound.closed_at.is_(None))
    ).all()
    for review in reviews:
        endpoint = "editorial.review_detail" if review.reader else "editorial.article_detail"
        items.append(_item(f"review:{review.id}:read", "read", _("Read and give your advice"),
                           review.round.article.title, endpoint, review.due_date, review.reader,
                           email=review.reader_email, name=review.reader_name,
                           **({"review_id": review.id} if review.reader
                              else {"article_id": review.round.article_id})))
    pitches = db.session.scalars(
        sa.select(Pitch).where(Pitch.confirmed_at.is_not(None),
                               Pitch.state.in_(list(OPEN_PITCH_STATES)))
    ).all()
    for pitch in pitches:
        args = {"pitch_id": pitch.id}
        if pitch.state in (PitchState.SUBMITTED, PitchState.ON_AGENDA):
            items += [_item(f"pitch:{pitch.id}:decide", "decide_pitch",
                            _("Put on the agenda or decide") if pitch.state ==
                            PitchState.SUBMITTED else _("Decide on the agenda"), pitch.title,
                            "editorial.pitch_detail", None, chief, **args) for chief in chiefs]
        elif pitch.state == PitchState.DEFERRED and pitch.deferred_until:
            items += [_item(f"pitch:{pitch.id}:again", "decide_pitch",
                            _("Discuss again"), pitch.title, "editorial.pitch_detail",
                            pitch.deferred_until, chief, **args) for chief in chiefs]
        elif pitch.state == PitchState.NEEDS_INFO and pitch.proposer is not None:
            items.append(_item(f"pitch:{pitch.id}:answer", "answer",
                               _("Answer the editors' question (link in your mail)"),
                               pitch.title, "editorial.pitch_detail", None, pitch.proposer,
                               **args))
    return items


def _people(role: Role) -> list[User]:
    from editorial.services import people_with_role

    return people_with_role(role)


def my_work(user: User) -> list[WorkItem]:
    """What waits on `user`, soonest due first (no date last)."""
    mine = [item for item in due_work() if item.person is not None
            and item.person.id == user.id]
    return sorted(mine, key=lambda i: (i.due is None, i.due or date.max, i.title))


def board_columns() -> list[tuple[ArticleState, list[Article]]]:
    """Articles by state, in the order of the pipeline (the board overview)."""
    order = [state for state in ArticleState if state not in FINAL_ARTICLE_STATES]
    articles = db.session.scalars(
        sa.select(Article).where(Article.state.in_(order)).order_by(Article.deadline, Article.id)
    ).all()
    return [(state, [a for a in articles if a.state == state]) for state in order]


@dataclass(frozen=True)
class Deadline:
    day: date
    what: str
    title: str
    endpoint: str
    values: tuple[tuple[str, int], ...]


ISSUE_DEADLINE_LABELS = {
    "copy_deadline": _l("Copy deadline"),
    "board_meeting": _l("Board meeting"),
    "layout_deadline": _l("Layout deadline"),
    "proof_deadline": _l("Proof deadline"),
    "printer_deadline": _l("To the printer"),
    "print_date": _l("Print date"),
    "dispatch_cutoff": _l("Dispatch cut-off"),
}


def calendar(start: date, days: int = 180) -> list[Deadline]:
    """Every deadline from `start` on: each issue's dates, articles' and readers' due dates."""
    end = start + timedelta(days=days)
    found: list[Deadline] = []
    issues = db.session.scalars(sa.select(Issue).where(
        Issue.state.not_in([IssueState.PUBLISHED, IssueState.DISPATCHED]))).all()
    for issue in issues:
        for field, label in ISSUE_DEADLINE_LABELS.items():
            day = getattr(issue, field)
            if start <= day <= end:
                found.append(Deadline(day, str(label), _("Issue %(code)s", code=issue.code),
                                      "editorial.issue_detail", (("issue_id", issue.id),)))
    for item in due_work():
        if item.due is not None and start - timedelta(days=30) <= item.due <= end and \
                item.kind in ("write", "revise", "read", "approve"):
            found.append(Deadline(item.due, f"{item.what} · {item.name}", item.title,
                                  item.endpoint, item.values))
    return sorted(found, key=lambda d: (d.day, d.title))


# ---------------------------------------------------------------- search

def search(user: User, *, words: str = "", author: str = "", rubric_id: int | None = None,
           state: str = "", issue_id: int | None = None) -> tuple[list[Pitch], list[Article]]:
    """Pitches and articles the user may see, matching words in title or summary, author
    name, rubric, state and issue."""
    pitches = visible_pitches(user)
    articles = visible_articles(user)
    for word in words.split():
        pattern = f"%{word.lower()}%"
        pitches = pitches.where(sa.or_(sa.func.lower(Pitch.title).like(pattern),
                                       sa.func.lower(Pitch.summary).like(pattern)))
        articles = articles.where(sa.or_(sa.func.lower(Article.title).like(pattern),
                                         sa.func.lower(Article.summary).like(pattern)))
    if author.strip():
        pattern = f"%{author.strip().lower()}%"
        pitches = pitches.where(sa.or_(sa.func.lower(Pitch.proposed_author).like(pattern),
                                       sa.func.lower(Pitch.proposer_name).like(pattern)))
        articles = articles.where(Article.author_id.in_(
            sa.select(User.id).where(sa.func.lower(User.name).like(pattern))))
    if rubric_id:
        pitches = pitches.where(Pitch.rubric_id == rubric_id)
        articles = articles.where(Article.rubric_id == rubric_id)
    if state:
        pitch_states = {s.value for s in PitchState}
        article_states = {s.value for s in ArticleState}
        pitches = pitches.where(Pitch.state == PitchState(state)) if state in pitch_states \
            else pitches.where(sa.false())
        articles = articles.where(Article.state == ArticleState(state)) \
            if state in article_states else articles.where(sa.false())
    if issue_id:
        pitches = pitches.where(Pitch.target_issue_id == issue_id)
        articles = articles.where(Article.issue_id == issue_id)
    return (list(db.session.scalars(pitches.limit(100))),
            list(db.session.scalars(articles.limit(100))))


def rubrics_all() -> list[Rubric]:
    return list(db.session.scalars(sa.select(Rubric).order_by(Rubric.position, Rubric.name)))


# ---------------------------------------------------------------- iCalendar

def _feed_signer() -> Signer:
    return Signer(current_app.config["SECRET_KEY"], salt="magazine.editorial.calendar")


def _password_stamp(user: User) -> str:
    return str(int(user.password_changed_at.timestamp()))


def feed_token(user: User) -> str:
    """The secret part of a person's calendar address: signed, naming the person and the
    moment of their last password change, so that changing the password retires an
    address that leaked."""
    return _feed_signer().sign(f"{user.id}.{_password_stamp(user)}").decode()


def user_for_feed(token: str) -> User | None:
    try:
        user_id, stamp = _feed_signer().unsign(token).decode().split(".")
        user = db.session.get(User, int(user_id))
    except (BadSignature, ValueError):
        return None
    if user is None or user.is_blocked or stamp != _password_stamp(user):
        return None
    return user


def ical_feed(user: User, *, url_for_item) -> bytes:
    """The person's deadlines as an iCalendar feed: their due work, and for the board the
    dates of the coming issues."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Kinderopvang Magazine//Redactie//NL")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", _("Editorial deadlines of %(name)s", name=user.name))
    stamp = now_utc()
    for item in my_work(user):
        if item.due is None:
            continue
        event = icalendar.Event()
        event.add("uid", f"{item.key}-{item.due.isoformat()}@kinderopvang-magazine")
        event.add("summary", f"{item.what}: {item.title}")
        event.add("dtstart", item.due)
        event.add("dtend", item.due + timedelta(days=1))
        event.add("dtstamp", stamp)
        event.add("url", url_for_item(item.endpoint, dict(item.values)))
        cal.add_component(event)
    if user.has_any_role(OVERVIEW_ROLES):
        for deadline in calendar(today_local() - timedelta(days=7), days=365):
            if deadline.endpoint != "editorial.issue_detail":
                continue
            event = icalendar.Event()
            event.add("uid", f"issue-{dict(deadline.values)['issue_id']}-"
                             f"{deadline.what}-{deadline.day.isoformat()}@kinderopvang-magazine")
            event.add("summary", f"{deadline.title}: {deadline.what}")
            event.add("dtstart", deadline.day)
            event.add("dtend", deadline.day + timedelta(days=1))
            event.add("dtstamp", stamp)
            cal.add_component(event)
    return cal.to_ical()
