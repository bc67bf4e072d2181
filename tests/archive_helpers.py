"""Shared by the archive tests: a hypertable of varied types with old (some compressed) chunks, and its rows
as text (every column, so comparisons are of every row's whole content)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO, sql_run

# 20 days of half-hourly ticks for 2 symbols, ending now: 10 daily chunks older than 10 days, 2 of them
# compressed. Types: exact in Arrow (timestamptz, text, float8 with NaN and NULL, int, bool, date) and text-borne
# (numeric, jsonb, uuid, interval).
def make_ticks(dsn: str, schema: str, *, compress: int = 2) -> str:
    rel = f'"{schema}".ticks'
    sql_run(dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, symbol text, price float8, qty numeric(12,4), "
                 "n int, ok bool, day date, meta jsonb, id uuid, span interval)")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(dsn, f"INSERT INTO {rel} SELECT date_trunc('hour', now()) - g * interval '30 minutes', s, "
                 "CASE WHEN g % 97 = 0 THEN 'NaN'::float8 WHEN g % 89 = 0 THEN NULL ELSE g * 1.1 END, "
                 "g / 7.0, g, g % 2 = 0, (now() - g * interval '30 minutes')::date, "
                 "jsonb_build_object('g', g, 's', s), md5(g::text || s)::uuid, g * interval '1 second' "
                 "FROM generate_series(1, 960) g, unnest(ARRAY['AAPL', 'Müller \"q\"']) s")
    if compress:
        sql_run(dsn, f"ALTER TABLE {rel} SET (timescaledb.compress)")
        sql_run(dsn, f"SELECT compress_chunk(c) FROM (SELECT c FROM show_chunks('{rel}'::regclass, "
                     f"older_than => interval '10 days') c ORDER BY 1 LIMIT {compress}) x")
    return rel


def rows_text(dsn: str, relation: str, where: str = "true") -> list[str]:
    """Every row's full text, sorted (the whole content, NaN and NULLs included)."""
    return [r[0] for r in _rows_utc(dsn, f"SELECT x::text FROM {relation} x WHERE {where} ORDER BY 1")]


def _rows_utc(dsn: str, query: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(query).fetchall()


def before_expiring_end(dsn: str, schema: str, older_than: str) -> str:
    """A WHERE clause for the rows of the chunks older than `older_than` (whole chunks expire, not rows)."""
    [(end,)] = sql_run(dsn, "SELECT max(range_end) FROM timescaledb_information.chunks WHERE hypertable_schema = %s "
                            "AND range_end <= now() - %s::interval", (schema, older_than))
    return f"ts < '{end.isoformat()}'"


def chunks(dsn: str, schema: str) -> list[str]:
    return [r[0] for r in sql_run(dsn, "SELECT chunk_schema || '.' || chunk_name FROM timescaledb_information.chunks "
                                       "WHERE hypertable_schema = %s ORDER BY range_start", (schema,))]


def lifecycle(dsn: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle_resources.cli", *args, "--dsn", dsn],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=300)
