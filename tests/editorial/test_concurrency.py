"""Races on a real database: several people (or schedulers) acting at the same moment.

On PostgreSQL (TEST_DATABASE_URL) the threads overlap and wait on row locks; on SQLite
writers are serialised and the same guarantees hold, so these run on both."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import sqlalchemy as sa

from editorial import services
from editorial.jobs import send_deadline_reminders
from editorial.models import Article, ArticleState, Pitch, PitchState
from magazine.clock import frozen
from magazine.db import db
from magazine.errors import DomainError
from magazine.models import OutboxMail, User
from magazine.roles import Role
from tests.editorial.conftest import make_article, make_pitch
from tests.factories import make_user

WORKERS = 8


def run_at_once(app, work, count=WORKERS) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work(i)
                db.session.commit()
            except Exception as error:  # DomainError expected; others fail the assertions
                db.session.rollback()
                results[i] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_simultaneous_decisions_on_one_pitch_take_effect_once(app):
    with app.app_context():
        chief = make_user(roles={Role.EDITOR_IN_CHIEF})
        author = make_user(roles={Role.AUTHOR}, email="auteur@example.org")
        pitch = make_pitch(author)
        services.move_pitch(pitch, PitchState.ON_AGENDA, actor=chief)
        db.session.commit()
        ids = pitch.id, chief.id, author.id
        db.session.remove()

    def decide(i):
        pitch = db.session.get(Pitch, ids[0])
        chief = db.session.get(User, ids[1])
        if i % 2:
            services.decline_pitch(pitch, actor=chief, reason=None, text="Past niet.")
        else:
            services.accept_pitch(pitch, actor=chief, commission=services.Commission(
                author=db.session.get(User, ids[2])))
        return "done"

    results = run_at_once(app, decide)
    assert results.count("done") == 1, results
    assert all(isinstance(r, DomainError) for r in results if r != "done"), results
    with app.app_context():
        decided = db.session.get(Pitch, ids[0]).state
        articles = db.session.scalar(sa.select(sa.func.count()).select_from(Article))
        assert articles == (1 if decided == PitchState.ACCEPTED else 0)
        decisions = db.session.scalars(sa.select(OutboxMail).where(
            OutboxMail.template == "editorial_pitch_decision")).all()
        assert len(decisions) == 1


def test_reminders_from_several_schedulers_at_once_go_once(app):
    with app.app_context():
        author = make_user(roles={Role.AUTHOR})
        for n in range(3):
            make_article(author, state=ArticleState.COMMISSIONED, title=f"Tekst {n}")
        db.session.remove()

    def remind(_i):
        return send_deadline_reminders().sent

    # The clock is frozen once, here: `frozen` is process-wide, not per thread.
    with frozen(datetime(2027, 1, 13, 8, tzinfo=UTC)):
        results = run_at_once(app, remind, count=4)
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 3
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMail).where(
            OutboxMail.template == "editorial_reminder")) == 3
    assert date(2027, 1, 13)
