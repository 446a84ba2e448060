"""Editorial fixtures: people by role, an issue, a pitch and an article made through the
services (so that the audit log and the mails are as in real use)."""

from __future__ import annotations

from datetime import date

import pytest

from editorial import services
from editorial.models import Article, Issue, Pitch, Revision, Rubric
from magazine.db import db
from magazine.roles import Role
from tests.factories import make_issue, make_user


@pytest.fixture
def people(app_context):
    """One person per editorial role (plus an author without other roles)."""

    class People:
        chief = make_user(roles={Role.EDITOR_IN_CHIEF}, email="chief@example.org",
                          name="Katrien Wouters")
        board = make_user(roles={Role.BOARD_MEMBER}, email="board@example.org",
                          name="Jonas Claes")
        copy = make_user(roles={Role.COPY_EDITOR}, email="copy@example.org", name="Leen Maes")
        author = make_user(roles={Role.AUTHOR}, email="author@example.org",
                           name="Fatima El Amrani")
        reviewer = make_user(roles={Role.REVIEWER}, email="reviewer@example.org",
                             name="Pieter Janssens")

    return People


@pytest.fixture
def rubric(app_context) -> Rubric:
    rubric = Rubric(name="Uit de praktijk")
    db.session.add(rubric)
    db.session.commit()
    return rubric


@pytest.fixture
def issue(app_context) -> Issue:
    return make_issue(volume=3, number=2, print_date=date(2027, 3, 1), theme="Buitenspelen")


def make_pitch(proposer, title="Buitenspelen in de winter", **kwargs) -> Pitch:
    pitch = services.submit_pitch(
        actor=proposer, title=title,
        summary="Hoe kinderopvang ook in de koude maanden elke dag naar buiten gaat.", **kwargs)
    db.session.commit()
    return pitch


def make_article(author, *, issue=None, state=None, words=600, title="Wennen met ouders"
                 ) -> Article:
    article = Article(title=title, author=author, issue=issue, target_words=1000,
                      deadline=date(2027, 1, 15))
    if state is not None:
        article.state = state
    db.session.add(article)
    db.session.flush()
    body = " ".join(["woord"] * words)
    db.session.add(Revision(article=article, number=1, body=body, word_count=words))
    db.session.commit()
    return article
