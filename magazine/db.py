"""Database: the declarative base with a constraint naming convention, and shared column types."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from magazine.clock import as_utc

# Named constraints make Alembic migrations reproducible on PostgreSQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator):
    """`DateTime(timezone=True)` that always hands back aware UTC datetimes.

    SQLite keeps no zone, so values come back naive there; we store UTC and say so on the way
    out. Naive datetimes are refused on the way in: they are almost always a bug.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use now_utc()")
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return as_utc(value)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def configure_sqlite(engine: sa.Engine) -> None:
    """WAL, a busy timeout and foreign keys for the embedded database."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised on connect
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


# A pooled server connection unused for longer than this is tested before it is handed out.
POOL_PING_IDLE_SECONDS = 5.0


def ping_when_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Test a pooled server connection before handing it out only when it has sat unused
    for longer than `idle_seconds` (a server restart or a dropped link happens while
    nobody uses it); a dead one is replaced (the pool retries the checkout).

    SQLAlchemy's `pool_pre_ping` tests every checkout: on PostgreSQL that is two round
    trips (psycopg's BEGIN and `SELECT 1`) before each request's first statement, more
    than a short request's own work. A connection that was in use a moment ago needs no
    test; one that breaks in use is recognised as a disconnect and the whole pool is
    replaced (SQLAlchemy's own handling)."""

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()
        except Exception as error:
            raise sa.exc.DisconnectionError(f"stale pooled connection: {error}") from error


class DriverStatement:
    """A Core statement compiled once per dialect and run on the driver's own cursor, its
    parameters and columns converted by the columns' types as SQLAlchemy would. For the
    hottest paths (the Stripe webhook's repeat, the account page's cache check):
    SQLAlchemy's execution layer (result objects, events, caches) cost several times what
    the database took for their statements. Bound values the statement carries (literals)
    are sent as compiled; the caller gives the rest. No engine events see these
    statements: do not write tables other code watches (magazine.pagecache) this way."""

    def __init__(self, statement) -> None:
        self.statement = statement
        self.columns = [column.key for column in statement.exported_columns]
        self._compiled: dict[str, tuple] = {}

    def _for(self, dialect) -> tuple:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                     for name, bind in compiled.binds.items()}
            results = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                       for column in self.statement.exported_columns]
            found = self._compiled[dialect.name] = (compiled.string, compiled.positiontup,
                                                    binds, results, compiled.params)
        return found

    def rows(self, connection, dialect, params: dict) -> list[tuple]:
        """Run on `connection` (a pooled driver connection: `autocommit_driver_connection`
        or `engine.raw_connection()`)."""
        sql, positional, binds, results, defaults = self._for(dialect)
        values = {name: (binds[name](value) if binds.get(name) else value)
                  for name, value in {**defaults, **params}.items()}
        cursor = connection.cursor()
        try:
            cursor.execute(sql, [values[name] for name in positional] if positional
                           else values)
            found = cursor.fetchall()
        finally:
            cursor.close()
        return [tuple(process(value) if process else value
                      for process, value in zip(results, row, strict=True)) for row in found]


@contextlib.contextmanager
def autocommit_driver_connection(engine: sa.Engine) -> Iterator:
    """A pooled DB-API connection on which each statement is its own transaction (on
    PostgreSQL no BEGIN and COMMIT round trips), set back as it was before it returns to
    the pool."""
    connection = engine.raw_connection()
    driver = connection.dbapi_connection
    sqlite = engine.dialect.name == "sqlite"
    previous = driver.isolation_level if sqlite else None
    try:
        if sqlite:
            driver.isolation_level = None  # pysqlite's autocommit
        else:
            engine.dialect.set_isolation_level(driver, "AUTOCOMMIT")
        try:
            yield connection
        finally:
            if sqlite:
                driver.isolation_level = previous
            else:
                engine.dialect.reset_isolation_level(driver)
    finally:
        connection.close()  # back to the pool, even if the mode could not be set


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def insert_ignoring_duplicates(model_or_table):
    """`INSERT … ON CONFLICT DO NOTHING` for the database in use: a row whose unique key
    exists already is skipped. To know whether a row was inserted, add `.returning(pk)`
    and look for a row (psycopg reports no rowcount for it).

    With `.from_select(…)` SQLite needs a WHERE clause in the SELECT (write `WHERE true`)
    before `ON CONFLICT`, or its parser takes ON for a join."""
    if dialect_name() == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model_or_table)


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """One unit of work that reads and then writes, committed at the end (rolled back on
    error).

    On SQLite the transaction starts with `BEGIN IMMEDIATE`: pysqlite otherwise begins a
    deferred transaction at the first write, and a reader that later wants to write while
    another process writes gets "database is locked" at once instead of waiting its turn
    (the busy timeout does not apply to that upgrade). Taking the write lock first makes
    concurrent jobs queue up. On PostgreSQL it is an ordinary transaction; row locks
    (`FOR UPDATE SKIP LOCKED`, conditional updates) do the rest."""
    session = db.session()
    if session.in_transaction():
        # What was read before belongs to no unit of work: end it so ours starts clean.
        session.commit()
    if dialect_name() == "sqlite":
        _begin_immediate(session)
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


# How long a SQLite writer waits for its turn in all. SQLite's busy handler is not fair: a
# process can miss the lock many times in a row while others keep taking it, and give up
# after one busy timeout; we try again instead, up to this long.
SQLITE_WRITE_WAIT_SECONDS = 600


def _begin_immediate(session) -> None:
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_WRITE_WAIT_SECONDS
    while True:
        try:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            return
        except sa.exc.OperationalError as error:
            locked = isinstance(error.orig, sqlite3.OperationalError) and (
                "locked" in str(error.orig) or "busy" in str(error.orig))
            session.rollback()
            if not locked or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
