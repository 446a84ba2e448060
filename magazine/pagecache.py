"""A server-side cache of rendered pages that must be exact: the account page (/account).

What a cached page is keyed on
    the user, the server-side session (its token's hash: one session's CSRF tokens never
    reach another), the CSRF secret in the cookie session, the locale, today's date in
    Europe/Brussels, which online payment providers are configured, and two *validity
    stamps*: the user's and the global one. A page is stored only when no flashed message
    was pending, only for a plain `GET /account` (no query string), at most
    `PAGE_CACHE_MAX_AGE` seconds (well below any CSRF time limit), in a per-process LRU of
    at most `PAGE_CACHE_MAX_BYTES`.

How the stamps stay exact
    `page_stamps` holds one row per user id (user id 0: the global row). Every transaction
    that changes something a page shows writes a new random stamp into the rows of the users
    concerned, in the same transaction as the change, so the stamp and the data become
    visible together, whichever process commits (web workers, the scheduler, the CLI):

    * the ORM unit of work: `after_flush` collects the new, changed and deleted objects of
      the tables the page reads (`OWNERS`: users and roles, subscriptions and their
      addresses, orders and their lines, payments, invoices, credit notes, refunds,
      chargebacks, mandates, renewal orders), with the owner column's old value
      too when it changed; plans, price bands and issues (shown to everyone) bump the global
      stamp;
    * statements sent through a session outside a flush (`session.execute(update(...))`,
      bulk inserts, `session.connection().execute(...)`) are seen on the engine
      (`after_execute`): an UPDATE or DELETE restricted by the row's id or owner (`WHERE
      id = …`/`IN (…)` at the top level) is resolved like an object, anything else on those
      tables, and any textual DML we cannot read, bumps the global stamp ("when in doubt,
      bump global");
    * the rows are written in `before_commit` (after a last flush): the users' rows in
      ascending order, then the global row, so on PostgreSQL they are the last locks a
      transaction takes and two transactions cannot deadlock on them;
    * a statement on a connection that no session holds (`engine.begin()` in a job or a
      script) bumps the global stamp right away, in that connection's transaction.

    Rows behind a parent (an address's subscription, a payment's order) are resolved to
    their user from the identity map, else with one SELECT per parent table at commit; a
    parent that is gone bumps the global stamp. Writes straight on a DB-API connection
    (`raw_connection()`) are not seen: do not write the tables in `OWNERS` that way.

    The login query (`auth.services.load_session`) reads both stamps in the same statement
    as the session, before any of the page's data: a page rendered after it holds at least
    what the stamps promise, and a hit costs that one query.

Stamps are random 62-bit numbers, not counters, so a row deleted by hand (or a database
restored) cannot bring an old value back; still, never delete rows of `page_stamps`.
"""

from __future__ import annotations

import collections
import functools
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import Flask, current_app, request, session
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import operators
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from magazine.db import DriverStatement, autocommit_driver_connection, db

GLOBAL = 0  # the user id of the global stamp's row


class PageStamp(db.Model):
    """The validity stamp of a user's cached pages (user id 0: of everyone's)."""

    __tablename__ = "page_stamps"

    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    stamp: Mapped[int] = mapped_column(sa.BigInteger)


# Table → (column holding the user id, None) or (column holding a parent's id, parent table).
OWNERS: dict[str, tuple[str, str | None]] = {
    "users": ("id", None),
    "user_roles": ("user_id", None),
    "subscriptions": ("subscriber_id", None),
    "orders": ("user_id", None),
    "mandates": ("user_id", None),
    "delivery_addresses": ("subscription_id", "subscriptions"),
    "renewal_orders": ("subscription_id", "subscriptions"),
    "order_lines": ("order_id", "orders"),
    "payments": ("order_id", "orders"),
    "invoices": ("order_id", "orders"),
    "credit_notes": ("invoice_id", "invoices"),
    "refunds": ("payment_id", "payments"),
    "chargebacks": ("payment_id", "payments"),
}
# Shown to every subscriber: a change bumps the global stamp.
GLOBAL_TABLES = frozenset({"plans", "plan_price_bands", "issues"})
TRACKED = frozenset(OWNERS) | GLOBAL_TABLES
# More users (or parent rows) than this in one transaction (a dispatch, a mass renewal): the
# global stamp instead of a statement with thousands of values.
MAX_PRECISE = 500

