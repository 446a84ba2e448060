"""The editorial demo: every state shows up, the dates look current, loading twice adds
nothing, and the board's pages render it."""

from __future__ import annotations

import sqlalchemy as sa

from editorial import services
from editorial.models import Article, ArticleState, Issue, IssueState, Pitch, PitchState
from magazine.db import db
from magazine.demo import load_demo
from tests.conftest import log_in


def counts():
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(model))
                 for model in (Issue, Pitch, Article))


def test_demo_has_every_state_and_loads_once(app_context):
    load_demo()
    first = counts()
    load_demo()
    assert counts() == first
    assert {p.state for p in db.session.scalars(sa.select(Pitch))} == set(PitchState)
    assert {a.state for a in db.session.scalars(sa.select(Article))} == set(ArticleState)
    issues = db.session.scalars(sa.select(Issue)).all()
    states = [i.state for i in issues]
    assert states.count(IssueState.IN_LAYOUT) == 1
    # One published, the rest dispatched (the business demo adds two years of them).
    assert states.count(IssueState.PUBLISHED) == 1
    assert states.count(IssueState.DISPATCHED) >= 1
    upcoming = [i for i in issues if i.print_date > services.today_local()]
    assert len(upcoming) >= 6
    production = next(i for i in issues if i.state == IssueState.IN_LAYOUT)
    plan = services.flatplan_of(production)
    assert 0 < plan.total < plan.budget


def test_demo_pages_render_for_the_board(app, client):
    with app.app_context():
        load_demo()
        pitch_ids = db.session.scalars(sa.select(Pitch.id)).all()
        article_ids = db.session.scalars(sa.select(Article.id)).all()
        issue_ids = db.session.scalars(sa.select(Issue.id)).all()
    log_in(client, "editor_in_chief@demo.example", "demo-password")
    paths = ["/editorial/", "/editorial/pitches", "/editorial/articles", "/editorial/issues",
             "/editorial/rubrics", "/editorial/decline-reasons",
             *[f"/editorial/pitches/{i}" for i in pitch_ids],
             *[f"/editorial/articles/{i}" for i in article_ids],
             *[f"/editorial/issues/{i}" for i in issue_ids]]
    for path in paths:
        assert client.get(path).status_code == 200, path
