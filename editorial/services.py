"""The editorial actions. Views and jobs call these; they flush, the caller commits.

The three move functions (`move_pitch`, `move_article`, `move_issue`) are the only code that
assigns `.state`. Each checks the actor against the moves table in `editorial.states`,
applies the guards of the move, writes the audit record (which is also the item's timeline)
and queues the mails the move triggers. The decisions built on them (accepting a pitch,
sending an issue to the printer, ...) add their own data and then call the move function.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm.attributes import set_committed_value

from editorial.models import (
    Article,
    ArticleImage,
    ArticleState,
    Comment,
    Consent,
    DeclineReason,
    FlatplanSlot,
    Issue,
    IssueState,
    LinkPurpose,
    MagicLink,
    Pitch,
    PitchState,
    PitchVote,
    Recommendation,
    Review,
    ReviewRound,
    Revision,
    RevisionKind,
    Rubric,
    Vote,
)
from editorial.states import (
    ARTICLE_MOVES,
    ARTICLE_STATE_LABELS,
    FINAL_ARTICLE_STATES,
    ISSUE_MOVES,
    ISSUE_STATE_LABELS,
    OPEN_PITCH_STATES,
    PITCH_MOVES,
    PITCH_STATE_LABELS,
    Mover,
    Moves,
    Party,
)
from editorial.text import docx_to_markdown, word_count
from magazine import audit
from magazine.auth.services import find_user_by_email, invite_user, normalize_email
from magazine.clock import BRUSSELS, now_utc
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.mail import queue_mail
from magazine.models import AuditEvent, User, UserRole
from magazine.roles import Role
from magazine.urls import external_url

# Who may do what besides moving states (the moves are in editorial.states).
BOARD_ROLES = frozenset({Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER})
PITCH_SUBMIT_ROLES = frozenset({Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER, Role.AUTHOR,
                                Role.COPY_EDITOR})
# Who sees every pitch and every article (others see their own).
OVERVIEW_ROLES = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER,
                            Role.COPY_EDITOR})
PLANNING_ROLES = frozenset({Role.EDITOR_IN_CHIEF, Role.COPY_EDITOR})

CONFIRM_LINK_DAYS = 3
INFO_LINK_DAYS = 30


def today_local() -> date:
    return now_utc().astimezone(BRUSSELS).date()


def _require(actor: User | None, roles: frozenset[Role], message: str | None = None) -> User:
    if actor is None or not actor.has_any_role(roles):
        raise PermissionDenied(message or _("Your roles do not allow this."))
    return actor


def people_with_role(role: Role) -> list[User]:
    return list(db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == role, User.is_blocked.is_(False)).order_by(User.name)
    ))


# ---------------------------------------------------------------- moves

def parties(actor: User | None, *, is_proposer: bool = False, is_author: bool = False,
            by_link: Party | None = None) -> frozenset[Mover]:
    """What `actor` counts as for a move: their roles, their relation to the object, or
    the holder of a mailed link (no account), or the system (no actor)."""
    if by_link is not None:
        return frozenset({by_link})
    if actor is None:
        return frozenset({Party.SYSTEM})
    found: set[Mover] = set(actor.roles)
    if is_proposer:
        found.add(Party.PROPOSER)
    if is_author:
        found.add(Party.AUTHOR)
    return frozenset(found)


def may_move(moves: Moves, source, target, who: frozenset[Mover]) -> bool:
    return not who.isdisjoint(moves.get((source, target), frozenset()))


def _check_move(moves: Moves, source, target, who: frozenset[Mover], labels) -> None:
    if (source, target) not in moves:
        raise DomainError(_("This step is not possible: from “%(source)s” to “%(target)s”.",
                            source=labels[source], target=labels[target]))
    if not may_move(moves, source, target, who):
        raise PermissionDenied(_("You may not take this step: from “%(source)s” to "
                                 "“%(target)s”.", source=labels[source],
                                 target=labels[target]))


def _claim_state(obj, source, target) -> None:
    """Set the new state with a conditional UPDATE (where the state is still `source`), so
    that two people deciding at the same moment cannot both move the same item: the second
    one waits for the first (PostgreSQL row lock), finds the state changed and is told."""
    db.session.flush()
    model = type(obj)
    moved = db.session.execute(
        sa.update(model).where(model.id == obj.id, model.state == source)
        .values(state=target).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise DomainError(_("Someone else changed this meanwhile. Reload the page and look "
                            "again."))
    set_committed_value(obj, "state", target)


def _record_move(obj_type: str, obj, source, target, actor: User | None,
                 note: str, by_link: bool = False) -> AuditEvent:
    details = {"from": source.value, "to": target.value, "note": note}
    if by_link:
        details["by_link"] = True
    event = audit.record(f"{obj_type}.moved", obj_type, obj.id, actor=actor, **details)
    db.session.flush()
    return event


def is_proposer(pitch: Pitch, user: User | None) -> bool:
    return user is not None and pitch.proposer_id == user.id


def is_author(article: Article, user: User | None) -> bool:
    author_id = article.author_id or (article.author.id if article.author else None)
    return user is not None and author_id == user.id


def _button_order(source, targets: list) -> list:
    """Forward steps first, then steps back, then deferring or declining, withdrawing last."""
    order = list(type(source))

    def key(target):
        if target.value == "withdrawn":
            group = 3
        elif target.value in ("declined", "deferred"):
            group = 2
        elif order.index(target) < order.index(source):
            group = 1
        else:
            group = 0
        return group, order.index(target)

    return sorted(targets, key=key)


def pitch_moves_for(pitch: Pitch, actor: User | None) -> list[PitchState]:
    """The states `actor` can move this pitch to (for the buttons on its page)."""
    who = parties(actor, is_proposer=is_proposer(pitch, actor))
    return _button_order(pitch.state, [
        target for (source, target) in PITCH_MOVES
        if source == pitch.state and may_move(PITCH_MOVES, source, target, who)])


def article_moves_for(article: Article, actor: User | None) -> list[ArticleState]:
    who = parties(actor, is_author=is_author(article, actor))
    return _button_order(article.state, [
        target for (source, target) in ARTICLE_MOVES
        if source == article.state and may_move(ARTICLE_MOVES, source, target, who)])


def issue_moves_for(issue: Issue, actor: User | None) -> list[IssueState]:
    who = parties(actor)
    return _button_order(issue.state, [
        target for (source, target) in ISSUE_MOVES
        if source == issue.state and may_move(ISSUE_MOVES, source, target, who)])


def move_pitch(pitch: Pitch, to: PitchState, *, actor: User | None, note: str = "",
               by_link: bool = False, mail: bool = True) -> AuditEvent:
    """Move a pitch along PITCH_MOVES; record it; mail the proposer about a decision.

    `by_link`: the proposer, without an account, acts through a mailed link. `mail=False`:
    the caller mails (accepting mails once the article exists)."""
    source = pitch.state
    who = parties(actor, is_proposer=is_proposer(pitch, actor),
                  by_link=Party.PROPOSER if by_link else None)
    _check_move(PITCH_MOVES, source, to, who, PITCH_STATE_LABELS)
    _claim_state(pitch, source, to)
    pitch.decision_note = note if to in _PITCH_DECISIONS else pitch.decision_note
    if to != PitchState.DEFERRED:
        pitch.deferred_until = None
    event = _record_move("pitch", pitch, source, to, actor, note, by_link)
    if to in _PITCH_DECISIONS and mail:
        _mail_pitch_decision(pitch, event, actor)
    return event


_PITCH_DECISIONS = frozenset({PitchState.ACCEPTED, PitchState.DECLINED, PitchState.DEFERRED,
                              PitchState.NEEDS_INFO})


def step_pitch(pitch: Pitch, to: PitchState, *, actor: User, note: str = "") -> AuditEvent:
    """A plain step (on the agenda, back to submitted, withdrawn). The chief's decisions
    carry more than a state (an article, a reason, a date, a question) and have their own
    functions: accept_pitch, decline_pitch, defer_pitch, ask_pitch_info."""
    if to in _PITCH_DECISIONS:
        raise DomainError(_("Use the decision form for this step."))
    return move_pitch(pitch, to, actor=actor, note=note)


def _mail_pitch_decision(pitch: Pitch, event: AuditEvent, actor: User | None) -> None:
    locale = pitch.proposer.locale if pitch.proposer else "nl_BE"
    context: dict = {"pitch": pitch, "decision": pitch.state.value, "chief": actor,
                     "note": pitch.decision_note}
    if pitch.state == PitchState.NEEDS_INFO:
        token = new_link(LinkPurpose.PITCH_INFO, pitch.id, days=INFO_LINK_DAYS)
        context["answer_url"] = external_url("editorial_public.answer_pitch", token=token)
        context["answer_by"] = today_local() + timedelta(days=14)
    if pitch.state == PitchState.ACCEPTED and pitch.article is not None:
        context["article"] = pitch.article
    queue_mail(pitch.proposer_email, "editorial_pitch_decision",
               key=f"editorial:{event.id}:proposer", locale=locale, **context)


def move_article(article: Article, to: ArticleState, *, actor: User | None, note: str = "",
                 by_link: bool = False) -> AuditEvent:
    """Move an article along ARTICLE_MOVES; record it; queue the mails of the move.

    Guards: `press_ready` needs every image credited and cleared for consent. `by_link`:
    the author acts through the mailed approval link."""
    source = article.state
    who = parties(actor, is_author=is_author(article, actor),
                  by_link=Party.AUTHOR if by_link else None)
    _check_move(ARTICLE_MOVES, source, to, who, ARTICLE_STATE_LABELS)
    if to == ArticleState.PRESS_READY:
        uncleared = [image.filename for image in article.images if not image.is_cleared]
        if uncleared:
            raise DomainError(_("Not press ready yet: these images lack a credit or consent: "
                                "%(names)s.", names=", ".join(uncleared)))
    if to in (ArticleState.DRAFT_SUBMITTED,) and not article.revisions:
        raise DomainError(_("Write or upload the text before you submit it."))
    _claim_state(article, source, to)
    if source == ArticleState.IN_REVIEW and open_round(article) is not None:
        open_round(article).closed_at = now_utc()
    if to == ArticleState.DEFERRED and article.slot is not None:
        # Back to the stock: it leaves the issue's flatplan.
        db.session.delete(article.slot)
        article.issue_id = None
    event = _record_move("article", article, source, to,
                         article.author if by_link else actor, note, by_link)
    _mail_article_move(article, source, to, event, note)
    return event


def _mail_article_move(article: Article, source: ArticleState, to: ArticleState,
                       event: AuditEvent, note: str) -> None:
    author = article.author
    key = f"editorial:{event.id}"
    context = {"article": article, "note": note,
               "article_url": external_url("editorial.article_detail", article_id=article.id)}
    if to == ArticleState.DRAFT_SUBMITTED:
        for chief in people_with_role(Role.EDITOR_IN_CHIEF):
            queue_mail(chief.email, "editorial_article_submitted", key=f"{key}:{chief.id}",
                       locale=chief.locale, person=chief, **context)
    elif to in (ArticleState.REVISIONS_REQUESTED, ArticleState.ACCEPTED,
                ArticleState.DECLINED) and source in (ArticleState.DRAFT_SUBMITTED,
                                                      ArticleState.IN_REVIEW):
        queue_mail(author.email, "editorial_article_decision", key=f"{key}:author",
                   locale=author.locale, decision=to.value,
                   reviews=_author_visible_reviews(article), **context)
    if to == ArticleState.ACCEPTED and source != ArticleState.COPYEDITING:
        # New copy for the copy editors (after review, or back from the stock).
        for editor in people_with_role(Role.COPY_EDITOR):
            queue_mail(editor.email, "editorial_copy_ready", key=f"{key}:{editor.id}",
                       locale=editor.locale, person=editor, **context)
    if to == ArticleState.AUTHOR_APPROVAL:
        token = new_link(LinkPurpose.AUTHOR_APPROVAL, article.id, days=INFO_LINK_DAYS)
        queue_mail(author.email, "editorial_author_approval", key=f"{key}:author",
                   locale=author.locale,
                   approval_url=external_url("editorial_public.approval", token=token), **context)
    elif to == ArticleState.COPYEDITING and source == ArticleState.AUTHOR_APPROVAL:
        for editor in people_with_role(Role.COPY_EDITOR):
            queue_mail(editor.email, "editorial_author_commented", key=f"{key}:{editor.id}",
                       locale=editor.locale, person=editor, **context)
    elif to == ArticleState.DEFERRED:
        queue_mail(author.email, "editorial_article_deferred", key=f"{key}:author",
                   locale=author.locale, **context)


def _author_visible_reviews(article: Article) -> list[str]:
    """The readers' comments for the author of the last round (never the confidential
    notes)."""
    if not article.rounds:
        return []
    return [review.comments_for_author for review in article.rounds[-1].reviews
            if review.submitted_at and review.comments_for_author.strip()]


def move_issue(issue: Issue, to: IssueState, *, actor: User | None,
               note: str = "") -> AuditEvent:
    """Move an issue along ISSUE_MOVES. Guard for the printer: every placed article is
    press_ready and the pages fit (see `flatplan_of`). Publishing publishes its articles."""
    source = issue.state
    _check_move(ISSUE_MOVES, source, to, parties(actor), ISSUE_STATE_LABELS)
    if to == IssueState.AT_PRINTER:
        problems = printer_problems(issue)
        if problems:
            raise DomainError(_("Not ready for the printer: %(problems)s",
                                problems=" ".join(problems)))
    _claim_state(issue, source, to)
    event = _record_move("issue", issue, source, to, actor, note)
    if to == IssueState.PUBLISHED:
        for slot in issue.slots:
            if slot.article is not None and slot.article.state == ArticleState.PRESS_READY:
                move_article(slot.article, ArticleState.PUBLISHED, actor=None,
                             note=_("Published in issue %(code)s.", code=issue.code))
    return event


def timeline(obj_type: str, obj_id: int) -> list[AuditEvent]:
    """Every recorded step of one item, oldest first: who, when, from → to, note."""
    return list(db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.object_type == obj_type, AuditEvent.object_id == str(obj_id))
        .order_by(AuditEvent.at, AuditEvent.id)
    ))


# ---------------------------------------------------------------- magic links

def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(purpose: LinkPurpose, object_id: int, *, days: int) -> str:
    token = secrets.token_urlsafe(32)
    db.session.add(MagicLink(token_hash=_hash(token), purpose=purpose, object_id=object_id,
                             expires_at=now_utc() + timedelta(days=days)))
    return token


def open_link(token: str, purpose: LinkPurpose) -> MagicLink:
    """The link behind `token` for `purpose`, if it exists, is unused and has not expired."""
    link = db.session.scalar(sa.select(MagicLink).where(MagicLink.token_hash == _hash(token)))
    if link is None or link.purpose != purpose:
        raise DomainError(_("This link is not valid. Ask the editors for a new one."))
    if link.used_at is not None:
        raise DomainError(_("This link has been used already."))
    if link.expires_at < now_utc():
        raise DomainError(_("This link has expired. Ask the editors for a new one."))
    return link


# ---------------------------------------------------------------- issues

DEADLINE_FIELDS = ("copy_deadline", "board_meeting", "layout_deadline", "proof_deadline",
                   "printer_deadline", "dispatch_cutoff")


def derive_deadlines(print_date: date, offsets: dict[str, int] | None = None) -> dict[str, date]:
    """Each deadline of an issue, worked back from its print date by the configured days."""
    offsets = offsets or current_app.config["ISSUE_DEADLINE_OFFSETS"]
    return {name: print_date - timedelta(days=offsets[name]) for name in DEADLINE_FIELDS}


def _check_deadlines(print_date: date, deadlines: dict[str, date]) -> None:
    for name, value in deadlines.items():
        if value > print_date:
            raise DomainError(_("A deadline cannot fall after the print date."), field=name)


def create_issue(*, actor: User, volume: int, number: int, print_date: date, theme: str = "",
                 is_special: bool = False, page_budget: int = 32,
                 deadlines: dict[str, date | None] | None = None) -> Issue:
    """A new planned issue; deadlines not given are worked back from the print date."""
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief plans issues."))
    if volume < 1 or number < 1:
        raise DomainError(_("Volume and number are whole numbers from 1."), field="number")
    if page_budget < 4 or page_budget % 4:
        raise DomainError(_("The page budget is a multiple of 4 (a stapled magazine)."),
                          field="page_budget")
    exists = db.session.scalar(sa.select(Issue.id).where(Issue.volume == volume,
                                                         Issue.number == number))
    if exists is not None:
        raise DomainError(_("Issue %(code)s exists already.", code=f"{volume}.{number}"),
                          field="number")
    derived = derive_deadlines(print_date)
    given = {k: v for k, v in (deadlines or {}).items() if v is not None}
    merged = derived | given
    _check_deadlines(print_date, merged)
    issue = Issue(volume=volume, number=number, theme=theme.strip(), is_special=is_special,
                  print_date=print_date, page_budget=page_budget, state=IssueState.PLANNED,
                  **merged)
    db.session.add(issue)
    db.session.flush()
    audit.record("issue.created", "issue", issue.id, actor=actor, code=issue.code,
                 print_date=print_date.isoformat())
    return issue


def update_issue(issue: Issue, *, actor: User, theme: str, is_special: bool, print_date: date,
                 page_budget: int, deadlines: dict[str, date]) -> None:
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief plans issues."))
    if page_budget < 4 or page_budget % 4:
        raise DomainError(_("The page budget is a multiple of 4 (a stapled magazine)."),
                          field="page_budget")
    _check_deadlines(print_date, deadlines)
    issue.theme, issue.is_special = theme.strip(), is_special
    issue.print_date, issue.page_budget = print_date, page_budget
    for name, value in deadlines.items():
        setattr(issue, name, value)
    audit.record("issue.updated", "issue", issue.id, actor=actor, code=issue.code)


def upcoming_issues(today: date | None = None) -> list[Issue]:
    """Issues not yet printed, soonest first (the choices for a target issue)."""
    return list(db.session.scalars(
        sa.select(Issue).where(Issue.state.in_([IssueState.PLANNED, IssueState.COPY_CLOSED,
                                                IssueState.IN_LAYOUT]))
        .order_by(Issue.print_date, Issue.id)
    ))


# ---------------------------------------------------------------- flatplan

@dataclass(frozen=True)
class Flatplan:
    slots: list[FlatplanSlot]
    running: list[int]  # the page total after each slot
    total: int
    budget: int

    @property
    def over_budget(self) -> bool:
        return self.total > self.budget

    @property
    def under_budget(self) -> bool:
        return self.total < self.budget

    @property
    def multiple_of_four(self) -> bool:
        return self.total % 4 == 0

    def warnings(self) -> list[str]:
        found = []
        if self.over_budget:
            found.append(_("%(n)d pages over the budget of %(budget)d.",
                           n=self.total - self.budget, budget=self.budget))
        elif self.under_budget:
            found.append(_("%(n)d pages still free in the budget of %(budget)d.",
                           n=self.budget - self.total, budget=self.budget))
        if not self.multiple_of_four:
            found.append(_("%(total)d pages is not a multiple of 4: a stapled magazine needs "
                           "%(next)d.", total=self.total, next=math.ceil(self.total / 4) * 4))
        return found


def flatplan_of(issue: Issue) -> Flatplan:
    running, total = [], 0
    for slot in issue.slots:
        total += slot.pages
        running.append(total)
    return Flatplan(list(issue.slots), running, total, issue.page_budget)


def estimate_pages(words: int, images: int) -> int:
    """Pages an article will take: its words at WORDS_PER_PAGE, plus a page for every
    IMAGES_PER_PAGE images; at least one page."""
    config = current_app.config
    pages = words / max(config["WORDS_PER_PAGE"], 1) + images / max(config["IMAGES_PER_PAGE"], 1)
    return max(1, math.ceil(pages))


def estimate_article_pages(article: Article) -> int:
    words = article.word_count or article.target_words
    return estimate_pages(words, len(article.images))


def printer_problems(issue: Issue) -> list[str]:
    """Why the issue cannot go to the printer yet (empty: it can)."""
    plan = flatplan_of(issue)
    problems = []
    not_ready = [slot.article.title for slot in plan.slots
                 if slot.article is not None and slot.article.state != ArticleState.PRESS_READY]
    if not_ready:
        problems.append(_("not press ready: %(titles)s.", titles=", ".join(not_ready)))
    if plan.total == 0:
        problems.append(_("the flatplan is empty."))
    elif plan.over_budget:
        problems.append(_("%(total)d pages is more than the budget of %(budget)d.",
                          total=plan.total, budget=plan.budget))
    if plan.total and not plan.multiple_of_four:
        problems.append(_("%(total)d pages is not a multiple of 4.", total=plan.total))
    return problems


PLANNABLE_ISSUE_STATES = frozenset({IssueState.PLANNED, IssueState.COPY_CLOSED,
                                    IssueState.IN_LAYOUT})


def _require_planner(actor: User, issue: Issue) -> None:
    _require(actor, PLANNING_ROLES, _("Only the editor-in-chief and the copy editor plan "
                                      "the flatplan."))
    if issue.state not in PLANNABLE_ISSUE_STATES:
        raise DomainError(_("This issue has gone to the printer; its flatplan is fixed."))


def add_slot(issue: Issue, *, actor: User, label: str = "", rubric: Rubric | None = None,
             article: Article | None = None, pages: int | None = None) -> FlatplanSlot:
    """A slot at the end of the flatplan; an article's pages are estimated unless given."""
    _require_planner(actor, issue)
    if article is not None:
        if article.slot is not None:
            raise DomainError(_("This article is placed already (issue %(code)s).",
                                code=article.slot.issue.code), field="article")
        if article.state in (ArticleState.DECLINED, ArticleState.WITHDRAWN,
                             ArticleState.PUBLISHED):
            raise DomainError(_("This article cannot be placed."), field="article")
    if pages is not None and not 1 <= pages <= 200:
        raise DomainError(_("A slot has between 1 and 200 pages."), field="pages")
    if article is None and not label.strip() and rubric is None:
        raise DomainError(_("Choose an article, a rubric or write a label."), field="label")
    slot = FlatplanSlot(
        issue=issue, position=len(issue.slots), label=label.strip(),
        rubric=rubric or (article.rubric if article else None), article=article,
        pages=pages if pages is not None else (estimate_article_pages(article) if article
                                               else 1),
        pages_set_by_hand=pages is not None,
    )
    if article is not None:
        article.issue_id = issue.id
    db.session.add(slot)
    db.session.flush()
    audit.record("issue.slot_added", "issue", issue.id, actor=actor, slot=slot.id,
                 article=article.id if article else None)
    return slot