_PENDING = "magazine_page_stamps"


@dataclass
class Pending:
    """The stamps one session's transaction must bump."""

    users: set[int] = field(default_factory=set)
    # Table → ids of its rows whose owner is still to be found (at commit).
    parents: dict[str, set[int]] = field(default_factory=dict)
    global_: bool = False
    written: bool = False  # the commit wrote them already (a later flush writes at once)

    def __bool__(self) -> bool:
        return bool(self.users or self.parents or self.global_)

    def add(self, table: str, value) -> None:
        parent = OWNERS[table][1]
        if value is None:
            return  # no owner: no account page shows the row
        if parent is None:
            self.users.add(value)
        else:
            self.parents.setdefault(parent, set()).add(value)

    def clear(self) -> None:
        self.users.clear()
        self.parents.clear()
        self.global_ = False


def _pending(session: Session) -> Pending:
    found = session.info.get(_PENDING)
    if found is None:
        found = session.info[_PENDING] = Pending()
    return found


# ---------------------------------------------------------------- the ORM unit of work

_MISSING = object()


_OWNER_KEYS: dict = {}


def _owner_key(mapper) -> str:
    """The attribute name of the owner column of `mapper`'s table."""
    key = _OWNER_KEYS.get(mapper)
    if key is None:
        column = OWNERS[mapper.local_table.name][0]
        key = _OWNER_KEYS[mapper] = mapper.get_property_by_column(
            mapper.local_table.c[column]).key
    return key


def _collect_object(pending: Pending, obj) -> None:
    state = sa.inspect(obj)
    mapper = state.mapper
    table = mapper.local_table.name
    if table not in TRACKED:
        return
    if table in GLOBAL_TABLES:
        pending.global_ = True
        return
    key = _owner_key(mapper)
    value = state.dict.get(key, _MISSING)
    if value is _MISSING and key == "id" and state.key is not None:
        value = state.identity[0]  # a user: its primary key, loaded or not
    if value is _MISSING:
        pending.global_ = True  # the owner of the row is not loaded: in doubt
        return
    pending.add(table, value)
    history = state.attrs[key].history
    for old in history.deleted or ():
        pending.add(table, old)  # the row moved to another owner: both pages change


def _after_flush(session: Session, _flush_context) -> None:
    pending = _pending(session)
    for obj in session.new:
        _collect_object(pending, obj)
    for obj in session.dirty:
        _collect_object(pending, obj)
    for obj in session.deleted:
        _collect_object(pending, obj)
    if pending.written and pending:
        # A flush after the commit wrote the stamps (another before_commit hook added
        # objects): write these too, still inside the transaction.
        _write(session, pending)


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # the outermost commit writes them
    pending = session.info.get(_PENDING)
    if pending is None and not (session.new or session.dirty or session.deleted):
        return
    session.flush()  # commit would flush after this hook: collect that flush's rows first
    pending = session.info.get(_PENDING)
    if pending:
        _write(session, pending)
    if pending is not None:
        pending.written = True


def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


# ---------------------------------------------------------------- statements on the engine

# Connection → (session, its root transaction) while a session holds it.
_SESSION_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_DML_WORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "TRUNCATE", "WITH",
              "COPY")
_DDL_WORDS = ("CREATE", "DROP", "ALTER")


def _after_begin(session: Session, transaction, connection) -> None:
    _SESSION_OF[connection] = (weakref.ref(session), session.get_transaction())


def _restriction(statement: UpdateBase, column: str) -> list | None:
    """The values of `column` an UPDATE/DELETE is restricted to by its top-level WHERE
    (`column = :v` or `column IN (:vs)`), else None."""
    where = statement.whereclause
    if where is None:
        return None
    clauses = (where.clauses if isinstance(where, BooleanClauseList)
               and where.operator is operators.and_ else [where])
    for clause in clauses:
        if not isinstance(clause, BinaryExpression):
            continue
        left, right = clause.left, clause.right
        if getattr(left, "name", None) != column or not isinstance(right, BindParameter):
            continue
        if getattr(getattr(left, "table", None), "name", None) != statement.table.name:
            continue
        value = right.effective_value
        if clause.operator is operators.eq and value is not None:
            return [value]
        if clause.operator is operators.in_op and isinstance(value, (list, tuple)):
            return list(value)
    return None


