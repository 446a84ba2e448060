"""The editorial states as data: which moves exist, and who may make each one.

Every table here is tested whole (every move × every role, allowed and forbidden). The
service functions in `editorial.services` are the only code that changes `.state`; they read
these tables and nothing else to decide whether a move is allowed.

Who may move is written per move as a set of *parties*: a role (`Role.EDITOR_IN_CHIEF`), or a
relation to the object (`Party.PROPOSER`: the person who proposed this pitch; `Party.AUTHOR`:
the author of this article), or `Party.SYSTEM` (a job or a cascade, no person). An
administrator manages people and roles, not editorial decisions, so `Role.ADMIN` appears in
no table: the editor-in-chief decides.
"""

from __future__ import annotations

import enum
import itertools

from flask_babel import lazy_gettext as _l

from editorial.models import ArticleState, IssueState, PitchState
from magazine.roles import Role


class Party(enum.StrEnum):
    """Who someone is to the object, besides their roles."""

    PROPOSER = "proposer"
    AUTHOR = "author"
    SYSTEM = "system"


Mover = Role | Party
Moves = dict[tuple[enum.Enum, enum.Enum], frozenset[Mover]]

CHIEF = frozenset({Role.EDITOR_IN_CHIEF})
CHIEF_AND_BOARD = frozenset({Role.EDITOR_IN_CHIEF, Role.BOARD_MEMBER})
CHIEF_AND_PROPOSER = frozenset({Role.EDITOR_IN_CHIEF, Party.PROPOSER})
CHIEF_AND_AUTHOR = frozenset({Role.EDITOR_IN_CHIEF, Party.AUTHOR})
PRODUCTION = frozenset({Role.EDITOR_IN_CHIEF, Role.COPY_EDITOR})


def transitions_of(moves: Moves) -> dict:
    """The plain transition table (`state -> frozenset of next states`) of a moves table."""
    table: dict = {}
    for source, target in moves:
        table.setdefault(source, set()).add(target)
    return {source: frozenset(targets) for source, targets in table.items()}


# ---------------------------------------------------------------- pitches

P = PitchState
OPEN_PITCH_STATES = frozenset({P.SUBMITTED, P.ON_AGENDA, P.NEEDS_INFO, P.DEFERRED})

PITCH_MOVES: Moves = {
    (P.SUBMITTED, P.ON_AGENDA): CHIEF_AND_BOARD,
    (P.ON_AGENDA, P.ACCEPTED): CHIEF,
    (P.ON_AGENDA, P.DECLINED): CHIEF,
    (P.ON_AGENDA, P.DEFERRED): CHIEF,
    (P.ON_AGENDA, P.NEEDS_INFO): CHIEF,
    # The proposer answers the question (by the mailed link); the chief may put it back too.
    (P.NEEDS_INFO, P.SUBMITTED): CHIEF_AND_PROPOSER,
    # Back on the agenda by hand, or by the housekeeping job when its date has come.
    (P.DEFERRED, P.ON_AGENDA): CHIEF_AND_BOARD | {Party.SYSTEM},
    # Undoing a decline is the chief's alone.
    (P.DECLINED, P.SUBMITTED): CHIEF,
    **{(state, P.WITHDRAWN): CHIEF_AND_PROPOSER for state in OPEN_PITCH_STATES},
}
PITCH_TRANSITIONS: dict[PitchState, frozenset[PitchState]] = {
    state: frozenset() for state in PitchState
} | transitions_of(PITCH_MOVES)


# ---------------------------------------------------------------- articles

A = ArticleState
# The production line; the chief may step an article back one stage on it.
PRODUCTION_LINE = (
    A.ACCEPTED, A.COPYEDITING, A.AUTHOR_APPROVAL, A.READY_FOR_LAYOUT, A.IN_LAYOUT, A.PROOF,
    A.PRESS_READY,
)
# Before acceptance the author may still withdraw; after it only the chief can.
WRITING_STATES = frozenset({A.COMMISSIONED, A.DRAFT_SUBMITTED, A.IN_REVIEW,
                            A.REVISIONS_REQUESTED})
FINAL_ARTICLE_STATES = frozenset({A.PUBLISHED, A.DECLINED, A.WITHDRAWN})

