"""The pool's test of idle server connections (magazine.db.ping_when_idle)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from magazine.db import POOL_PING_IDLE_SECONDS, db, ping_when_idle


def _postgres_engine(app) -> sa.Engine:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("a server connection: PostgreSQL only")
        url = db.engine.url
    engine = sa.create_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, POOL_PING_IDLE_SECONDS)
    return engine


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def _kill(app, pid: int) -> None:
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": pid}).scalar_one()


def _age_pool(engine: sa.Engine) -> None:
    """Make the pooled connection look idle for longer than the limit."""
    for record in list(engine.pool._pool.queue):
        record.info["idle_since"] -= POOL_PING_IDLE_SECONDS + 1


def test_an_idle_dead_connection_is_replaced_before_use(app):
    engine = _postgres_engine(app)
    try:
        first = _backend_pid(engine)
        _kill(app, first)
        _age_pool(engine)
        # The checkout tests the idle connection, finds it dead and hands out a new one:
        # the statement runs without an error.
        second = _backend_pid(engine)
        assert second != first
    finally:
        engine.dispose()


def test_only_an_idle_connection_is_tested(app, monkeypatch):
    engine = _postgres_engine(app)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping",
                        lambda connection: pings.append(connection) or ping(connection))
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first
        assert pings == []  # a connection in recent use is handed out untested
        _age_pool(engine)
        assert _backend_pid(engine) == first
        assert len(pings) == 1  # tested once, alive, kept
    finally:
        engine.dispose()


def test_a_connection_that_dies_in_use_replaces_the_pool(app):
    engine = _postgres_engine(app)
    try:
        first = _backend_pid(engine)
        _kill(app, first)
        # Not idle, so not tested: the statement finds it dead, as a disconnect; the pool
        # is replaced and the next checkout works.
        with pytest.raises(sa.exc.DBAPIError) as raised:
            _backend_pid(engine)
        assert raised.value.connection_invalidated
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