def set_slot_pages(slot: FlatplanSlot, pages: int, *, actor: User) -> None:
    _require_planner(actor, slot.issue)
    if not 1 <= pages <= 200:
        raise DomainError(_("A slot has between 1 and 200 pages."), field="pages")
    slot.pages, slot.pages_set_by_hand = pages, True


def update_slot(slot: FlatplanSlot, *, actor: User, label: str, rubric: Rubric | None,
                pages: int) -> None:
    """Change a slot's label, rubric and pages (pages given here count as set by hand)."""
    _require_planner(actor, slot.issue)
    if slot.article is None and not label.strip() and rubric is None:
        raise DomainError(_("Choose an article, a rubric or write a label."), field="label")
    if not 1 <= pages <= 200:
        raise DomainError(_("A slot has between 1 and 200 pages."), field="pages")
    if pages != slot.pages:
        slot.pages_set_by_hand = True
    slot.label, slot.rubric, slot.pages = label.strip(), rubric, pages
    audit.record("issue.slot_changed", "issue", slot.issue_id, actor=actor, slot=slot.id)


def _renumber(issue: Issue, ordered: list[FlatplanSlot]) -> None:
    for position, slot in enumerate(ordered):
        slot.position = position
    issue.slots.sort(key=lambda s: s.position)