def _statement_effect(statement, multiparams) -> tuple[bool, list[tuple[str, list]]]:
    """(bump global?, [(table, owner values)]) of a DML statement on a tracked table; a
    table named "@name" means: ids of `name`'s rows, whose owners are found at commit."""
    table = statement.table.name
    if table in GLOBAL_TABLES:
        return True, []
    column = OWNERS[table][0]
    if isinstance(statement, Insert):
        if statement.select is not None or getattr(statement, "_multi_values", None):
            return True, []
        given = {getattr(key, "name", key): value
                 for key, value in (statement._values or {}).items()}
        if column in given:
            value = given[column]
            value = value.effective_value if isinstance(value, BindParameter) else _MISSING
            return (True, []) if value is _MISSING else (False, [(table, [value])])
        rows = multiparams if isinstance(multiparams, (list, tuple)) else [multiparams]
        values = []
        for row in rows:
            if not isinstance(row, dict) or column not in row:
                return True, []
            values.append(row[column])
        return (False, [(table, values)]) if values else (True, [])
    if isinstance(statement, Update):
        changed = {getattr(key, "name", key) for key in (statement._values or {})}
        changed |= {getattr(key, "name", key)
                    for key, _ in (getattr(statement, "_ordered_values", None) or ())}
        if column in changed or (not changed and multiparams):
            return True, []  # rows may change owner: in doubt
    values = _restriction(statement, column)
    if values is not None:
        return False, [(table, values)]
    if column != "id":
        ids = _restriction(statement, "id")
        if ids is not None:  # resolve the rows' owners at commit
            return False, [("@" + table, ids)]
    return True, []


def _text_effect(text: str) -> bool | None:
    """True: DML that may touch a tracked table; False: none; None: DDL."""
    head = text.lstrip().split(None, 1)
    if not head:
        return False
    word = head[0].upper()
    if word in _DDL_WORDS:
        return None
    if word not in _DML_WORDS:
        return False
    if word == "WITH":
        return re.search(r"\b(INSERT|UPDATE|DELETE)\b", text, re.IGNORECASE) is not None
    if word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        found = re.match(
            r'\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?'
            r'|DELETE\s+FROM)\s+(?:ONLY\s+)?"?(\w+)"?(?:\."?(\w+)"?)?', text, re.IGNORECASE)
        if found and (found.group(2) or found.group(1)).lower() not in TRACKED:
            return False
    return True


def _after_execute(conn, statement, multiparams, params, _options, _result) -> None:
    if isinstance(statement, UpdateBase):
        if not isinstance(statement, (Insert, Update, Delete)):
            return
        if statement.table.name not in TRACKED:
            return
        holder = _SESSION_OF.get(conn)
        session = _holding_session(conn, holder)
        if session is not None and session._flushing:
            return  # the unit of work: after_flush sees the objects
        bump_global, owners = _statement_effect(statement, multiparams or params)
    elif isinstance(statement, (str, sa.TextClause)):
        effect = _text_effect(str(statement))
        if effect is None:
            _READY.pop(conn.engine, None)  # DDL: the stamp table may have come or gone
            return
        if not effect:
            return
        session = _holding_session(conn, _SESSION_OF.get(conn))
        bump_global, owners = True, []
    else:
        if isinstance(statement, sa.schema.ExecutableDDLElement):
            _READY.pop(conn.engine, None)
        return
    if session is not None:
        pending = _pending(session)
        if bump_global:
            pending.global_ = True
        for table, values in owners:
            for value in values:
                if table.startswith("@"):
                    pending.parents.setdefault(table[1:], set()).add(value)
                else:
                    pending.add(table, value)
        if pending.written:
            _write(session, pending)
        return
    # No session holds this connection: bump the global stamp in its own transaction.
    if _ready(conn):
        conn.execute(_upsert(conn, [GLOBAL]))


def _holding_session(conn, holder) -> Session | None:
    if holder is None:
        return None
    session = holder[0]()
    if session is None or session.get_transaction() is not holder[1]:
        return None
    return session


# ---------------------------------------------------------------- writing the stamps

_READY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ready(conn) -> bool:
    """The stamp table exists (not while the migrations run up to it, or after a
    downgrade); asked once per engine until the next DDL statement."""
    engine = conn.engine
    ready = _READY.get(engine)
    if ready is None:
        ready = sa.inspect(conn).has_table(PageStamp.__tablename__)
        if ready:
            _READY[engine] = True
    return ready


