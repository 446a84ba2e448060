"""A realistic magazine at scale for the benchmarks: 100k subscriptions of every kind and
state, 1M payments over five years, 10k articles, 60 issues, with their orders, invoices,
credit notes, refunds, chargebacks, mandates, delivery addresses, past dispatches and the
business roll-up (the subscription rows of 24 months, the totals of every finished month) —
consistent with the models (and with how the demo loaders fill them).

Fast on purpose: ids are assigned here, rows go in set-based (`executemany` on SQLite,
`COPY` on PostgreSQL), in chunks, with one password hash for everybody. The SQLite file is
cached under bench/.cache/, keyed by GENERATOR_VERSION and the scale, so a rerun starts at
once; on PostgreSQL the database remembers what it holds in a `bench_generated` table.

    BENCH_SCALE=0.01 python -m bench.generate        # 1k subscriptions, 10k payments

Rows are seed data, inserted in their final state (the services are tested on their own).
"""

from __future__ import annotations

import bisect
import math
import os
import random
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

GENERATOR_VERSION = 4
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("BENCH_CACHE", "") or ROOT / "bench" / ".cache")
PASSWORD = "bench-password"
COORDINATOR = "coordinator@bench.example"
CHUNK = 50_000

# Sizes at scale 1 (the issue's numbers).
SUBSCRIPTIONS = 100_000
PAYMENTS = 1_000_000
ARTICLES = 10_000
ISSUES = 60
ROLLUP_MONTHS = 24          # months of business roll-up history kept
DISPATCHED_HISTORY = 6      # past issues with their dispatch entries
YEARS = 5


def scale() -> float:
    return float(os.environ.get("BENCH_SCALE", "1") or "1")


def scaled(n: int, factor: float, minimum: int = 1) -> int:
    return max(minimum, round(n * factor))


# ---------------------------------------------------------------- the app and the database

def bench_app(database_url: str, **extra):
    """The application pointed at a benchmark database (cheap password hashing, no mail)."""
    from magazine import create_app

    config = {
        "TESTING": False, "SQLALCHEMY_DATABASE_URI": database_url,
        "PASSWORD_TIME_COST": 1, "PASSWORD_MEMORY_COST": 1024, "MAIL_URL": "",
        "WTF_CSRF_ENABLED": True,
    }
    config.update(extra)
    return create_app(config)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def schema_key() -> str:
    """The generator version and a fingerprint of the models: a cached database made for
    other tables (another helper added a column) is made again."""
    import hashlib

    app = bench_app("sqlite://")
    with app.app_context():
        from magazine.db import db

        text = ";".join(f"{table.name}:{','.join(sorted(table.c.keys()))}"
                        for table in sorted(db.metadata.sorted_tables, key=lambda t: t.name))
    return f"g{GENERATOR_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def cache_path(factor: float) -> Path:
    return CACHE / f"magazine-{schema_key()}-s{factor:g}.db"


def postgres_url() -> str | None:
    """magazine_bench on the server of TEST_DATABASE_URL (never the test database itself)."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        return None
    return sa.engine.make_url(url).set(database="magazine_bench").render_as_string(
        hide_password=False)


def ensure_postgres_database(url: str, name: str, template: str | None = None) -> str:
    """(Re)create database `name` on the server of `url`; a copy of `template` if given."""
    admin = sa.create_engine(sa.engine.make_url(url).set(database="postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if template:
            connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname IN (:a, :b) AND pid <> pg_backend_pid()"),
                {"a": name, "b": template})
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        else:
            exists = connection.execute(sa.text(
                "SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def generated_database(kind: str, factor: float | None = None, *, log=print) -> str:
    """The URL of a generated database of `kind` ("sqlite" or "postgresql") at `factor`,
    generated now unless it is cached."""
    factor = scale() if factor is None else factor
    if kind == "sqlite":
        path = cache_path(factor)
        if not path.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            # Only older generator versions: a process that sees other models (another
            # helper's, imported by its benchmark) keeps its own file next to this one.
            for old in CACHE.glob("magazine-g*.db"):
                if not old.name.startswith(f"magazine-g{GENERATOR_VERSION}-"):
                    old.unlink()
            building = path.with_suffix(".building")
            building.unlink(missing_ok=True)
            generate(sqlite_url(building), factor, log=log)
            building.rename(path)
        return sqlite_url(path)
    url = postgres_url()
    if url is None:
        raise RuntimeError("TEST_DATABASE_URL is not set")
    ensure_postgres_database(url, "magazine_bench")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        marker = connection.execute(sa.text(
            "SELECT version FROM bench_generated")).scalar() if sa.inspect(
            connection).has_table("bench_generated") else None
    engine.dispose()
    if marker != f"{schema_key()}-s{factor:g}":
        generate(url, factor, log=log)
    return url


def working_copy(url: str, name: str = "work") -> str:
    """A fresh copy of a generated database for a benchmark that changes data."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        target = CACHE / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(parsed.database, target)
        return sqlite_url(target)
    return ensure_postgres_database(url, f"magazine_bench_{name}", template=parsed.database)