def move_slot(slot: FlatplanSlot, offset: int, *, actor: User) -> None:
    """One place up (-1) or down (+1); at either end nothing changes."""
    issue = slot.issue
    _require_planner(actor, issue)
    ordered = list(issue.slots)
    index = ordered.index(slot)
    target = index + offset
    if 0 <= target < len(ordered):
        ordered[index], ordered[target] = ordered[target], ordered[index]
        _renumber(issue, ordered)


def reorder_slots(issue: Issue, slot_ids: list[int], *, actor: User) -> None:
    """The whole order at once (drag and drop): every slot of the issue exactly once."""
    _require_planner(actor, issue)
    by_id = {slot.id: slot for slot in issue.slots}
    if sorted(slot_ids) != sorted(by_id):
        raise DomainError(_("The flatplan changed meanwhile. Reload the page and try again."))
    _renumber(issue, [by_id[i] for i in slot_ids])
    audit.record("issue.reordered", "issue", issue.id, actor=actor)


def remove_slot(slot: FlatplanSlot, *, actor: User) -> None:
    issue = slot.issue
    _require_planner(actor, issue)
    if slot.article is not None:
        slot.article.issue_id = None
    ordered = [s for s in issue.slots if s is not slot]
    issue.slots.remove(slot)
    db.session.delete(slot)
    _renumber(issue, ordered)
    audit.record("issue.slot_removed", "issue", issue.id, actor=actor)


