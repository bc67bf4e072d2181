"""The runner: DataLifecycleManager and the `lifecycle run` / `lifecycle status` commands, for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from lifecycle_resources.db.connection import connect
from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.resources.policy import unregister
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import REPO, sql_run

pytestmark = pytest.mark.integration


def registered_table(dsn: str, schema: str) -> tuple[str, str]:
    """A hypertable with 20 days of rows and a retention policy registered through the lifecycle schema."""
    sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, v int)')
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (f'"{schema}".ticks',))
    sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', g '
                 "FROM generate_series(1, 480) g")
    name = f"{schema}-retention"
    sql_run(dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '10 days', NULL, 'proj/test', "
                 "%s, %s)", (f'"{schema}".ticks', schema, name))
    return name, schema


def lifecycle(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecycle_resources.cli", *args, "--dsn", dsn],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "NO_COLOR": "1"}, timeout=300)


def test_manager_run_named_policy_dry_then_real(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    manager = DataLifecycleManager(tsdb_dsn)
    assert [p.policy_name for p in manager.due(env)] == [name]

    dry = manager.run(policy=name, dry_run=True)[0]
    assert dry.status == "dry_run" and dry.chunks_affected > 0
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(480,)]

    seen = []
    real = manager.run(stack=env, progress=lambda i, n, p, done: seen.append((i, n, done is not None)))[0]
    assert real.status == "succeeded" and real.chunks_affected == dry.chunks_affected
    assert real.rows_before - real.rows_after == dry.rows_before - dry.rows_after
    assert seen == [(1, 1, False), (1, 1, True)]
    assert manager.due(env) == []
    stats = manager.statistics(f'"{schema}".ticks')
    assert stats[0]["chunks_dropped"] == real.chunks_affected and stats[0]["failed_executions"] == 0


def test_manager_unknown_policy_is_refused(tsdb_dsn: str, lifecycle_schema: None) -> None:
    with pytest.raises(LifecycleError, match="no lifecycle policy named 'nope'"):
        DataLifecycleManager(tsdb_dsn).run(policy="nope")


def test_cli_run_and_status(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    dry = lifecycle(tsdb_dsn, "run", "--stack", env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"[1/1] {name} (retention of {schema}.ticks)" in dry.stdout and "would be dropped" in dry.stdout
    assert "dry run: nothing changed" in dry.stdout
    real = lifecycle(tsdb_dsn, "run", "--stack", env)
    assert real.returncode == 0, real.stderr
    assert "chunks dropped" in real.stdout and "1 policies run" in real.stdout
    again = lifecycle(tsdb_dsn, "run", "--stack", env)
    assert again.returncode == 0 and "nothing due" in again.stdout
    status = lifecycle(tsdb_dsn, "status", "--stack", env)
    assert status.returncode == 0, status.stderr
    assert name in status.stdout and "succeeded" in status.stdout and "Statistics" in status.stdout


def test_cli_run_failure_exits_non_zero_and_is_recorded(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, 'retention', "
                      "'{\"drop_after\": \"not an interval\"}', NULL, 'proj', 'test', %s)",
            (name, f"{schema}.ticks", env))
    failed = lifecycle(tsdb_dsn, "run", "--policy", name)
    assert failed.returncode == 1
    assert "FAILED" in failed.stdout and "1 failed" in failed.stdout
    assert sql_run(tsdb_dsn, "SELECT status FROM lifecycle.lifecycle_executions WHERE policy_name = %s", (name,)) == [
        ("failed",)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(480,)]



def test_manager_refuses_a_removed_policy(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    with connect(tsdb_dsn) as conn, conn.transaction():
        unregister(conn, {"resource_name": name, "registration": {"project": "proj", "stack": "test"}})
    manager = DataLifecycleManager(tsdb_dsn)
    assert manager.due(env) == []
    with pytest.raises(LifecycleError, match=f"lifecycle policy '{name}' was removed from stack proj/test .*not run"):
        manager.run(policy=name)
    cli = lifecycle(tsdb_dsn, "run", "--policy", name)
    assert cli.returncode == 1 and "was removed from stack proj/test" in cli.stderr
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.lifecycle_executions WHERE policy_name = %s",
                   (name,)) == [(0,)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(480,)]
    status = lifecycle(tsdb_dsn, "status", "--stack", env)
    assert status.returncode == 0 and name in status.stdout and "removed" in status.stdout


def test_manager_compresses_chunk_by_chunk(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """Each chunk is compressed in a transaction of its own: a failure on the 4th keeps the 3 done before it."""
    rel = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, v int)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(tsdb_dsn, f"INSERT INTO {rel} SELECT now() - g * interval '1 hour', g FROM generate_series(1, 480) g")
    sql_run(tsdb_dsn, f"ALTER TABLE {rel} SET (timescaledb.compress)")
    name = f"{schema}-compression"
    sql_run(tsdb_dsn, "SELECT lifecycle.create_lifecycle_compression_policy(%s::regclass, '7 days', NULL, "
                      "'proj/test', %s, %s)", (rel, schema, name))
    old = [r[0] for r in sql_run(tsdb_dsn, "SELECT c::text FROM show_chunks(%s::regclass, older_than => "
                                           "interval '7 days') c", (rel,))]
    assert len(old) > 4
    sql_run(tsdb_dsn, "SELECT _timescaledb_functions.freeze_chunk(%s::regclass)", (old[3],))

    [run] = DataLifecycleManager(tsdb_dsn).run(policy=name)
    assert run.status == "failed" and "frozen" in (run.error or "")
    assert run.chunks_affected == 3
    compressed = {f"{s}.{c}" for s, c in sql_run(
        tsdb_dsn, "SELECT chunk_schema, chunk_name FROM timescaledb_information.chunks WHERE hypertable_schema = %s "
                  "AND is_compressed", (schema,))}
    assert compressed == set(old[:3])
    [(details,)] = sql_run(tsdb_dsn, "SELECT details FROM lifecycle.lifecycle_executions WHERE policy_name = %s",
                           (name,))
    assert details["chunks"] == old[:3] and details["planned_chunks"] == old[3:]
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {rel}") == [(480,)]


def test_manager_statistics_count_live_policies(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    manager = DataLifecycleManager(tsdb_dsn)
    assert manager.statistics(f'"{schema}".ticks')[0]["policies"] == 1
    with connect(tsdb_dsn) as conn, conn.transaction():
        unregister(conn, {"resource_name": name, "registration": {"project": "proj", "stack": "test"}})
    assert manager.statistics(f'"{schema}".ticks')[0]["policies"] == 0


def test_cli_statistics(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    assert lifecycle(tsdb_dsn, "run", "--policy", name).returncode == 0
    out = lifecycle(tsdb_dsn, "statistics", "--table", f"{schema}.ticks")
    assert out.returncode == 0, out.stderr
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith(f"{schema}.ticks")]
    assert re.split(r"\s{2,}", line)[6:9] == ["1", "1", "0"]  # policies, runs, failed
    assert "compressed chunks only" in out.stdout
    status = lifecycle(tsdb_dsn, "status")
    assert "lifecycle.get_lifecycle_statistics" in status.stdout and f"{schema}.ticks" in status.stdout
