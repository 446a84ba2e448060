"""`make bench` proven to run: the generator and every benchmark on a tiny magazine (no
timing is asserted: only that each runs to its result line and writes its results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench import __main__ as bench_main
from bench import common, generate


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("BENCH_SCALE", "0.002")
    monkeypatch.setenv("BENCH_HTTP_SECONDS", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(generate, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results.json")
    return generate.generated_database("sqlite", 0.002, log=lambda *_: None)


def test_generator_builds_a_consistent_magazine(tiny):
    engine = sa.create_engine(tiny)
    with engine.connect() as connection:
        count = lambda table: connection.execute(  # noqa: E731
            sa.text(f"SELECT count(*) FROM {table}")).scalar()
        assert count("subscriptions") == 200
        assert count("issues") == 60
        assert 1900 <= count("payments") <= 2100  # 1M at scale 1, extras drawn at random
        assert count("invoices") == count("orders")
        kinds = set(connection.execute(sa.text("SELECT DISTINCT state FROM subscriptions"))
                    .scalars())
        assert {"active", "lapsed", "expired"} <= kinds
        # Invoice numbers without gaps per year.
        for year, n, top in connection.execute(sa.text(
                "SELECT year, count(*), max(sequence) FROM invoices GROUP BY year")):
            assert n == top, year
    engine.dispose()
    # Cached: asking again generates nothing.
    assert generate.generated_database("sqlite", 0.002, log=pytest.fail) == tiny


def test_every_benchmark_runs_and_writes_its_result(tiny, capsys):
    assert bench_main.main([]) == 0
    out = capsys.readouterr().out
    for name in bench_main.NAMES:
        assert f"{name}: ratio=" in out
    results = json.loads(Path(common.RESULTS).read_text())
    assert [r["name"] for r in results["results"]] == list(bench_main.NAMES)
    assert results["meta"]["nproc"] >= 1