def placeable_articles() -> list[Article]:
    """Accepted copy not yet placed: what the flatplan can take."""
    states = [ArticleState.COMMISSIONED, ArticleState.DRAFT_SUBMITTED, ArticleState.IN_REVIEW,
              ArticleState.REVISIONS_REQUESTED, ArticleState.ACCEPTED,
              ArticleState.COPYEDITING, ArticleState.AUTHOR_APPROVAL,
              ArticleState.READY_FOR_LAYOUT, ArticleState.IN_LAYOUT, ArticleState.PROOF,
              ArticleState.PRESS_READY, ArticleState.DEFERRED]
    placed = sa.select(FlatplanSlot.article_id).where(FlatplanSlot.article_id.is_not(None))
    return list(db.session.scalars(
        sa.select(Article).where(Article.state.in_(states), Article.id.not_in(placed))
        .order_by(Article.title)
    ))


# ---------------------------------------------------------------- rubrics, reasons

def active_rubrics() -> list[Rubric]:
    return list(db.session.scalars(
        sa.select(Rubric).where(Rubric.active.is_(True)).order_by(Rubric.position, Rubric.name)
    ))


def save_rubric(rubric: Rubric | None, *, actor: User, name: str, description: str = "",
                active: bool = True) -> Rubric:
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief edits the rubrics."))
    name = name.strip()
    clash = db.session.scalar(sa.select(Rubric).where(sa.func.lower(Rubric.name) == name.lower()))
    if not name:
        raise DomainError(_("Give the rubric a name."), field="name")
    if clash is not None and clash is not rubric:
        raise DomainError(_("There is a rubric with this name already."), field="name")
    if rubric is None:
        rubric = Rubric(position=len(active_rubrics()))
        db.session.add(rubric)
    rubric.name, rubric.description, rubric.active = name, description.strip(), active
    db.session.flush()
    audit.record("rubric.saved", "rubric", rubric.id, actor=actor, name=name, active=active)
    return rubric


def save_decline_reason(reason: DeclineReason | None, *, actor: User, title: str, text: str,
                        active: bool = True) -> DeclineReason:
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief edits the reasons."))
    title, text = title.strip(), text.strip()
    if not title:
        raise DomainError(_("Give the reason a short title."), field="title")
    if not text:
        raise DomainError(_("Write the text the proposer will read."), field="text")
    clash = db.session.scalar(sa.select(DeclineReason).where(DeclineReason.title == title))
    if clash is not None and clash is not reason:
        raise DomainError(_("There is a reason with this title already."), field="title")
    if reason is None:
        reason = DeclineReason()
        db.session.add(reason)
    reason.title, reason.text, reason.active = title, text, active
    db.session.flush()
    audit.record("decline_reason.saved", "decline_reason", reason.id, actor=actor, title=title)
    return reason


def active_decline_reasons() -> list[DeclineReason]:
    return list(db.session.scalars(
        sa.select(DeclineReason).where(DeclineReason.active.is_(True))
        .order_by(DeclineReason.title)
    ))


# ---------------------------------------------------------------- pitches

def can_see_pitch(user: User, pitch: Pitch) -> bool:
    return user.has_any_role(OVERVIEW_ROLES) or is_proposer(pitch, user)


