"""`make bench`: the benchmarks against floors measured in the same run (issue 9).

    python -m bench                         # all, on SQLite (and PostgreSQL if TEST_DATABASE_URL)
    python -m bench dispatch dashboard      # some
    BENCH_SCALE=0.01 python -m bench        # a tiny magazine (1k subscriptions)
    BENCH_HTTP_SECONDS=20 python -m bench account_page webhooks
    BENCH_DATABASES=postgresql python -m bench webhooks    # one database only

Each prints `NAME: ratio=R ours=X floor=Y` and all land in bench/results.json. The data
comes from bench/generate.py (cached in bench/.cache/ per generator version and scale).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BenchResult, write_results
from bench.generate import generated_database, postgres_url, scale

NAMES = ("dispatch", "dashboard", "account_page", "webhooks", "renewals")


def run_one(name: str, url: str, database: str, factor: float, out_dir: Path) -> BenchResult:
    if name == "dispatch":
        from bench import dispatch

        return dispatch.run(url, database, out_dir)
    if name == "dashboard":
        from bench import dashboard

        return dashboard.run(url, database, repeat=5 if factor < 0.2 else 2)
    if name == "account_page":
        from bench import http

        return http.account_page(url, database)
    if name == "webhooks":
        from bench import http

        return http.webhooks(url, database)
    if name == "renewals":
        from bench import renewals

        return renewals.run(url, database, factor)
    raise ValueError(name)


def machine() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "load_average": os.getloadavg()[0],
    }


def postgres_version(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        version = connection.execute(sa.text("SHOW server_version")).scalar()
    engine.dispose()
    return version


def main(argv: list[str]) -> int:
    # The app logs every mail it queues without MAIL_URL (the renewals' ones included).
    logging.getLogger("magazine.mail").setLevel(logging.WARNING)
    names = [name for name in argv if name in NAMES] or list(NAMES)
    unknown = [name for name in argv if name not in NAMES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(NAMES)}")
        return 2
    factor = scale()
    databases = ["sqlite"] + (["postgresql"] if postgres_url() else [])
    # BENCH_DATABASES=postgresql: only those of the above.
    only = [kind.strip() for kind in os.environ.get("BENCH_DATABASES", "").split(",")
            if kind.strip()]
    if only:
        databases = [kind for kind in databases if kind in only]
    results: list[BenchResult] = []
    meta = machine()
    meta["scale"] = factor
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for kind in databases:
            started = time.monotonic()
            url = generated_database(kind, factor)
            print(f"{kind}: data ready in {time.monotonic() - started:.0f} s", flush=True)
            if kind == "postgresql":
                meta["postgresql"] = postgres_version(url)
            for name in names:
                result = run_one(name, url, kind, factor, Path(tmp))
                results.append(result)
                print(result.line(), flush=True)
                write_results(results, meta)
    missed = [r for r in results if not r.met]
    print(f"{len(results) - len(missed)} of {len(results)} goals met"
          + (f"; missed: {', '.join(f'{r.name} ({r.database})' for r in missed)}"
             if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