def _upsert(conn, user_ids: list[int]):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(PageStamp).values(
        [{"user_id": uid, "stamp": secrets.randbits(62)} for uid in user_ids])
    return statement.on_conflict_do_update(
        index_elements=[PageStamp.user_id], set_={"stamp": statement.excluded.stamp})


def _owners_of(session: Session, parent: str, ids: set[int]) -> tuple[dict, set[int]]:
    """{id: owner value} of `parent` rows (identity map first, then one SELECT) and the ids
    not found."""
    mapper = _mapper_of(parent)
    key = _owner_key(mapper)
    found: dict = {}
    missing = set()
    for row_id in ids:
        obj = session.identity_map.get(mapper.identity_key_from_primary_key([row_id]))
        if obj is not None and key in obj.__dict__ and not sa.inspect(obj).modified:
            found[row_id] = obj.__dict__[key]
        else:
            missing.add(row_id)
    if missing:
        table = mapper.local_table
        column = table.c[OWNERS[parent][0]]
        connection = session.connection()
        rows = connection.execute(
            sa.select(table.c.id, column).where(table.c.id.in_(sorted(missing)))).all()
        for row_id, value in rows:
            found[row_id] = value
        missing -= {row_id for row_id, _ in rows}
    return found, missing


_MAPPERS: dict[str, object] = {}


def _mapper_of(table: str):
    if not _MAPPERS:
        for mapper in db.Model.registry.mappers:
            _MAPPERS[mapper.local_table.name] = mapper
    return _MAPPERS[table]


def _write(session: Session, pending: Pending) -> None:
    connection = session.connection()
    if not _ready(connection):
        pending.clear()
        return
    for _depth in range(4):  # a refund's payment → its order → its user: three steps at most
        if not pending.parents:
            break
        parents, pending.parents = pending.parents, {}
        for table in sorted(parents):
            if len(parents[table]) > MAX_PRECISE:
                pending.global_ = True  # a mass change: everyone's stamp, one row
                continue
            owners, missing = _owners_of(session, table, parents[table])
            if missing:
                pending.global_ = True  # gone in this transaction: in doubt
            for value in owners.values():
                pending.add(table, value)
    if pending.parents:
        pending.global_ = True
    users = set()
    for uid in pending.users:
        try:
            users.add(int(uid))
        except (TypeError, ValueError):
            pending.global_ = True
    users = sorted(users)
    if len(users) > MAX_PRECISE:
        pending.global_, users = True, []
    if users:
        connection.execute(_upsert(connection, users))
    if pending.global_:
        connection.execute(_upsert(connection, [GLOBAL]))
    pending.clear()


def stamps_query_columns():
    """The user's and the global stamp, as columns for the login query (0 when missing)."""
    from magazine.models import UserSession

    mine = (sa.select(PageStamp.stamp).where(PageStamp.user_id == UserSession.user_id)
            .scalar_subquery())
    everyone = sa.select(PageStamp.stamp).where(PageStamp.user_id == GLOBAL).scalar_subquery()
    return sa.func.coalesce(mine, 0), sa.func.coalesce(everyone, 0)


# ---------------------------------------------------------------- the cache

class PageCache:
    """An LRU of rendered pages, one per (page, user, session), bounded in bytes."""

    def __init__(self, max_bytes: int, max_age: float) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, slot: tuple, validity: tuple) -> str | None:
        with self._lock:
            entry = self._entries.get(slot)
            if entry is None or entry[0] != validity or time.monotonic() - entry[1] > self.max_age:
                self.misses += 1
                return None
            self._entries.move_to_end(slot)
            self.hits += 1
            return entry[2]

    def put(self, slot: tuple, validity: tuple, body: str) -> None:
        size = len(body)
        if size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(slot, None)
            if old is not None:
                self._bytes -= len(old[2])
            self._entries[slot] = (validity, time.monotonic(), body)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped[2])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def page_cache(app: Flask | None = None) -> PageCache | None:
    app = app or current_app
    return app.extensions.get("magazine_page_cache")


def _usable_request() -> bool:
    return (request.method == "GET" and not request.query_string
            and not session.get("_flashes"))