ARTICLE_MOVES: Moves = {
    (A.COMMISSIONED, A.DRAFT_SUBMITTED): CHIEF_AND_AUTHOR,
    (A.DRAFT_SUBMITTED, A.IN_REVIEW): CHIEF,
    (A.DRAFT_SUBMITTED, A.REVISIONS_REQUESTED): CHIEF,
    (A.DRAFT_SUBMITTED, A.ACCEPTED): CHIEF,
    (A.DRAFT_SUBMITTED, A.DECLINED): CHIEF,
    (A.IN_REVIEW, A.REVISIONS_REQUESTED): CHIEF,
    (A.IN_REVIEW, A.ACCEPTED): CHIEF,
    (A.IN_REVIEW, A.DECLINED): CHIEF,
    (A.REVISIONS_REQUESTED, A.DRAFT_SUBMITTED): CHIEF_AND_AUTHOR,
    (A.ACCEPTED, A.COPYEDITING): PRODUCTION,
    (A.COPYEDITING, A.AUTHOR_APPROVAL): PRODUCTION,
    # The author approves the final text (by link) or comments, which returns it to the
    # copy editor.
    (A.AUTHOR_APPROVAL, A.READY_FOR_LAYOUT): CHIEF_AND_AUTHOR,
    (A.AUTHOR_APPROVAL, A.COPYEDITING): CHIEF_AND_AUTHOR,
    (A.READY_FOR_LAYOUT, A.IN_LAYOUT): PRODUCTION,
    (A.IN_LAYOUT, A.PROOF): PRODUCTION,
    (A.PROOF, A.PRESS_READY): PRODUCTION,
    # Publishing follows the issue: moving the issue to published publishes its articles.
    (A.PRESS_READY, A.PUBLISHED): frozenset({Role.EDITOR_IN_CHIEF, Party.SYSTEM}),
    # One stage back on the production line (AUTHOR_APPROVAL -> COPYEDITING is above).
    **{
        (later, earlier): CHIEF
        for earlier, later in itertools.pairwise(PRODUCTION_LINE)
        if (later, earlier) != (A.AUTHOR_APPROVAL, A.COPYEDITING)
    },
    # The stock of accepted copy: out of the production line, and back in.
    **{(state, A.DEFERRED): CHIEF for state in PRODUCTION_LINE},
    (A.DEFERRED, A.ACCEPTED): CHIEF,
    (A.DEFERRED, A.READY_FOR_LAYOUT): CHIEF,
    **{(state, A.WITHDRAWN): CHIEF_AND_AUTHOR for state in WRITING_STATES},
    **{(state, A.WITHDRAWN): CHIEF for state in (*PRODUCTION_LINE, A.DEFERRED)},
}
ARTICLE_TRANSITIONS: dict[ArticleState, frozenset[ArticleState]] = {
    state: frozenset() for state in ArticleState
} | transitions_of(ARTICLE_MOVES)


# ---------------------------------------------------------------- issues

I = IssueState  # noqa: E741 - a short name for the table, like P and A
ISSUE_MOVES: Moves = {
    (I.PLANNED, I.COPY_CLOSED): CHIEF,
    (I.COPY_CLOSED, I.PLANNED): CHIEF,
    (I.COPY_CLOSED, I.IN_LAYOUT): PRODUCTION,
    (I.IN_LAYOUT, I.COPY_CLOSED): CHIEF,
    # Guarded: every placed article press_ready and the page count fits (see services).
    (I.IN_LAYOUT, I.AT_PRINTER): CHIEF,
    (I.AT_PRINTER, I.PUBLISHED): CHIEF,
    # Dispatch belongs to the subscriptions side: its job or the coordinator.
    (I.PUBLISHED, I.DISPATCHED): frozenset({Role.COORDINATOR, Party.SYSTEM}),
}
ISSUE_TRANSITIONS: dict[IssueState, frozenset[IssueState]] = {
    state: frozenset() for state in IssueState
} | transitions_of(ISSUE_MOVES)


# ---------------------------------------------------------------- labels

PITCH_STATE_LABELS = {
    P.SUBMITTED: _l("Submitted"),
    P.ON_AGENDA: _l("On the agenda"),
    P.ACCEPTED: _l("Accepted"),
    P.DECLINED: _l("Declined"),
    P.DEFERRED: _l("Deferred"),
    P.NEEDS_INFO: _l("More information asked"),
    P.WITHDRAWN: _l("Withdrawn"),
}
ARTICLE_STATE_LABELS = {
    A.COMMISSIONED: _l("Commissioned"),
    A.DRAFT_SUBMITTED: _l("Draft submitted"),
    A.IN_REVIEW: _l("In review"),
    A.REVISIONS_REQUESTED: _l("Revisions requested"),
    A.ACCEPTED: _l("Accepted"),
    A.COPYEDITING: _l("Copy editing"),
    A.AUTHOR_APPROVAL: _l("Author approval"),
    A.READY_FOR_LAYOUT: _l("Ready for layout"),
    A.IN_LAYOUT: _l("In layout"),
    A.PROOF: _l("Proof"),
    A.PRESS_READY: _l("Press ready"),
    A.PUBLISHED: _l("Published"),
    A.DECLINED: _l("Declined"),
    A.WITHDRAWN: _l("Withdrawn"),
    A.DEFERRED: _l("Deferred (stock)"),
}
ISSUE_STATE_LABELS = {
    I.PLANNED: _l("Planned"),
    I.COPY_CLOSED: _l("Copy closed"),
    I.IN_LAYOUT: _l("In layout"),
    I.AT_PRINTER: _l("At the printer"),
    I.PUBLISHED: _l("Published"),
    I.DISPATCHED: _l("Dispatched"),
}