# ---------------------------------------------------------------- writing rows

class Writer:
    """Set-based inserts of plain tuples: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.raw = connection.connection.driver_connection
        self.counts: dict[str, int] = {}

    def value(self, value):
        if self.dialect == "sqlite":
            if isinstance(value, datetime):
                return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, bool):
                return int(value)
        return value

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
        count = 0
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                self._write(table, columns, batch)
                count += len(batch)
                batch = []
        if batch:
            self._write(table, columns, batch)
            count += len(batch)
        self.counts[table] = self.counts.get(table, 0) + count
        return count

    def _write(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        names = ", ".join(columns)
        if self.dialect == "postgresql":
            with self.raw.cursor() as cursor, cursor.copy(
                    f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            convert = self.value
            self.raw.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [tuple(convert(v) for v in row) for row in rows])


# ---------------------------------------------------------------- the world

FIRST = ["Emma", "Lotte", "Els", "An", "Sofie", "Nele", "Katrien", "Liesbeth", "Fatima",
         "Yasmine", "Hanne", "Lien", "Marie", "Sarah", "Inge", "Griet", "Veerle", "Ilse", "Tom",
         "Pieter", "Jonas", "Bart", "Wouter", "Karim", "Jeroen", "Leen", "Eva", "Ayse", "Elif"]
LAST = ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
        "Wouters", "De Smet", "Dubois", "Hermans", "Aerts", "Van den Broeck", "Vermeulen",
        "De Clercq", "Verhoeven", "Lambrechts", "El Amrani", "Yilmaz", "Coppens", "Bogaert"]
ORGANISATIONS = ["Kinderdagverblijf De Rups", "Kinderopvang 't Kabouterhuis",
                 "Crèche Het Zonnetje", "BKO De Speelvogel", "Kinderdagverblijf Hummeltjes",
                 "Huis van het Kind Noord", "Kinderopvang Sloeber", "Dienst Onthaalouders Kempen"]
STREETS = ["Kerkstraat", "Stationsstraat", "Schoolstraat", "Dorpsstraat", "Molenstraat",
           "Nieuwstraat", "Kouter", "Brugsesteenweg", "Lindenlaan", "Veldstraat"]
CITIES = [("9000", "Gent", "BE"), ("2000", "Antwerpen", "BE"), ("3000", "Leuven", "BE"),
          ("8000", "Brugge", "BE"), ("3500", "Hasselt", "BE"), ("2800", "Mechelen", "BE"),
          ("8500", "Kortrijk", "BE"), ("9300", "Aalst", "BE"), ("1000", "Brussel", "BE"),
          ("2300", "Turnhout", "BE"), ("4811 AB", "Breda", "NL"), ("6211 AB", "Maastricht", "NL"),
          ("L-1009", "Luxembourg", "LU"), ("59000", "Lille", "FR")]
RUBRICS = ["Uit de praktijk", "Tools", "Onderzoek", "Interview", "Column", "Beleid",
           "Spelen en leren", "Gezondheid", "Ouders", "Inclusie"]
# (weight, state kind) of the generated subscriptions.
MIX = [(45, "active"), (2, "pending"), (6, "cancelled"), (3, "graced"), (28, "lapsed"),
       (6, "expired"), (3, "complimentary"), (7, "gift")]
PROVIDERS = ["bank_transfer"] * 11 + ["stripe"] * 5 + ["mollie"] * 4
TERM_DAYS = 365


@dataclass(slots=True)
class OrderSpec:
    created: datetime
    user_id: int
    plan: object
    copies: int
    provider: str
    state: str                # paid / awaiting_payment / expired
    total: int
    vat: int
    lines: tuple              # ((kind, qty, unit, gross, vat), ...)
    address: tuple            # street, postcode, city, country
    name: str
    email: str
    organisation: str
    locale: str
    id: int = 0
    paid_at: datetime | None = None


def generate(database_url: str, factor: float = 1.0, *, log=print,
             fresh: bool = True) -> dict[str, int]:
    """Generate the magazine into `database_url` (emptied first); returns the row counts.
    `fresh=False` fills a database that has the schema already and is empty (the tests'),
    and leaves it as it is otherwise (no marker table, no ANALYZE)."""
    started = time.monotonic()
    app = bench_app(database_url)
    with app.app_context():
        from business.jobs import close_months
        from magazine.db import db

        engine = db.engine
        if fresh:
            if engine.dialect.name == "postgresql":
                with engine.begin() as connection:
                    connection.execute(sa.text("DROP SCHEMA public CASCADE"))
                    connection.execute(sa.text("CREATE SCHEMA public"))
            db.create_all()
        plans = _plans(app)
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA synchronous=OFF")
            writer = Writer(connection)
            _World(app, writer, plans, factor).build()
            if engine.dialect.name == "postgresql":
                _fix_sequences(connection)
        # Statistics first: PostgreSQL plans the closing's sums over a million payments
        # as nested loops without them (minutes instead of seconds).
        with engine.connect() as connection:
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
        # The business roll-up's finished months closed, as the hourly job leaves them.
        closed = close_months()
        db.session.commit()
        writer.counts["business_month_totals"] = len(closed)
        if fresh:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    connection.execute(sa.text(
                        "CREATE TABLE bench_generated (version text)"))
                    connection.execute(sa.text("INSERT INTO bench_generated VALUES (:v)"),
                                       {"v": f"{schema_key()}-s{factor:g}"})
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    connection.connection.driver_connection.autocommit = True
                    connection.exec_driver_sql("VACUUM ANALYZE")
                else:
                    connection.exec_driver_sql("ANALYZE")
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = writer.counts
        db.session.remove()
        engine.dispose()
    log(f"generated {database_url.split('@')[-1]} at scale {factor:g} in "
        f"{time.monotonic() - started:.1f} s: " + ", ".join(
            f"{n} {t}" for t, n in counts.items() if t in (
                "subscriptions", "payments", "orders", "invoices", "articles", "issues",
                "business_subscription_months", "business_month_totals")))
    return counts


def _plans(app) -> list:
    """The demo's plans, made by the service (six rows, with their price bands)."""
    from magazine.db import db
    from subscriptions import demo
    from subscriptions.models import Plan

    demo._plans()
    db.session.commit()
    plans = list(db.session.scalars(sa.select(Plan).order_by(Plan.position)))
    for plan in plans:
        plan.bands = plan.band_tuples()
    db.session.expunge_all()
    return plans


def _fix_sequences(connection: sa.Connection) -> None:
    from magazine.db import db

    for table in db.metadata.sorted_tables:
        if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement:
            connection.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"GREATEST((SELECT max(id) FROM {table.name}), 1))"))


