"""What only a native server makes meaningful, below the Pulumi engine: its own state (password, port,
restart), password authentication, and TimescaleDB's background scheduler as `lifecycle status` reports it.
Runs only when the server under test is native (conftest deselects test_native_* modules otherwise)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import REPO, native_cluster, sql_run

pytestmark = pytest.mark.integration
LIFECYCLE = str(REPO / ".venv" / "bin" / "lifecycle")


def lifecycle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIFECYCLE, *args], capture_output=True, text=True, timeout=120)


def test_native_server_password_private_and_restart_keeps_dsn() -> None:
    from lifecycle_resources.db import native

    with native_cluster() as (state, dsn):
        secret = state / native.PASSWORD_FILE
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        password = secret.read_text().strip()
        assert len(password) >= 24 and conninfo_to_dict(dsn)["password"] == password
        assert password not in (state / native.STATE_FILE).read_text()
        assert str(json.loads((state / native.STATE_FILE).read_text())["port"]) == conninfo_to_dict(dsn)["port"]
        sql_run(dsn, "CREATE TABLE kept (x int)")

        stopped = lifecycle("db", "--state-dir", str(state), "stop", "--server", "native")
        assert stopped.returncode == 0 and "stopped the native TimescaleDB" in stopped.stderr, stopped
        assert native.current(state) is None
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=3).close()

        started = lifecycle("db", "--state-dir", str(state), "start", "--server", "native")
        assert started.returncode == 0, started
        assert started.stdout.strip() == dsn  # same port, same password: clients keep their DSN
        assert sql_run(dsn, "SELECT to_regclass('kept') IS NOT NULL, current_setting('timescaledb.license')") \
            == [(True, "timescale")]
        again = lifecycle("db", "--state-dir", str(state), "start", "--server", "native")
        assert again.returncode == 1 and "already running" in again.stderr, again


def test_native_wrong_password_refused_clearly(tsdb_dsn: str) -> None:
    wrong = make_conninfo(tsdb_dsn, password="not-the-password-42")
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "postgres"'):
        psycopg.connect(wrong, connect_timeout=5).close()
    refused = lifecycle("status", "--dsn", wrong)
    assert refused.returncode == 1, refused
    assert 'password authentication failed for user "postgres"' in refused.stderr, refused
    assert "not-the-password-42" not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr


def test_native_scheduler_run_shows_in_status() -> None:
    with native_cluster(scheduler=True) as (_, dsn):
        scheduler_run_shows_in_status(dsn, "sched")


def scheduler_run_shows_in_status(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE SCHEMA "{schema}"')
    table = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"CREATE TABLE {table} (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (table,))
    sql_run(tsdb_dsn, f"INSERT INTO {table} SELECT now() - g * interval '1 hour', 'S' || (g % 3), g "
                      "FROM generate_series(1, 24 * 10) g")
    sql_run(tsdb_dsn, f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')")
    job = sql_run(tsdb_dsn, "SELECT add_compression_policy(%s::regclass, interval '2 days')", (table,))[0][0]
    # Left to TimescaleDB's own scheduler: no run_job, no `lifecycle run`.
    sql_run(tsdb_dsn, "SELECT alter_job(%s, next_start => now())", (job,))
    deadline = time.monotonic() + 90
    while True:
        stats = sql_run(tsdb_dsn, "SELECT last_run_status, total_runs, "
                                  "to_char(last_run_started_at, 'YYYY-MM-DD HH24:MI:SS TZ') "
                                  "FROM timescaledb_information.job_stats WHERE job_id = %s", (job,))
        if stats and stats[0][0] is not None and stats[0][1] >= 1:
            break
        assert time.monotonic() < deadline, f"TimescaleDB's scheduler did not run job {job} within 90 s: {stats}"
        time.sleep(0.5)
    status, runs, started = stats[0]
    # Seen with 2.26.0 on PostgreSQL 15.20: the scheduler's run compresses the chunks, then the job ends in
    # 'Failed' with "cannot drop portal "" while it is being set up" (CALL run_job from a client succeeds).
    # Whatever TimescaleDB recorded is what `lifecycle status` must show.
    errors = sql_run(tsdb_dsn, "SELECT err_message FROM timescaledb_information.job_errors WHERE job_id = %s "
                               "ORDER BY finish_time DESC LIMIT 1", (job,))
    compressed = sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.chunks WHERE "
                                   "hypertable_schema = %s AND is_compressed", (schema,))[0][0]
    assert compressed > 0

    shown = lifecycle("status", "--dsn", tsdb_dsn)
    assert shown.returncode == 0, shown
    row = next(line for line in shown.stdout.splitlines() if f"{schema}.ticks" in line and f" {job} " in line)
    failures = 0 if status == "Success" else 1  # runs, failures as job_stats recorded them
    assert started in row and re.search(rf" {status}\s+{runs}\s+{failures}\b", row), (row, stats)
    if errors:
        assert errors[0][0] in row, (row, errors)
