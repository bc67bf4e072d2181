"""The runner: DataLifecycleManager and the `lifecycle run` / `lifecycle status` commands, for real."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lifecycle_resources.errors import LifecycleError
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
    assert name in status.stdout and "succeeded" in status.stdout and "Compression" in status.stdout


def test_cli_run_failure_exits_non_zero_and_is_recorded(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "INSERT INTO lifecycle.lifecycle_policies (registered_at, policy_name, hypertable, kind, "
                      "parameters, environment) VALUES (clock_timestamp(), %s, %s, 'retention', "
                      "'{\"drop_after\": \"not an interval\"}', %s)", (name, f"{schema}.ticks", env))
    failed = lifecycle(tsdb_dsn, "run", "--policy", name)
    assert failed.returncode == 1
    assert "FAILED" in failed.stdout and "1 failed" in failed.stdout
    assert sql_run(tsdb_dsn, "SELECT status FROM lifecycle.lifecycle_executions WHERE policy_name = %s", (name,)) == [
        ("failed",)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(480,)]