def _check_pitch_fields(title: str, summary: str, estimated_words: int | None) -> None:
    if not title.strip():
        raise DomainError(_("Give your proposal a title."), field="title")
    if len(summary.strip()) < 20:
        raise DomainError(_("Tell us a bit more: what is the article about, and why now? "
                            "(at least 20 characters)"), field="summary")
    if estimated_words is not None and not 100 <= estimated_words <= 10000:
        raise DomainError(_("An article has between 100 and 10,000 words."),
                          field="estimated_words")


def submit_pitch(*, actor: User, title: str, summary: str, rubric: Rubric | None = None,
                 proposed_author: str = "", estimated_words: int | None = None,
                 target_issue: Issue | None = None) -> Pitch:
    """A pitch from someone with an account (board member, author): it reaches the board
    at once."""
    _require(actor, PITCH_SUBMIT_ROLES, _("Your roles do not allow you to propose articles."))
    _check_pitch_fields(title, summary, estimated_words)
    pitch = Pitch(
        title=title.strip(), summary=summary.strip(), rubric=rubric, proposer=actor,
        proposer_name=actor.name, proposer_email=actor.email,
        proposed_author=proposed_author.strip() or actor.name,
        estimated_words=estimated_words, target_issue=target_issue,
        state=PitchState.SUBMITTED, confirmed_at=now_utc(),
    )
    db.session.add(pitch)
    db.session.flush()
    audit.record("pitch.submitted", "pitch", pitch.id, actor=actor, title=pitch.title)
    return pitch


def submit_public_pitch(*, name: str, email: str, title: str, summary: str,
                        organisation: str = "", rubric: Rubric | None = None,
                        estimated_words: int | None = None, honeypot: str = "",
                        client_address: str = "") -> Pitch | None:
    """A pitch from a reader in the field, without an account. It waits for the mailed
    confirmation link before the board sees it. Rate-limited per e-mail address and per
    client address. A filled-in honeypot (a field people never see) means a robot: we
    pretend all went well and keep nothing (None)."""
    if honeypot.strip():
        return None
    email = normalize_email(email)
    if not name.strip():
        raise DomainError(_("Fill in your name."), field="name")
    _check_pitch_fields(title, summary, estimated_words)
    limit = current_app.config["PUBLIC_PITCHES_PER_DAY"]
    since = now_utc() - timedelta(days=1)
    per_email = db.session.scalar(sa.select(sa.func.count()).select_from(Pitch).where(
        Pitch.is_public.is_(True), Pitch.proposer_email == email, Pitch.created_at >= since))
    per_address = db.session.scalar(sa.select(sa.func.count()).select_from(Pitch).where(
        Pitch.is_public.is_(True), Pitch.client_address == client_address,
        Pitch.created_at >= since)) if client_address else 0
    if per_email >= limit or per_address >= limit * 3:
        raise DomainError(_("You sent us several proposals today already. Thank you! Send "
                            "the next one tomorrow."), field="email")
    pitch = Pitch(
        title=title.strip(), summary=summary.strip(), rubric=rubric, proposer_name=name.strip(),
        proposer_email=email, proposer_organisation=organisation.strip(),
        proposed_author=name.strip(), estimated_words=estimated_words, is_public=True,
        client_address=client_address, state=PitchState.SUBMITTED,
    )
    db.session.add(pitch)
    db.session.flush()
    token = new_link(LinkPurpose.CONFIRM_PITCH, pitch.id, days=CONFIRM_LINK_DAYS)
    queue_mail(email, "editorial_pitch_confirm", key=f"editorial:pitch:{pitch.id}:confirm",
               pitch=pitch, valid_days=CONFIRM_LINK_DAYS,
               confirm_url=external_url("editorial_public.confirm_pitch", token=token))
    audit.record("pitch.received", "pitch", pitch.id, actor=None, title=pitch.title)
    return pitch


def confirm_public_pitch(token: str) -> Pitch:
    """The reader followed the mailed link: the pitch reaches the board's agenda."""
    link = open_link(token, LinkPurpose.CONFIRM_PITCH)
    pitch = db.session.get(Pitch, link.object_id)
    if pitch is None:
        raise DomainError(_("This proposal no longer exists."))
    link.used_at = now_utc()
    pitch.confirmed_at = now_utc()
    audit.record("pitch.confirmed", "pitch", pitch.id, actor=None)
    for chief in people_with_role(Role.EDITOR_IN_CHIEF):
        queue_mail(chief.email, "editorial_pitch_new", key=f"editorial:pitch:{pitch.id}:new:"
                   f"{chief.id}", locale=chief.locale, person=chief, pitch=pitch,
                   pitch_url=external_url("editorial.pitch_detail", pitch_id=pitch.id))
    return pitch


def visible_pitches(user: User, *, states: list[PitchState] | None = None,
                    ) -> sa.Select:
    statement = sa.select(Pitch).where(Pitch.confirmed_at.is_not(None))
    if not user.has_any_role(OVERVIEW_ROLES):
        statement = statement.where(Pitch.proposer_id == user.id)
    if states:
        statement = statement.where(Pitch.state.in_(states))
    return statement.order_by(Pitch.created_at.desc(), Pitch.id.desc())


def agenda() -> list[Pitch]:
    """The open pitches the board discusses: on the agenda first, then the new ones, then
    those waiting (deferred, more information asked)."""
    order = sa.case(
        {PitchState.ON_AGENDA: 0, PitchState.SUBMITTED: 1, PitchState.DEFERRED: 2,
         PitchState.NEEDS_INFO: 3}, value=Pitch.state, else_=4)
    return list(db.session.scalars(
        sa.select(Pitch).where(Pitch.confirmed_at.is_not(None),
                               Pitch.state.in_(OPEN_PITCH_STATES))
        .order_by(order, Pitch.created_at, Pitch.id)
    ))


def cast_vote(pitch: Pitch, *, actor: User, vote: Vote, reason: str = "") -> PitchVote:
    """A board member votes on an open pitch; voting again replaces the earlier vote."""
    _require(actor, BOARD_ROLES, _("Only board members vote on proposals."))
    if pitch.state not in OPEN_PITCH_STATES:
        raise DomainError(_("This proposal has been decided; voting is closed."))
    reason = reason.strip()
    if vote != Vote.FOR and not reason:
        raise DomainError(_("Give a short reason with this vote."), field="reason")
    existing = db.session.scalar(sa.select(PitchVote).where(PitchVote.pitch_id == pitch.id,
                                                            PitchVote.voter_id == actor.id))
    if existing is None:
        existing = PitchVote(pitch=pitch, voter=actor)
        db.session.add(existing)
    existing.vote, existing.reason, existing.at = vote, reason[:500], now_utc()
    db.session.flush()
    audit.record("pitch.voted", "pitch", pitch.id, actor=actor, vote=vote.value)
    return existing


def vote_counts(pitch: Pitch) -> dict[Vote, int]:
    counts = dict.fromkeys(Vote, 0)
    for vote in pitch.votes:
        counts[vote.vote] += 1
    return counts


def _require_chief(actor: User) -> None:
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief decides on proposals."))


def decline_pitch(pitch: Pitch, *, actor: User, reason: DeclineReason | None,
                  text: str = "") -> None:
    _require_chief(actor)
    parts = [p for p in ((reason.text if reason else ""), text.strip()) if p]
    if not parts:
        raise DomainError(_("Choose a reason or write one."), field="reason")
    move_pitch(pitch, PitchState.DECLINED, actor=actor, note="\n\n".join(parts))


