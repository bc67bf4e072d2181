"""Measure `lifecycle run` (DataLifecycleManager) on a large hypertable. Not part of `make test`.

    .venv/bin/python scripts/bench_runner.py [--rows 5000000] [--dsn DSN]

Without --dsn it starts the embedded TimescaleDB on a FILE data directory in a temporary directory (memory://
is 32-bit WASM memory: too small for millions of rows) on a free port, and stops it afterwards. It builds
bench.readings (1-day chunks over 60 days, one row every 60*86400/rows seconds), declares a retention policy
(drop_after 45 days) and a compression policy (compress_after 7 days), runs both through the runner, and
prints rows, chunks and seconds per step, and what a count(*) of the table (the old runner did two per run)
costs on the same table.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifecycle_resources.db import migrations  # noqa: E402
from lifecycle_resources.runner.manager import DataLifecycleManager  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(label: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202 - a tiny timing helper
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.1f} s", flush=True)
    return result, seconds


def old_function(conn: psycopg.Connection) -> None:
    """main 48ffa28's execute_lifecycle_policy (from 003), installed as bench.old_execute_lifecycle_policy."""
    text = (Path(__file__).resolve().parent.parent / "lifecycle_resources" / "db" / "migrations_sql"
            / "003_lifecycle_functions.sql").read_text()
    start = text.index("CREATE OR REPLACE FUNCTION lifecycle.execute_lifecycle_policy(")
    body = text[start:text.index("$fn$;", start) + len("$fn$;")]
    conn.execute(body.replace("lifecycle.execute_lifecycle_policy(", "bench.old_execute_lifecycle_policy(").encode())


def build(dsn: str, rows: int, tables: list[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            planned = migrations.plan(migrations.load(), migrations.applied(conn))
            migrations.apply(conn, planned.pending)
        conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
        conn.execute("CREATE SCHEMA bench")
        old_function(conn)
        step = 60 * 86400 / rows
        per_day = rows // 60
        for table in tables:
            ident = sql.Identifier("bench", table)
            conn.execute(sql.SQL("CREATE TABLE {} (ts timestamptz NOT NULL, device int NOT NULL, value float8)")
                         .format(ident))
            conn.execute("SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))",
                         (f"bench.{table}",))
            conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = 'device')")
                         .format(ident))
            for day in range(60):  # a day per statement: bounded memory in the embedded server
                conn.execute(sql.SQL("INSERT INTO {} SELECT now() - make_interval(days => %s) "
                                     "- make_interval(secs => g * %s), g %% 50, random() "
                                     "FROM generate_series(0, %s - 1) g").format(ident), (day, step, per_day))
            conn.execute(sql.SQL("ANALYZE {}").format(ident))
            for kind, window in (("retention", '{"drop_after": "45 days"}'),
                                 ("compression", '{"compress_after": "7 days"}')):
                conn.execute("SELECT lifecycle.register_lifecycle_policy(%s, %s, %s, %s::jsonb, NULL, "
                             "'bench', 'bench')",
                             (f"{table}-{kind}", f"bench.{table}", kind, window))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dsn", default=None, help="a TimescaleDB you own (default: a temporary embedded one)")
    parser.add_argument("--old", action="store_true", help="also run main 48ffa28's SQL function on a twin table")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{'given DSN' if args.dsn else 'embedded TimescaleDB (WASM) on a file data directory'}")
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        server = None
        dsn = args.dsn
        if dsn is None:
            from lifecycle_resources.db.embedded import server as server

            dsn = server.start(data=str(Path(tmp) / "data"), port=_free_port(), state_dir=Path(tmp) / "state").dsn
        try:
            tables = ["readings", "readings_old"] if args.old else ["readings"]
            _timed(f"load {args.rows} rows into each of {tables}", build, dsn, args.rows, tables)
            with psycopg.connect(dsn, autocommit=True) as conn:
                chunks = conn.execute("SELECT count(*) FROM show_chunks('bench.readings')").fetchone()[0]
                (_, count_seconds) = _timed("one count(*) of the table (the old runner ran two per run)",
                                            conn.execute, "SELECT count(*) FROM bench.readings")
            print(f"chunks: {chunks}")
            manager = DataLifecycleManager(dsn)
            for name in ("readings-retention", "readings-compression"):
                (done, _) = _timed(f"new: lifecycle run --policy {name}", manager.run, policy=name)
                print(f"  {done[0].status}: {done[0].describe()} (rows {done[0].rows_before} -> "
                      f"{done[0].rows_after}, estimated={done[0].rows_estimated})", flush=True)
            if args.old:
                for name in ("readings_old-retention", "readings_old-compression"):
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        (cur, _) = _timed(f"old: bench.old_execute_lifecycle_policy({name!r})", conn.execute,
                                          "SELECT status, chunks_affected, rows_before, rows_after, error "
                                          "FROM bench.old_execute_lifecycle_policy(%s)", (name,))
                        print(f"  {cur.fetchone()}", flush=True)
        finally:
            if server is not None:
                server.stop(state_dir=Path(tmp) / "state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
