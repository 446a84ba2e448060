"""dashboard: the coordinator's desk (`GET /business/`) rendered on the generated data,
against the floor: the very SQL statements that request sent (captured with a SQLAlchemy
event listener), replayed on the bare driver and fetched whole. The ratio is what the ORM,
the Python figures and the template add; the statements are counted too.
"""

from __future__ import annotations

import re
import time

import sqlalchemy as sa

from bench.common import BenchResult
from bench.generate import COORDINATOR, PASSWORD, bench_app, working_copy

RATIO_GOAL = 1.5
STATEMENTS_GOAL = 20
REPEAT = 5


def _login(client, email: str) -> None:
    page = client.get("/login")
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page.data)
    data = {"email": email, "password": PASSWORD}
    if token:
        data["csrf_token"] = token.group(1).decode()
    answer = client.post("/login", data=data)
    if answer.status_code not in (302, 303):
        raise RuntimeError(f"login as {email} failed: {answer.status_code}")


def run(url: str, database: str, repeat: int = REPEAT) -> BenchResult:
    app = bench_app(working_copy(url, "desk"), WTF_CSRF_ENABLED=False)
    with app.app_context():
        from magazine.db import db

        engine = db.engine
        client = app.test_client()
        _login(client, COORDINATOR)
        captured: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many):
            captured.append((statement, parameters))

        # The first request warms up too (templates compiled, pages cached) and is not timed.
        sa.event.listen(engine, "before_cursor_execute", capture)
        answer = client.get("/business/?lang=en")
        sa.event.remove(engine, "before_cursor_execute", capture)
        if answer.status_code != 200:
            raise RuntimeError(f"/business/ answered {answer.status_code}")
        statements = list(captured)

        # The sides take turns and the fastest run of each counts: the machine is shared
        # (and PostgreSQL sets hint bits on the first reads of a fresh copy).
        times, floor_times = [], []
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            for _ in range(repeat):
                started = time.perf_counter()
                answer = client.get("/business/?lang=en")
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200
                started = time.perf_counter()
                cursor = raw.cursor()
                for statement, parameters in statements:
                    cursor.execute(statement, parameters)
                    if cursor.description is not None:
                        cursor.fetchall()
                raw.rollback()
                floor_times.append(time.perf_counter() - started)
        ours, floor = min(times), min(floor_times)
        db.session.remove()
        engine.dispose()
    ratio = ours / floor
    count = len(statements)
    return BenchResult(
        "dashboard", database, ours, floor, "s",
        f"ratio ≤ {RATIO_GOAL:g}, statements ≤ {STATEMENTS_GOAL}",
        ratio <= RATIO_GOAL and count <= STATEMENTS_GOAL, ratio=ratio,
        extra={"statements": count})