def defer_pitch(pitch: Pitch, *, actor: User, until: date, note: str = "") -> None:
    _require_chief(actor)
    if until <= today_local():
        raise DomainError(_("Choose a date in the future."), field="until")
    pitch.deferred_until = until
    move_pitch(pitch, PitchState.DEFERRED, actor=actor, note=note.strip())


def ask_pitch_info(pitch: Pitch, *, actor: User, question: str) -> None:
    _require_chief(actor)
    if not question.strip():
        raise DomainError(_("Write the question for the proposer."), field="question")
    move_pitch(pitch, PitchState.NEEDS_INFO, actor=actor, note=question.strip())


def pitch_for_answer(token: str) -> Pitch:
    link = open_link(token, LinkPurpose.PITCH_INFO)
    pitch = db.session.get(Pitch, link.object_id)
    if pitch is None or pitch.state != PitchState.NEEDS_INFO:
        raise DomainError(_("This question has been answered already."))
    return pitch


def answer_pitch_question(pitch: Pitch, *, actor: User, answer: str) -> None:
    """A proposer with an account answers the chief's question on the pitch's page."""
    if not is_proposer(pitch, actor):
        raise PermissionDenied(_("Only the proposer answers this question."))
    if pitch.state != PitchState.NEEDS_INFO:
        raise DomainError(_("This question has been answered already."))
    if len(answer.strip()) < 5:
        raise DomainError(_("Write your answer."), field="answer")
    db.session.add(Comment(pitch=pitch, author=actor, author_name=actor.name,
                           body=answer.strip()))
    move_pitch(pitch, PitchState.SUBMITTED, actor=actor, note=_("Answer from the proposer."))


def answer_pitch_info(token: str, answer: str) -> Pitch:
    """The proposer answers the chief's question by the mailed link: the answer joins the
    pitch's thread and the pitch goes back to the board."""
    pitch = pitch_for_answer(token)
    if len(answer.strip()) < 5:
        raise DomainError(_("Write your answer."), field="answer")
    link = open_link(token, LinkPurpose.PITCH_INFO)
    link.used_at = now_utc()
    db.session.add(Comment(pitch=pitch, author_id=pitch.proposer_id,
                           author_name=pitch.proposer_name, body=answer.strip()))
    move_pitch(pitch, PitchState.SUBMITTED, actor=pitch.proposer, by_link=True,
               note=_("Answer from the proposer."))
    return pitch


@dataclass(frozen=True)
class Commission:
    """What accepting a pitch commissions: the author (an account, or a name and address to
    invite), rubric, words, target issue and deadline (default: the issue's copy deadline)."""

    author: User | None = None
    invite_name: str = ""
    invite_email: str = ""
    rubric: Rubric | None = None
    target_words: int = 1200
    issue: Issue | None = None
    deadline: date | None = None


def accept_pitch(pitch: Pitch, *, actor: User, commission: Commission, note: str = "",
                 ) -> Article:
    """Accept a pitch and commission its article; the author gets a mail (and, when new,
    an invitation to choose a password)."""
    _require_chief(actor)
    author = commission.author
    if author is None:
        email = normalize_email(commission.invite_email)
        if not email or "@" not in email:
            raise DomainError(_("Choose an author or give the e-mail address of a new one."),
                              field="invite_email")
        author = find_user_by_email(email)
        if author is None:
            if not commission.invite_name.strip():
                raise DomainError(_("Give the new author's name."), field="invite_name")
            author = invite_user(
                email, commission.invite_name.strip(), {Role.AUTHOR}, actor=actor,
                message=_("You are invited to write “%(title)s” for the magazine.",
                          title=pitch.title))
        elif not author.has_role(Role.AUTHOR):
            author.role_rows.append(UserRole(role=Role.AUTHOR, granted_by_id=actor.id))
    if not 100 <= commission.target_words <= 10000:
        raise DomainError(_("An article has between 100 and 10,000 words."),
                          field="target_words")
    deadline = commission.deadline or (
        commission.issue.copy_deadline if commission.issue else today_local()
        + timedelta(weeks=6))
    if deadline < today_local():
        raise DomainError(_("The deadline has passed already. Choose a later date or issue."),
                          field="deadline")
    # The pitch moves first: of two decisions at the same moment only one gets past here.
    event = move_pitch(pitch, PitchState.ACCEPTED, actor=actor, note=note.strip(),
                       mail=False)
    article = Article(
        title=pitch.title, summary=pitch.summary, rubric=commission.rubric or pitch.rubric,
        author=author, pitch=pitch, issue=commission.issue,
        target_words=commission.target_words, deadline=deadline,
        state=ArticleState.COMMISSIONED,
    )
    db.session.add(article)
    db.session.flush()
    audit.record("article.commissioned", "article", article.id, actor=actor,
                 pitch=pitch.id, author=author.id, deadline=deadline.isoformat())
    _mail_pitch_decision(pitch, event, actor)
    queue_mail(author.email, "editorial_article_commissioned",
               key=f"editorial:article:{article.id}:commissioned", locale=author.locale,
               article=article, chief=actor,
               article_url=external_url("editorial.article_detail", article_id=article.id))
    return article


# ---------------------------------------------------------------- articles

def _reads(user: User) -> sa.Select:
    return (sa.select(ReviewRound.article_id).join(Review, Review.round_id == ReviewRound.id)
            .where(Review.reader_id == user.id))


def can_see_article(user: User, article: Article) -> bool:
    """The board and copy editors see every article; an author their own; a reader the
    ones they were asked to read."""
    if user.has_any_role(OVERVIEW_ROLES) or is_author(article, user):
        return True
    return article.id in set(db.session.scalars(_reads(user)))


def visible_articles(user: User) -> sa.Select:
    statement = sa.select(Article)
    if not user.has_any_role(OVERVIEW_ROLES):
        statement = statement.where(sa.or_(Article.author_id == user.id,
                                           Article.id.in_(_reads(user))))
    return statement.order_by(Article.deadline.is_(None), Article.deadline, Article.id)


# Who may change the text in which state: the author while writing, the copy editor (and
# the chief) in production. A submitted text is frozen until the chief decides.
AUTHOR_WRITING_STATES = frozenset({ArticleState.COMMISSIONED,
                                   ArticleState.REVISIONS_REQUESTED})
EDITING_STATES = frozenset({ArticleState.ACCEPTED, ArticleState.COPYEDITING,
                            ArticleState.READY_FOR_LAYOUT, ArticleState.IN_LAYOUT,
                            ArticleState.PROOF})


def can_edit_text(user: User, article: Article) -> bool:
    if article.state in AUTHOR_WRITING_STATES:
        return is_author(article, user) or user.has_role(Role.EDITOR_IN_CHIEF)
    if article.state in EDITING_STATES:
        return user.has_any_role(PLANNING_ROLES)
    return False


def _reestimate(article: Article) -> None:
    """A placed article's estimated pages follow its text and images (until set by hand)."""
    slot = article.slot
    if slot is not None and not slot.pages_set_by_hand and \
            slot.issue.state in PLANNABLE_ISSUE_STATES:
        slot.pages = estimate_article_pages(article)


