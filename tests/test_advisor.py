"""The compression advisor on real data: two shapes whose best settings differ, and no scratch object left."""

from __future__ import annotations

import io

import pytest
from psycopg import sql

from lifecycle_resources.db.connection import connect
from lifecycle_resources.runner import advisor
from lifecycle_resources.runner.manager import DataLifecycleManager
from lifecycle_resources.runner.progress import Steps
from tests.conftest import sql_run
from tests.test_health import lifecycle

pytestmark = pytest.mark.integration


def ticks(dsn: str, schema: str, *, symbols: int, every: str, segment_by: str | None) -> str:
    """Two days of trades: `symbols` symbols each trading every `every`, prices random walks per symbol."""
    rel = f'"{schema}".ticks'
    sql_run(dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, sym text NOT NULL, price float8, qty int)")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(dsn, f"""
        INSERT INTO {rel}
        SELECT ts, sym, 100 + sum(random() - 0.5) OVER (PARTITION BY sym ORDER BY ts), (random() * 10)::int
          FROM generate_series(date_trunc('day', now()) - interval '2 days', date_trunc('day', now()) - interval '1 second',
                               %s::interval) ts,
               (SELECT 'S' || s AS sym FROM generate_series(1, %s) s) syms""", (every, symbols))
    if segment_by is not None:
        with connect(dsn) as conn:
            conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {})")
                         .format(sql.Identifier(schema, "ticks"), sql.Literal(segment_by)))
            conn.commit()
    return f"{schema}.ticks"


def by_symbol(cand: advisor.Candidate) -> bool:
    return "sym" in cand.segment_by or cand.order_by[0].column == "sym"


def no_scratch(dsn: str) -> None:
    with connect(dsn) as conn:
        assert advisor.scratch_schemas(conn) == []
        assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables "
                            "WHERE hypertable_schema LIKE 'lifecycle_advisor_%'").fetchone() == (0,)


def test_advisor_few_symbols_recommends_grouping_by_symbol(tsdb_dsn: str, schema: str) -> None:
    table = ticks(tsdb_dsn, schema, symbols=10, every="20 seconds", segment_by=None)
    seen = []
    advice = advisor.advise(tsdb_dsn, table, progress=lambda i, n, c, m: seen.append((i, n, m is not None)))
    assert advice.sample_rows == 10 * 4320
    labels = [m.candidate.label for m in advice.measurements]
    assert "no segment-by" in labels and "segment by sym (10 values)" in labels
    # the best keeps each symbol's rows together (segmented by it, or ordered by it first): price walks compress
    assert by_symbol(advice.best.candidate), [(m.candidate.label, m.ratio) for m in advice.measurements]
    unsorted = next(m for m in advice.measurements if m.candidate.label == "no segment-by")
    assert advice.best.ratio > unsorted.ratio * 1.15
    assert all(m.before_bytes > 0 and m.after_bytes > 0 and m.seconds > 0 for m in advice.measurements)
    assert seen[0] == (1, len(labels), False) and seen[-1] == (len(labels), len(labels), True)
    assert "recommended: CompressionSettings" in advice.recommendation() and "sym" in advice.recommendation()
    no_scratch(tsdb_dsn)
    # the table itself is untouched: nothing compressed
    assert sql_run(tsdb_dsn, "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                             "WHERE hypertable_schema = %s", (schema,)) == [(0,)]


def test_advisor_many_symbols_recommends_no_segment_by(tsdb_dsn: str, schema: str) -> None:
    """5000 symbols trading every 2 hours: 12 rows per symbol and chunk, too few for segments to compress well.
    The declared segment-by sym (as the demo's feature table had) compresses badly; the advisor says so."""
    table = ticks(tsdb_dsn, schema, symbols=5000, every="2 hours", segment_by="sym")
    advice = DataLifecycleManager(tsdb_dsn).advise(table)
    current = advice.current
    assert current is not None and current.candidate.segment_by == ("sym",)
    assert not any(m.candidate.label.startswith("segment by sym") for m in advice.measurements), \
        "not a candidate: too few rows per segment"
    best = advice.best
    assert not by_symbol(best.candidate), [(m.candidate.label, m.ratio) for m in advice.measurements]
    assert best.ratio > current.ratio * 1.5
    assert "against" in advice.recommendation()
    no_scratch(tsdb_dsn)


def test_advisor_cleans_up_when_interrupted(tsdb_dsn: str, schema: str) -> None:
    table = ticks(tsdb_dsn, schema, symbols=5, every="5 minutes", segment_by=None)

    def stop(i: int, n: int, cand: advisor.Candidate, measured: advisor.Measurement | None) -> None:
        if measured is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        advisor.advise(tsdb_dsn, table, progress=stop)
    no_scratch(tsdb_dsn)


def test_cli_advise(tsdb_dsn: str, schema: str) -> None:
    table = ticks(tsdb_dsn, schema, symbols=10, every="1 minute", segment_by=None)
    out = lifecycle(tsdb_dsn, "advise", table)
    assert out.returncode == 0, out.stderr
    assert "segment by sym (10 values)" in out.stdout and "ratio" in out.stdout
    assert "recommended: CompressionSettings" in out.stdout and "<- best" in out.stdout
    assert "advise [1/" in out.stderr  # progress, as plain lines off a terminal
    missing = lifecycle(tsdb_dsn, "advise", f"{schema}.nope")
    assert missing.returncode == 1 and "is not a hypertable" in missing.stderr
    no_scratch(tsdb_dsn)


def test_progress_plain_lines_off_a_terminal() -> None:
    out = io.StringIO()
    with Steps("advise", stream=out, tty=False) as steps:
        steps.step(1, 2, "current")
        steps.done(1, 2, "current", "3.00x")
    assert out.getvalue().splitlines() == ["advise [1/2] current ...", "advise [1/2] current: 3.00x"]


def test_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    with Steps("advise", stream=out, tty=True) as steps:
        steps.step(1, 2, "current")
        steps.done(1, 2, "current", "3.00x")
        assert steps._bar is not None and steps._bar.tasks[0].completed == 1 and steps._bar.tasks[0].total == 2
    assert "advise [1/2]" not in out.getvalue()