def _validity(stamps: tuple, user_locale: str) -> tuple | None:
    """What a stored page must match besides its slot; None when the cookie session has no
    CSRF secret yet (the page would carry a token of a secret the cookie does not hold)."""
    config = current_app.config
    csrf_secret = session.get(config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    if config.get("WTF_CSRF_ENABLED", True) and not csrf_secret:
        return None
    from subscriptions.services import today_brussels

    # The locale is chosen from the user's and the cookie session's (magazine.i18n.
    # select_locale): both are in the key rather than a copy of that choice.
    return (tuple(stamps), csrf_secret, user_locale, session.get("locale"), today_brussels(),
            config.get("WTF_CSRF_ENABLED", True), bool(config.get("STRIPE_SECRET_KEY")),
            bool(config.get("MOLLIE_API_KEY")))


def page_slot_and_validity(page: str, user) -> tuple[tuple, tuple] | None:
    """Where `user`'s copy of `page` is kept and what it must match, for this request (the
    user as `auth.services.load_session` loaded it); None when this request must not use
    the cache (a flash is pending, a query string, a session without its stamps or CSRF
    secret)."""
    stamps = getattr(user, "page_stamps", None)
    token_hash = getattr(user, "session_token_hash", None)
    if stamps is None or not token_hash or not _usable_request():
        return None
    validity = _validity(stamps, user.locale)
    if validity is None:
        return None
    return (page, user.id, token_hash), validity


@functools.cache
def _hit_query() -> DriverStatement:
    from magazine.models import User, UserSession

    return DriverStatement(sa.select(UserSession.user_id, User.locale,
                                     *stamps_query_columns()).join(
        User, User.id == UserSession.user_id
    ).where(
        UserSession.token_hash == sa.bindparam("token_hash"),
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > sa.bindparam("now"),
    ))


def cached_page_for_session(page: str) -> str | None:
    """`page` from the cache for the cookie session's login, checked with one Core query
    (the server-side session is valid: not revoked, not expired; the stamps) before
    Flask-Login loads the user as an ORM object; None: serve the request the normal way.

    It stands in for `login_required` + `load_session` only when they would let the
    request in unchanged: a login token in the session and Flask-Login's session identifier
    matching (else Flask-Login marks the session not fresh: the normal way does that)."""
    cache = page_cache()
    if cache is None or not _usable_request():
        return None
    token = session.get("_user_id")
    if not token or not isinstance(token, str):
        return None
    from flask_login.utils import _create_identifier

    if session.get("_id") != _create_identifier():
        return None
    from magazine.auth.services import _hash_token
    from magazine.clock import now_utc

    token_hash = _hash_token(token)
    # One statement on its own, outside a transaction (on PostgreSQL one round trip
    # instead of BEGIN, the statement and ROLLBACK), on the driver.
    with autocommit_driver_connection(db.engine) as connection:
        rows = _hit_query().rows(connection, db.engine.dialect,
                                 {"token_hash": token_hash, "now": now_utc()})
    if not rows:
        return None
    user_id, user_locale, user_stamp, global_stamp = rows[0]
    validity = _validity((user_stamp, global_stamp), user_locale)
    if validity is None:
        return None
    return cache.get((page, user_id, token_hash), validity)


# ---------------------------------------------------------------- installation

_INSTALLED = False


def install_page_cache(app: Flask) -> None:
    """The stamp hooks (once per process, on every Session) and on this app's engine, and
    the app's cache."""
    global _INSTALLED
    if not _INSTALLED:
        sa.event.listen(Session, "after_flush", _after_flush)
        sa.event.listen(Session, "before_commit", _before_commit)
        sa.event.listen(Session, "after_transaction_end", _after_transaction_end)
        sa.event.listen(Session, "after_begin", _after_begin)
        _INSTALLED = True
    with app.app_context():
        engine = db.engine
        if not sa.event.contains(engine, "after_execute", _after_execute):
            sa.event.listen(engine, "after_execute", _after_execute)
    max_age = app.config["PAGE_CACHE_MAX_AGE"]
    csrf_limit = app.config.get("WTF_CSRF_TIME_LIMIT")
    if csrf_limit:
        max_age = min(max_age, csrf_limit / 4)
    if app.config["PAGE_CACHE_ENABLED"]:
        app.extensions["magazine_page_cache"] = PageCache(app.config["PAGE_CACHE_MAX_BYTES"],
                                                          max_age)