def save_revision(article: Article, *, actor: User, body: str, note: str = "",
                  kind: RevisionKind | None = None) -> Revision | None:
    """Every save is a new revision (numbered per article). Saving the same text again adds
    nothing (None)."""
    if not can_edit_text(actor, article):
        raise PermissionDenied(_("You cannot change this text now (%(state)s).",
                                 state=ARTICLE_STATE_LABELS[article.state]))
    body = body.replace("\r\n", "\n").strip() + "\n"
    if len(body) > 200_000:
        raise DomainError(_("This text is too long for one article."), field="body")
    current = article.current
    if current is not None and current.body == body:
        return None
    if kind is None:
        kind = RevisionKind.DRAFT if is_author(article, actor) else RevisionKind.COPYEDIT
    revision = Revision(article=article, number=(current.number + 1) if current else 1,
                        body=body, word_count=word_count(body), kind=kind,
                        note=note.strip()[:500], saved_by=actor)
    db.session.add(revision)
    db.session.flush()
    _reestimate(article)
    audit.record("article.saved", "article", article.id, actor=actor, revision=revision.number,
                 words=revision.word_count, kind=kind.value)
    return revision


def import_docx(article: Article, *, actor: User, data: bytes, filename: str = "") -> Revision:
    """A Word file becomes the next revision (converted to Markdown by mammoth)."""
    body = docx_to_markdown(data)
    if not body.strip():
        raise DomainError(_("This Word file holds no text."), field="file")
    revision = save_revision(article, actor=actor, body=body, kind=RevisionKind.UPLOAD,
                             note=_("Uploaded from %(name)s", name=filename or "Word"))
    if revision is None:
        raise DomainError(_("This Word file holds the same text as the current version."),
                          field="file")
    return revision


def revision_of(article: Article, number: int) -> Revision | None:
    return next((r for r in article.revisions if r.number == number), None)


# ---------------------------------------------------------------- images

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_IMAGE_BYTES = 12 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_IMAGE_SIDE = 12_000


