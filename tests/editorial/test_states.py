"""The state tables, whole: their shape is the one in DESIGN.md, and for every state pair
and every kind of actor the move function allows exactly what the table says."""

from __future__ import annotations

import pytest

from editorial import services
from editorial.models import ArticleState, FlatplanSlot, IssueState, PitchState
from editorial.states import (
    ARTICLE_MOVES,
    ARTICLE_TRANSITIONS,
    ISSUE_MOVES,
    ISSUE_TRANSITIONS,
    PITCH_MOVES,
    PITCH_TRANSITIONS,
    Party,
)
from magazine.db import db
from magazine.errors import DomainError, PermissionDenied
from magazine.roles import Role
from tests.editorial.conftest import make_article, make_pitch
from tests.factories import make_issue, make_user

P, A, I = PitchState, ArticleState, IssueState  # noqa: E741

# Written out by hand from DESIGN.md, independent of editorial/states.py.
EXPECTED_PITCH = {
    P.SUBMITTED: {P.ON_AGENDA, P.WITHDRAWN},
    P.ON_AGENDA: {P.ACCEPTED, P.DECLINED, P.DEFERRED, P.NEEDS_INFO, P.WITHDRAWN},
    P.NEEDS_INFO: {P.SUBMITTED, P.WITHDRAWN},
    P.DEFERRED: {P.ON_AGENDA, P.WITHDRAWN},
    P.DECLINED: {P.SUBMITTED},
    P.ACCEPTED: set(),
    P.WITHDRAWN: set(),
}
EXPECTED_ARTICLE = {
    A.COMMISSIONED: {A.DRAFT_SUBMITTED, A.WITHDRAWN},
    A.DRAFT_SUBMITTED: {A.IN_REVIEW, A.REVISIONS_REQUESTED, A.ACCEPTED, A.DECLINED,
                        A.WITHDRAWN},
    A.IN_REVIEW: {A.REVISIONS_REQUESTED, A.ACCEPTED, A.DECLINED, A.WITHDRAWN},
    A.REVISIONS_REQUESTED: {A.DRAFT_SUBMITTED, A.WITHDRAWN},
    A.ACCEPTED: {A.COPYEDITING, A.DEFERRED, A.WITHDRAWN},
    A.COPYEDITING: {A.AUTHOR_APPROVAL, A.ACCEPTED, A.DEFERRED, A.WITHDRAWN},
    A.AUTHOR_APPROVAL: {A.READY_FOR_LAYOUT, A.COPYEDITING, A.DEFERRED, A.WITHDRAWN},
    A.READY_FOR_LAYOUT: {A.IN_LAYOUT, A.AUTHOR_APPROVAL, A.DEFERRED, A.WITHDRAWN},
    A.IN_LAYOUT: {A.PROOF, A.READY_FOR_LAYOUT, A.DEFERRED, A.WITHDRAWN},
    A.PROOF: {A.PRESS_READY, A.IN_LAYOUT, A.DEFERRED, A.WITHDRAWN},
    A.PRESS_READY: {A.PUBLISHED, A.PROOF, A.DEFERRED, A.WITHDRAWN},
    A.DEFERRED: {A.ACCEPTED, A.READY_FOR_LAYOUT, A.WITHDRAWN},
    A.PUBLISHED: set(),
    A.DECLINED: set(),
    A.WITHDRAWN: set(),
}
EXPECTED_ISSUE = {
    I.PLANNED: {I.COPY_CLOSED},
    I.COPY_CLOSED: {I.IN_LAYOUT, I.PLANNED},
    I.IN_LAYOUT: {I.AT_PRINTER, I.COPY_CLOSED},
    I.AT_PRINTER: {I.PUBLISHED},
    I.PUBLISHED: {I.DISPATCHED},
    I.DISPATCHED: set(),
}


@pytest.mark.parametrize("table, expected", [
    (PITCH_TRANSITIONS, EXPECTED_PITCH),
    (ARTICLE_TRANSITIONS, EXPECTED_ARTICLE),
    (ISSUE_TRANSITIONS, EXPECTED_ISSUE),
])
def test_transition_tables_are_the_designed_ones(table, expected):
    assert {s: set(t) for s, t in table.items()} == expected
    for targets in table.values():
        assert isinstance(targets, frozenset)


def test_only_the_chief_decides_on_pitches_and_admins_decide_nothing():
    for target in (P.ACCEPTED, P.DECLINED, P.DEFERRED, P.NEEDS_INFO):
        assert PITCH_MOVES[(P.ON_AGENDA, target)] == {Role.EDITOR_IN_CHIEF}
    assert PITCH_MOVES[(P.DECLINED, P.SUBMITTED)] == {Role.EDITOR_IN_CHIEF}
    for moves in (PITCH_MOVES, ARTICLE_MOVES, ISSUE_MOVES):
        for movers in moves.values():
            assert Role.ADMIN not in movers
            assert movers, "a move nobody may make"


def _actors(relation: Party):
    """Every kind of actor: each role alone, the related person (proposer/author, no role),
    the system (None). Returns (label, actor, related_user)."""
    related = make_user(roles=set(), email=f"{relation.value}@example.org")
    actors = [(role, make_user(roles={role})) for role in Role]
    actors.append((relation, related))
    actors.append((Party.SYSTEM, None))
    return actors, related


def _try(move, obj, target, actor) -> str:
    savepoint = db.session.begin_nested()
    try:
        move(obj, target, actor=actor)
    except PermissionDenied:
        outcome = "refused"
    except DomainError:
        outcome = "impossible"
    else:
        outcome = "moved"
    savepoint.rollback()
    return outcome


def _check_whole(moves, states, move, obj, actors, set_state):
    failures = []
    for source in states:
        for target in states:
            for who, actor in actors:
                set_state(source)
                outcome = _try(move, obj, target, actor)
                if (source, target) not in moves:
                    expected = "impossible"
                else:
                    expected = "moved" if who in moves[(source, target)] else "refused"
                if outcome != expected:
                    failures.append(f"{source} -> {target} by {who}: {outcome}, "
                                    f"expected {expected}")
    assert failures == []


def test_every_pitch_move_for_every_actor(app_context):
    actors, proposer = _actors(Party.PROPOSER)
    proposer.role_rows  # noqa: B018 - loaded before savepoints roll back
    pitch = make_pitch(make_user(roles={Role.BOARD_MEMBER}))
    pitch.proposer = proposer
    db.session.commit()

    def set_state(state):
        pitch.state = state

    _check_whole(PITCH_MOVES, list(PitchState), services.move_pitch, pitch, actors, set_state)


def test_every_article_move_for_every_actor(app_context):
    actors, author = _actors(Party.AUTHOR)
    article = make_article(author)

    def set_state(state):
        article.state = state

    _check_whole(ARTICLE_MOVES, list(ArticleState), services.move_article, article, actors,
                 set_state)


def test_every_issue_move_for_every_actor(app_context):
    actors = [(role, make_user(roles={role})) for role in Role] + [(Party.SYSTEM, None)]
    issue = make_issue()
    db.session.add(FlatplanSlot(issue=issue, position=0, label="Cover en inhoud", pages=4))
    db.session.commit()

    def set_state(state):
        issue.state = state

    _check_whole(ISSUE_MOVES, list(IssueState), services.move_issue, issue, actors, set_state)