class _World:
    def __init__(self, app, writer: Writer, plans: list, factor: float) -> None:
        from magazine.auth.services import hash_password

        self.app = app
        self.w = writer
        self.plans = {plan.code: plan for plan in plans}
        self.factor = factor
        self.rng = random.Random(20261125)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now - timedelta(days=365 * YEARS)
        self.password_hash = hash_password(PASSWORD)
        self.per_year = app.config["ISSUES_PER_YEAR"]
        self.grace = app.config["GRACE_ISSUES"]
        self.next_user = 1
        self.price_cache: dict = {}

    # ---- people and issues

    def build(self) -> None:
        self.staff()
        self.issues()
        self.editorial()
        self.subscriptions()

    def _user(self, rows: list, email: str, name: str, role: str, created: datetime,
              locale: str = "nl_BE") -> int:
        uid = self.next_user
        self.next_user += 1
        rows.append((uid, email, name, self.password_hash, locale, False, created, created,
                     created, role))
        return uid

    def _write_users(self, rows: list) -> None:
        self.w.insert("users", ("id", "email", "name", "password_hash", "locale", "is_blocked",
                                "email_verified_at", "password_changed_at", "created_at"),
                      (row[:9] for row in rows))
        self.w.insert("user_roles", ("user_id", "role", "granted_at"),
                      ((row[0], row[9], row[8]) for row in rows))

    def staff(self) -> None:
        rows: list = []
        self.staff_ids = {}
        for role in ("admin", "editor_in_chief", "coordinator", "copy_editor"):
            self.staff_ids[role] = self._user(rows, f"{role}@bench.example", role.title(),
                                              role, self.start)
        self.board = [self._user(rows, f"board{i}@bench.example", f"Redactielid {i}",
                                 "board_member", self.start) for i in range(12)]
        self.authors = [self._user(rows, f"author{i}@bench.example",
                                   f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}",
                                   "author", self.start)
                        for i in range(scaled(400, self.factor, 5))]
        self._write_users(rows)

    def issues(self) -> None:
        """60 issues, ISSUES_PER_YEAR a year: the oldest dispatched, the newest but two
        published and waiting for its dispatch (the dispatch benchmark locks it), two
        planned."""
        step = timedelta(days=round(365 / self.per_year))
        target = ISSUES - 3
        rows = []
        self.issue_dates: list[date] = []
        for index in range(ISSUES):
            printed = (self.now - timedelta(days=5) + (index - target) * step).date()
            state = ("dispatched" if index < target else "published" if index == target
                     else "planned")
            rows.append((index + 1, index // self.per_year + 1, index % self.per_year + 1,
                         f"Thema {index + 1}" if index % 7 == 3 else "", index % 7 == 3, state,
                         printed, printed - timedelta(days=42), printed - timedelta(days=56),
                         printed - timedelta(days=28), printed - timedelta(days=14),
                         printed - timedelta(days=7), printed - timedelta(days=10), 32,
                         datetime.combine(printed - timedelta(days=120), datetime.min.time(),
                                          UTC), ""))
            self.issue_dates.append(printed)
        self.w.insert("issues", (
            "id", "volume", "number", "theme", "is_special", "state", "print_date",
            "copy_deadline", "board_meeting", "layout_deadline", "proof_deadline",
            "printer_deadline", "dispatch_cutoff", "page_budget", "created_at",
            "pdf_filename"), rows)
        self.target_issue = target + 1
        self.cutoffs = [row[12] for row in rows]

    def issue_after(self, day: date) -> int | None:
        """The first issue whose dispatch cut-off is on or after `day` (its id)."""
        index = bisect.bisect_left(self.cutoffs, day)
        return index + 1 if index < ISSUES else None

    def editorial(self) -> None:
        rng = self.rng
        self.w.insert("rubrics", ("id", "name", "description", "position", "active"),
                      [(i + 1, name, "", i, True) for i, name in enumerate(RUBRICS)])
        count = scaled(ARTICLES, self.factor, 20)
        published_states = ["published"]
        other = (["declined"] * 3 + ["withdrawn"] + ["deferred"] + ["commissioned"]
                 + ["draft_submitted", "in_review", "revisions_requested", "accepted",
                    "copyediting", "ready_for_layout"])
        articles, pitches, revisions, slots = [], [], [], []
        positions: dict[int, int] = {}
        body = " ".join(["Kinderen leren spelenderwijs in de opvang."] * 40)
        for aid in range(1, count + 1):
            created = self.start + timedelta(days=rng.randrange(365 * YEARS))
            issue_id = None
            if rng.random() < 0.45:
                state = rng.choice(published_states)
                issue_id = rng.randrange(1, self.target_issue + 1)
            else:
                state = rng.choice(other)
                if state in ("accepted", "copyediting", "ready_for_layout"):
                    issue_id = rng.randrange(self.target_issue + 1, ISSUES + 1)
            author = rng.choice(self.authors)
            rubric = rng.randrange(1, len(RUBRICS) + 1)
            title = f"Artikel {aid}: {rng.choice(RUBRICS).lower()} in de opvang"
            pitches.append((aid, title, "Een voorstel uit de praktijk.", rubric, author,
                            "Auteur", f"author{aid % 400}@bench.example", "", "", 1200, None,
                            "accepted", False, "", None, None, "", created))
            articles.append((aid, title, "", rubric, author, aid, issue_id, 1200,
                             (created + timedelta(days=60)).date(), state, created))
            revisions.append((aid, aid, 1, body, 280, "draft", "", author,
                              created + timedelta(days=30)))
            if issue_id is not None:
                position = positions[issue_id] = positions.get(issue_id, 0) + 1
                slots.append((aid, issue_id, position, "", rubric, aid, 2, False))
        # Open pitches on the board's agenda.
        for pid in range(count + 1, count + 1 + scaled(2000, self.factor, 10)):
            pitches.append((pid, f"Voorstel {pid}", "Een idee voor een artikel.",
                            rng.randrange(1, len(RUBRICS) + 1), rng.choice(self.board),
                            "Redactielid", "board@bench.example", "", "", 1000, None,
                            rng.choice(["submitted", "on_agenda", "declined", "deferred"]),
                            False, "", None, None, "", self.now - timedelta(days=pid % 90)))
        self.w.insert("pitches", (
            "id", "title", "summary", "rubric_id", "proposer_id", "proposer_name",
            "proposer_email", "proposer_organisation", "proposed_author", "estimated_words",
            "target_issue_id", "state", "is_public", "client_address", "confirmed_at",
            "deferred_until", "decision_note", "created_at"), pitches)
        self.w.insert("articles", (
            "id", "title", "summary", "rubric_id", "author_id", "pitch_id", "issue_id",
            "target_words", "deadline", "state", "created_at"), articles)
        self.w.insert("revisions", (
            "id", "article_id", "number", "body", "word_count", "kind", "note", "saved_by_id",
            "created_at"), revisions)
        self.w.insert("flatplan_slots", (
            "id", "issue_id", "position", "label", "rubric_id", "article_id", "pages",
            "pages_set_by_hand"), slots)

    # ---- money

    def priced(self, plan, copies: int, country: str, locale: str) -> tuple:
        key = (plan.code, copies, country)
        found = self.price_cache.get(key)
        if found is None:
            from subscriptions import pricing
            from subscriptions.models import zone_for_country

            unit = pricing.unit_price_for_copies(plan.price_cents, plan.bands, copies)
            lines = [pricing.price_line("subscription", "", copies, unit, plan.vat_rate_bp)]
            per_copy = plan.shipping_cents(zone_for_country(country))
            if per_copy:
                lines.append(pricing.price_line("shipping", "", copies, per_copy,
                                                plan.vat_rate_bp))
            totals = pricing.totals(lines)
            found = (totals.gross_cents, totals.vat_cents, tuple(
                (line.kind, line.quantity, line.unit_cents, line.gross_cents, line.vat_cents)
                for line in lines))
            self.price_cache[key] = found
        return found

    # ---- subscriptions and everything hanging from them

    def subscriptions(self) -> None:
        rng, now = self.rng, self.now
        n = scaled(SUBSCRIPTIONS, self.factor, 50)
        kinds = [kind for weight, kind in MIX for _ in range(weight)]
        users: list = []
        n_users = max(int(n * 0.88), 1)
        for i in range(n_users):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            self._user(users, f"lezer{i}@bench.example", f"{first} {last}", "subscriber",
                       self.start, "en" if i % 17 == 0 else "nl_BE")
        user_ids = [row[0] for row in users]
        names = {row[0]: row[2] for row in users}
        locales = {row[0]: row[4] for row in users}
        self._write_users(users)
        del users

        orders: list[OrderSpec] = []
        subs: list[tuple] = []      # (id, fields..., order spec list)
        addresses: list[tuple] = []
        mandates: dict[int, tuple] = {}
        months: list[tuple] = []
        span_days = (now - self.start).days
        current_month = now.year * 12 + now.month - 1
        first_rollup = current_month - ROLLUP_MONTHS
        address_id = 0
        history = list(range(self.target_issue - DISPATCHED_HISTORY, self.target_issue))
        entries: list[tuple] = []
        renewal_orders: list[tuple] = []

        for sid in range(1, n + 1):
            uid = user_ids[sid - 1] if sid <= n_users else rng.choice(user_ids)
            kind = rng.choice(kinds)
            roll = rng.random()
            organisation = ""
            copies = 1
            if kind == "gift":
                plan = self.plans["cadeau"]
            elif roll < 0.12:
                plan = self.plans["organisatie"]
                organisation = rng.choice(ORGANISATIONS)
                copies = rng.choice([2, 3, 5, 5, 8, 10, 12, 25])
            elif roll < 0.27:
                plan = self.plans["digitaal"]
            elif roll < 0.37:
                plan = self.plans["student"]
            elif roll < 0.47:
                plan = self.plans["papier"]
            else:
                plan = self.plans["individueel"]
            # More subscriptions began recently than five years ago (the magazine grew).
            age = int(span_days * (1 - math.sqrt(rng.random())))
            if kind == "pending":
                age = rng.randrange(1, 25)
            elif kind == "expired":
                age = rng.randrange(35, span_days)
            created = now - timedelta(days=age, minutes=rng.randrange(1440))
            locale = locales[uid]
            postcode, city, country = rng.choice(CITIES)
            street = f"{rng.choice(STREETS)} {rng.randrange(1, 180)}"
            gross, vat, lines = self.priced(plan, copies, country, locale)
            provider = rng.choice(PROVIDERS)
            terms_possible = age // TERM_DAYS + 1
            if kind in ("active", "cancelled", "graced"):
                terms = terms_possible
            elif kind == "lapsed":
                terms = rng.randrange(1, terms_possible + 1)
            elif kind == "gift":
                terms = 1
            else:
                terms = 1
            complimentary = kind == "complimentary"
            if kind == "gift" and age >= TERM_DAYS:
                state = "lapsed"
            elif kind == "lapsed" and (terms * TERM_DAYS) >= age:
                state = "graced" if age > 60 else "active"
            else:
                state = {"active": "active", "pending": "pending_payment",
                         "cancelled": "cancelled", "graced": "graced", "lapsed": "lapsed",
                         "expired": "expired", "complimentary": "active",
                         "gift": "active"}[kind]
            into_term = age - (terms - 1) * TERM_DAYS
            remaining = max(plan.issues_per_term - into_term * self.per_year // 365, 1)
            if state in ("graced", "lapsed"):
                remaining = 0
            if state in ("pending_payment", "expired"):
                remaining = plan.issues_per_term
            if state == "cancelled" and rng.random() < 0.4:
                remaining = 0
            name = names[uid]
            recipient = ""
            if kind == "gift":
                recipient = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            order_specs: list[OrderSpec] = []
            if not complimentary:
                for term in range(terms):
                    placed = created + timedelta(days=term * TERM_DAYS)
                    order_state = "paid"
                    if state == "pending_payment":
                        order_state = "awaiting_payment"
                    elif state == "expired":
                        order_state = "expired"
                    order_specs.append(OrderSpec(
                        placed, uid, plan, copies, provider if term else rng.choice(PROVIDERS),
                        order_state, gross, vat, lines, (street, postcode, city, country),
                        name, f"lezer{uid}@bench.example", organisation, locale))
                # A graced subscription's renewal order waits for its money.
                if state == "graced":
                    order_specs.append(OrderSpec(
                        created + timedelta(days=terms * TERM_DAYS - 20), uid, plan, copies,
                        "bank_transfer", "awaiting_payment", gross, vat, lines,
                        (street, postcode, city, country), name, f"lezer{uid}@bench.example",
                        organisation, locale))
                orders.extend(order_specs)
            first_issue = self.issue_after(created.date())
            started = created + timedelta(days=3)
            activated = started if state not in ("pending_payment", "expired") else None
            graced_at = now - timedelta(days=rng.randrange(1, 50)) if state == "graced" \
                else None
            auto_renew = (kind not in ("cancelled", "gift", "complimentary")
                          and provider != "bank_transfer")
            subs.append([sid, uid, plan.id, None, state, copies,
                         terms if not complimentary else 1, plan.issues_per_term, remaining,
                         first_issue, auto_renew, "Te weinig tijd" if state == "cancelled"
                         else "", None, complimentary,
                         "Partnerorganisatie" if complimentary else "", recipient,
                         recipient.lower().replace(" ", ".") + "@example.be" if recipient
                         else "", "Veel leesplezier!" if recipient else "",
                         started if recipient else None, activated, graced_at,
                         1 if state == "graced" and rng.random() < 0.5 else 0, created,
                         order_specs])
            if auto_renew and uid not in mandates and provider in ("stripe", "mollie"):
                mandates[uid] = (uid, provider, f"cus_{uid}" if provider == "stripe"
                                 else f"cst_{uid}",
                                 f"pm_{uid}" if provider == "stripe" else f"mdt_{uid}",
                                 "card" if provider == "stripe" else "directdebit",
                                 "Visa •••• 4242" if provider == "stripe" else "IBAN •••• 6769",
                                 "valid", created)
            if plan.includes_print:
                groups = [(copies, name)]
                if copies >= 5 and rng.random() < 0.5:
                    second = copies // 2
                    groups = [(copies - second, name), (second, "Verantwoordelijke locatie 2")]
                for group_no, (group_copies, addressee) in enumerate(groups, start=1):
                    address_id += 1
                    addresses.append((address_id, sid, group_no, group_copies,
                                      recipient or addressee, organisation, street, postcode,
                                      city, country, None, created))
                if rng.random() < 0.04 and state in ("active", "cancelled"):
                    # A move announced for after the next issue.
                    address_id += 1
                    pc, ct, co = rng.choice(CITIES)
                    addresses.append((address_id, sid, 1, groups[0][0], recipient or name,
                                      organisation, f"{rng.choice(STREETS)} 7 bus 2", pc, ct,
                                      co, self.target_issue + 1, now - timedelta(days=3)))
            # Running months (for the roll-up) and the past dispatches it received.
            if activated is not None:
                if state in ("active", "graced") or (state == "cancelled" and remaining):
                    ends = now
                else:
                    ends = created + timedelta(days=terms * TERM_DAYS)
                first_month = activated.year * 12 + activated.month - 1
                last_month = min(ends.year * 12 + ends.month - 1, current_month - 1)
                net = sum(line[3] - line[4] for line in lines if line[0] == "subscription")
                mrr = 0 if complimentary else (
                    (net * self.per_year * 2 + plan.issues_per_term * 12)
                    // (plan.issues_per_term * 24))
                for month in range(max(first_month, first_rollup), last_month + 1):
                    months.append((month, sid, uid, plan.id, "active", complimentary, mrr,
                                   now))
                for issue_id in history:
                    printed = self.issue_dates[issue_id - 1]
                    if activated.date() <= printed <= ends.date() and first_issue is not None \
                            and first_issue <= issue_id:
                        entries.append((issue_id, sid, plan.id, copies, plan.includes_digital,
                                        False, "history", None))

        # Orders in date order: ids and invoice numbers follow the calendar (gapless).
        orders.sort(key=lambda spec: spec.created)
        for number, spec in enumerate(orders, start=1):
            spec.id = number
        for row in subs:
            specs = row.pop()
            if specs:
                row[3] = specs[0].id
                for term, spec in enumerate(specs[1:], start=2):
                    renewal_orders.append((len(renewal_orders) + 1, row[0], term, row[2],
                                           spec.id, spec.created + timedelta(days=5)
                                           if spec.state == "paid" else None, spec.created))
        self.orders_and_money(orders)
        self.w.insert("subscriptions", (
            "id", "subscriber_id", "plan_id", "order_id", "state", "copies", "term",
            "issues_granted", "issues_remaining", "first_issue_id", "auto_renew",
            "cancel_reason", "next_plan_id", "complimentary", "note", "gift_recipient_name",
            "gift_recipient_email", "gift_message", "gift_announced_at", "activated_at",
            "graced_at", "grace_issues_used", "created_at"), (tuple(row) for row in subs))
        del subs
        self.w.insert("delivery_addresses", (
            "id", "subscription_id", "group_no", "copies", "name", "organisation", "street",
            "postcode", "city", "country", "effective_from_issue_id", "created_at"), addresses)
        del addresses
        self.w.insert("mandates", (
            "user_id", "provider", "customer_ref", "mandate_ref", "method", "label", "state",
            "created_at"), mandates.values())
        self.w.insert("business_subscription_months", (
            "month_no", "subscription_id", "subscriber_key", "plan_id", "state",
            "complimentary", "mrr_cents", "recorded_at"), months)
        del months
        self.w.insert("dispatch_entries", (
            "issue_id", "subscription_id", "plan_id", "copies", "digital", "graced",
            "lock_token", "mailed_at"), entries)
        per_issue: dict[int, list[int]] = {}
        for entry in entries:
            counted = per_issue.setdefault(entry[0], [0, 0])
            counted[0] += 1
            counted[1] += entry[3]
        self.w.insert("dispatches", (
            "issue_id", "locked_at", "subscriptions", "copies", "stock_copies",
            "dispatched_at"), [
            (issue_id, datetime.combine(self.issue_dates[issue_id - 1], datetime.min.time(),
                                        UTC), *per_issue.get(issue_id, [0, 0]), 25,
             datetime.combine(self.issue_dates[issue_id - 1], datetime.min.time(), UTC))
            for issue_id in history])
        del entries
        self.w.insert("renewal_orders", (
            "id", "subscription_id", "term", "plan_id", "order_id", "applied_at",
            "created_at"), renewal_orders)

    def orders_and_money(self, orders: list[OrderSpec]) -> None:
        """Orders with their lines, invoices (gapless per year, in date order), credit notes
        for expired ones, payments (the paid one and the attempts that failed, were
        abandoned or expired: PAYMENTS in all), refunds and chargebacks."""
        rng = self.rng
        target = scaled(PAYMENTS, self.factor, 100)
        extra_per_order = max(target - len(orders), 0) / max(len(orders), 1)
        counters: dict[int, int] = {}
        credit_counters: dict[int, int] = {}
        payment_ids = iter(range(1, 10**9))
        line_ids = iter(range(1, 10**9))
        credit_ids = iter(range(1, 10**9))
        refunds: list[tuple] = []
        chargebacks: list[tuple] = []
        credit_notes: list[tuple] = []
        stripe_paid: list[int] = []

        def order_rows():
            for spec in orders:
                street, postcode, city, country = spec.address
                paid_at = spec.created + timedelta(days=rng.randrange(0, 6), hours=3) \
                    if spec.state == "paid" else None
                closed = spec.created + timedelta(days=30) if spec.state == "expired" else None
                spec.paid_at = paid_at
                yield (spec.id, spec.user_id, spec.state, spec.locale,
                       f"{spec.id:010d}{spec.id % 97 or 97:02d}", spec.provider, spec.name,
                       spec.email, spec.organisation, "", "", street, postcode, city, country,
                       spec.total, spec.vat, spec.created + timedelta(days=30), paid_at,
                       closed, spec.created)

        def line_rows():
            for spec in orders:
                for position, (kind, qty, unit, gross, vat) in enumerate(spec.lines):
                    yield (next(line_ids), spec.id, position, kind,
                           f"{spec.plan.name_nl}, {spec.plan.issues_per_term} nummers"
                           if kind == "subscription" else "Verzending", spec.plan.id, qty,
                           unit, spec.plan.vat_rate_bp, gross, vat)

        def invoice_rows():
            for spec in orders:
                day = spec.created.date()
                sequence = counters[day.year] = counters.get(day.year, 0) + 1
                street, postcode, city, country = spec.address
                yield (spec.id, f"{day.year}-{sequence:06d}", day.year, sequence, spec.id, day,
                       day + timedelta(days=30), spec.total, spec.vat, spec.name,
                       spec.organisation, "", f"{street}\n{postcode} {city}\n{country}",
                       spec.email, spec.locale, spec.created)
                if spec.state == "expired":
                    closed = spec.created + timedelta(days=30)
                    credit_notes.append((closed, spec))

        def payment_rows():
            for spec in orders:
                extra = int(extra_per_order) + (rng.random() < extra_per_order % 1)
                moment = spec.created
                for _ in range(extra):
                    pid = next(payment_ids)
                    provider = spec.provider if spec.provider != "bank_transfer" \
                        else rng.choice(("stripe", "mollie"))
                    state = rng.choice(("failed", "expired", "cancelled", "expired"))
                    yield self._payment(pid, spec, provider, state, moment, None)
                    moment += timedelta(minutes=rng.randrange(5, 600))
                pid = next(payment_ids)
                if spec.state == "paid":
                    yield self._payment(pid, spec, spec.provider, "paid", moment, spec.paid_at)
                    roll = rng.random()
                    if roll < 0.01:
                        refunds.append((pid, spec))
                    elif roll < 0.012 and spec.provider != "bank_transfer":
                        chargebacks.append((pid, spec))
                    if spec.provider == "stripe":
                        stripe_paid.append(pid)
                else:
                    state = "open" if spec.state == "awaiting_payment" else "expired"
                    yield self._payment(pid, spec, spec.provider, state, moment, None)

        w = self.w
        w.insert("orders", (
            "id", "user_id", "state", "locale", "structured_communication", "provider",
            "billing_name", "billing_email", "billing_organisation", "billing_vat_number",
            "billing_po_reference", "billing_street", "billing_postcode", "billing_city",
            "billing_country", "total_cents", "vat_cents", "expires_at", "paid_at",
            "closed_at", "created_at"), order_rows())
        w.insert("order_lines", (
            "id", "order_id", "position", "kind", "description", "plan_id", "quantity",
            "unit_cents", "vat_rate_bp", "gross_cents", "vat_cents"), line_rows())
        w.insert("invoices", (
            "id", "number", "year", "sequence", "order_id", "issue_date", "due_date",
            "total_cents", "vat_cents", "buyer_name", "buyer_organisation",
            "buyer_vat_number", "buyer_address", "buyer_email", "locale", "issued_at"),
            invoice_rows())
        w.insert("payments", (
            "id", "order_id", "provider", "provider_ref", "state", "amount_cents", "note",
            "received_on", "paid_at", "created_at", "checkout_url", "method", "save_method",
            "customer_ref", "intent_ref", "idempotency_key", "last_error"), payment_rows())

        credit_notes.sort(key=lambda item: item[0])
        notes = []
        refund_notes = []
        for closed, spec in credit_notes:
            day = closed.date()
            sequence = credit_counters[day.year] = credit_counters.get(day.year, 0) + 1
            notes.append((next(credit_ids), f"CN{day.year}-{sequence:06d}", day.year, sequence,
                          spec.id, day, "Bestelling niet op tijd betaald", spec.total,
                          spec.vat, spec.name, spec.organisation, "", "", spec.email,
                          spec.locale, closed))
        # Refunds get their own credit note, numbered after the expiries of their year.
        for pid, spec in sorted(refunds, key=lambda item: item[1].paid_at):
            moment = spec.paid_at + timedelta(days=10)
            day = moment.date()
            sequence = credit_counters[day.year] = credit_counters.get(day.year, 0) + 1
            note_id = next(credit_ids)
            notes.append((note_id, f"CN{day.year}-{sequence:06d}", day.year, sequence, spec.id,
                          day, "Terugbetaald", spec.total, spec.vat, spec.name,
                          spec.organisation, "", "", spec.email, spec.locale, moment))
            refund_notes.append((pid, spec.provider, f"re_{pid}", spec.total, "Op vraag",
                                 moment, note_id))
        w.insert("credit_notes", (
            "id", "number", "year", "sequence", "invoice_id", "issue_date", "reason",
            "total_cents", "vat_cents", "buyer_name", "buyer_organisation",
            "buyer_vat_number", "buyer_address", "buyer_email", "locale", "issued_at"), notes)
        w.insert("refunds", ("payment_id", "provider", "provider_ref", "amount_cents",
                             "reason", "created_at", "credit_note_id"), refund_notes)
        w.insert("chargebacks", ("payment_id", "provider", "provider_ref", "amount_cents",
                                 "reason", "created_at"),
                 [(pid, spec.provider, f"chb_{pid}", spec.total, "fraudulent",
                   spec.paid_at + timedelta(days=40)) for pid, spec in chargebacks])
        w.insert("document_counters", ("series", "year", "last_number"),
                 [("invoice", year, last) for year, last in counters.items()]
                 + [("credit_note", year, last) for year, last in credit_counters.items()])
        self.stripe_paid = stripe_paid

    def _payment(self, pid: int, spec: OrderSpec, provider: str, state: str,
                 created: datetime, paid_at: datetime | None) -> tuple:
        online = provider in ("stripe", "mollie")
        ref = (f"pi_{pid}" if provider == "stripe" else f"tr_{pid}") if online else None
        return (pid, spec.id, provider, ref, state, spec.total, "",
                paid_at.date() if paid_at and not online else None, paid_at, created,
                None, "card" if provider == "stripe" else "bancontact" if online else "",
                False, f"cus_{spec.user_id}" if online else None, ref, None,
                "card_declined" if state == "failed" else "")


def main() -> int:
    factor = scale()
    url = generated_database("sqlite", factor)
    print(f"SQLite: {url}")
    if postgres_url():
        print(f"PostgreSQL: {generated_database('postgresql', factor)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