def check_image(data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of a real picture of sane size, or a DomainError.

    Pillow reads the header and then verifies the whole file, so that a renamed document or
    a truncated file is refused; its decompression-bomb guard stays on."""
    if len(data) > MAX_IMAGE_BYTES:
        raise DomainError(_("This image is larger than 12 MB. Send a smaller version."),
                          field="file")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind, (width, height) = probe.format, probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise DomainError(_("This file is not a picture we can use (JPEG, PNG or WebP)."),
                          field="file") from exc
    if kind not in IMAGE_FORMATS:
        raise DomainError(_("Send a JPEG, PNG or WebP picture."), field="file")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise DomainError(_("This picture is too small to print (at least %(n)d pixels on "
                            "each side).", n=MIN_IMAGE_SIDE), field="file")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise DomainError(_("This picture is too large (at most %(n)d pixels on a side).",
                            n=MAX_IMAGE_SIDE), field="file")
    return IMAGE_FORMATS[kind], width, height


IMAGE_ROLES = frozenset({Role.EDITOR_IN_CHIEF, Role.COPY_EDITOR})


def _require_image_editor(actor: User, article: Article) -> None:
    if not (is_author(article, actor) or actor.has_any_role(IMAGE_ROLES)):
        raise PermissionDenied(_("Only the author and the editors manage the images."))
    if article.state in FINAL_ARTICLE_STATES or article.state == ArticleState.PRESS_READY:
        raise DomainError(_("The images of this article are fixed."))


def add_image(article: Article, *, actor: User, filename: str, data: bytes, caption: str = "",
              credit: str = "", consent: Consent = Consent.MISSING) -> ArticleImage:
    _require_image_editor(actor, article)
    content_type, width, height = check_image(data)
    safe_name = re.sub(r"[^\w.-]+", "_", filename.rsplit("/", 1)[-1])[-120:] or "image"
    image = ArticleImage(article=article, filename=safe_name, content_type=content_type,
                         width=width, height=height, data=data, caption=caption.strip(),
                         credit=credit.strip(), consent=consent)
    db.session.add(image)
    db.session.flush()
    _reestimate(article)
    audit.record("article.image_added", "article", article.id, actor=actor, image=image.id,
                 filename=safe_name)
    return image


def update_image(image: ArticleImage, *, actor: User, caption: str, credit: str,
                 consent: Consent) -> None:
    _require_image_editor(actor, image.article)
    image.caption, image.credit, image.consent = caption.strip(), credit.strip(), consent
    audit.record("article.image_updated", "article", image.article_id, actor=actor,
                 image=image.id, consent=consent.value)


def remove_image(image: ArticleImage, *, actor: User) -> None:
    _require_image_editor(actor, image.article)
    audit.record("article.image_removed", "article", image.article_id, actor=actor,
                 image=image.id)
    image.article.images.remove(image)
    db.session.delete(image)


# ---------------------------------------------------------------- review

READER_ROLES = frozenset({Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER, Role.REVIEWER})
CONFIDENTIAL_ROLES = frozenset({Role.ADMIN, Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER})


def open_round(article: Article) -> ReviewRound | None:
    last = article.rounds[-1] if article.rounds else None
    return last if last is not None and last.closed_at is None else None


def assign_reader(article: Article, *, actor: User, due_date: date, reader: User | None = None,
                  name: str = "", email: str = "") -> Review:
    """The chief asks someone to read the submitted text by `due_date`: a board member or
    reviewer with an account, or an external reader (name and address) who gets a link that
    needs no account and expires two weeks after the due date. A submitted draft goes into
    review; each submission gets its own round."""
    _require_chief(actor)
    if article.state == ArticleState.DRAFT_SUBMITTED:
        move_article(article, ArticleState.IN_REVIEW, actor=actor)
    if article.state != ArticleState.IN_REVIEW:
        raise DomainError(_("Readers are asked once the author has submitted the text."))
    if due_date < today_local():
        raise DomainError(_("Choose a due date in the future."), field="due_date")
    if reader is None:
        email = normalize_email(email)
        if not name.strip() or "@" not in email:
            raise DomainError(_("Choose a reader, or give the name and e-mail address of an "
                                "external reader."), field="email")
        reader = find_user_by_email(email)
    if reader is not None and not reader.has_any_role(READER_ROLES):
        raise DomainError(_("%(name)s is not a board member or reviewer; invite them as an "
                            "external reader instead.", name=reader.name), field="reader")
    if reader is not None and is_author(article, reader):
        raise DomainError(_("The author cannot read their own text."), field="reader")
    round_ = open_round(article)
    if round_ is None:
        round_ = ReviewRound(article=article, number=len(article.rounds) + 1,
                             revision=article.current)
        db.session.add(round_)
    if reader is not None and any(r.reader_id == reader.id for r in round_.reviews):
        raise DomainError(_("%(name)s reads this round already.", name=reader.name),
                          field="reader")
    review = Review(round=round_, reader=reader,
                    reader_name=reader.name if reader else name.strip(),
                    reader_email=reader.email if reader else email, due_date=due_date)
    db.session.add(review)
    db.session.flush()
    audit.record("article.readers_assigned", "article", article.id, actor=actor,
                 review=review.id, reader=review.reader_name, round=round_.number)
    if reader is not None:
        url = external_url("editorial.review_detail", review_id=review.id)
    else:
        days = (due_date - today_local()).days + 14
        url = external_url("editorial_public.review",
                           token=new_link(LinkPurpose.REVIEW, review.id, days=days))
    queue_mail(review.reader_email, "editorial_review_request",
               key=f"editorial:review:{review.id}:request",
               locale=reader.locale if reader else "nl_BE", review=review, article=article,
               chief=actor, review_url=url, external=reader is None)
    return review


def review_by_link(token: str) -> Review:
    link = open_link(token, LinkPurpose.REVIEW)
    review = db.session.get(Review, link.object_id)
    if review is None or review.round.closed_at is not None:
        raise DomainError(_("This reading round is closed. Thank you!"))
    return review


def submit_review(review: Review, *, recommendation: Recommendation, comments_for_author: str,
                  confidential_note: str = "", actor: User | None = None,
                  token: str | None = None) -> None:
    """A reader's verdict. By account (the reader themself) or by the mailed link; the
    round must still be open. Submitting again before the chief decides replaces it."""
    if token is not None:
        if review_by_link(token).id != review.id:
            raise PermissionDenied(_("This link opens another reading."))
    elif actor is None or review.reader_id != actor.id:
        raise PermissionDenied(_("This reading was asked of someone else."))
    if review.round.closed_at is not None:
        raise DomainError(_("This reading round is closed. Thank you!"))
    if not comments_for_author.strip():
        raise DomainError(_("Write a few words for the author."), field="comments_for_author")
    review.recommendation = recommendation
    review.comments_for_author = comments_for_author.strip()
    review.confidential_note = confidential_note.strip()
    review.submitted_at = now_utc()
    audit.record("article.reviewed", "article", review.round.article_id, actor=actor,
                 review=review.id, reader=review.reader_name)
    for chief in people_with_role(Role.EDITOR_IN_CHIEF):
        queue_mail(chief.email, "editorial_review_received",
                   key=f"editorial:review:{review.id}:received:"
                   f"{int(review.submitted_at.timestamp())}:{chief.id}",
                   locale=chief.locale, person=chief, review=review,
                   article=review.round.article,
                   article_url=external_url("editorial.article_detail",
                                            article_id=review.round.article_id))


def my_reviews(user: User) -> list[Review]:
    return list(db.session.scalars(
        sa.select(Review).join(ReviewRound, Review.round_id == ReviewRound.id)
        .where(Review.reader_id == user.id).order_by(Review.due_date)
    ))


def update_article(article: Article, *, actor: User, title: str, summary: str,
                   rubric: Rubric | None, target_words: int, deadline: date | None,
                   issue: Issue | None) -> None:
    """The chief changes an article's details. Moving it to another issue (or to the stock)
    takes it out of its current flatplan (copy close: move what is not ready)."""
    _require(actor, frozenset({Role.EDITOR_IN_CHIEF}),
             _("Only the editor-in-chief changes an article's details."))
    if article.state in FINAL_ARTICLE_STATES:
        raise DomainError(_("This article is finished; its details are fixed."))
    if not title.strip():
        raise DomainError(_("Give the article a title."), field="title")
    if not 100 <= target_words <= 10000:
        raise DomainError(_("An article has between 100 and 10,000 words."),
                          field="target_words")
    if article.slot is not None and (issue is None or article.slot.issue_id != issue.id):
        remove_slot(article.slot, actor=actor)
    article.title, article.summary = title.strip(), summary.strip()
    article.rubric, article.target_words, article.deadline = rubric, target_words, deadline
    article.issue = issue
    audit.record("article.updated", "article", article.id, actor=actor,
                 issue=issue.code if issue else None)


def article_for_approval(token: str) -> Article:
    """The article behind an author-approval link, while it waits for the author."""
    link = open_link(token, LinkPurpose.AUTHOR_APPROVAL)
    article = db.session.get(Article, link.object_id)
    if article is None or article.state != ArticleState.AUTHOR_APPROVAL:
        raise DomainError(_("This text is no longer waiting for your approval."))
    return article


def answer_approval(token: str, *, approved: bool, comment: str = "") -> Article:
    """The author approves the final text (it goes to layout) or comments (it goes back to
    the copy editor), through the mailed link."""
    article = article_for_approval(token)
    comment = comment.strip()
    if not approved and not comment:
        raise DomainError(_("Tell the copy editor what should change."), field="comment")
    open_link(token, LinkPurpose.AUTHOR_APPROVAL).used_at = now_utc()
    if comment:
        db.session.add(Comment(article=article, author=article.author,
                               author_name=article.author.name, body=comment))
    move_article(article, ArticleState.READY_FOR_LAYOUT if approved
                 else ArticleState.COPYEDITING, actor=None, by_link=True, note=comment)
    return article


# ---------------------------------------------------------------- threads

MENTION = re.compile(r"@([\w.+-]+@[\w-]+(?:\.[\w-]+)+|[\w.-]+)")


def add_comment(*, actor: User, body: str, pitch: Pitch | None = None,
                article: Article | None = None) -> Comment:
    """A message in the thread of a pitch or an article. `@name.surname` or `@e-mail`
    mentions mail the person named."""
    body = body.strip()
    if not body:
        raise DomainError(_("Write a message."), field="body")
    comment = Comment(pitch=pitch, article=article, author=actor, author_name=actor.name,
                      body=body)
    db.session.add(comment)
    db.session.flush()
    subject = pitch or article
    kind = "pitch" if pitch else "article"
    url = (external_url("editorial.pitch_detail", pitch_id=pitch.id) if pitch
           else external_url("editorial.article_detail", article_id=article.id))
    for person in mentioned_people(body):
        if person.id == actor.id:
            continue
        queue_mail(person.email, "editorial_mention",
                   key=f"editorial:comment:{comment.id}:{person.id}", locale=person.locale,
                   person=person, actor=actor, title=subject.title, body=body, url=url)
    audit.record(f"{kind}.commented", kind, subject.id, actor=actor, comment=comment.id)
    return comment


def mention_handle(user: User) -> str:
    """How to mention someone: their name, lowercased, spaces as dots (`@katrien.wouters`)."""
    return re.sub(r"\s+", ".", user.name.strip().lower())


def mentioned_people(body: str) -> list[User]:
    found: dict[int, User] = {}
    editorial = [r for r in Role if r not in (Role.SUBSCRIBER, Role.COORDINATOR)]
    for handle in MENTION.findall(body):
        handle = handle.rstrip(".").lower()
        if "@" in handle:
            user = find_user_by_email(handle)
        else:
            user = next((u for u in _editorial_people(editorial)
                         if mention_handle(u) == handle), None)
        if user is not None:
            found[user.id] = user
    return list(found.values())


def _editorial_people(roles: list[Role]) -> list[User]:
    return list(db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role.in_(roles)).distinct()
    ))


def thread(*, pitch: Pitch | None = None, article: Article | None = None) -> list[Comment]:
    column = Comment.pitch_id if pitch else Comment.article_id
    subject = pitch or article
    return list(db.session.scalars(
        sa.select(Comment).where(column == subject.id).order_by(Comment.created_at, Comment.id)
    ))


def to_datetime(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=BRUSSELS)
