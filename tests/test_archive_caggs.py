"""Continuous aggregates over archived ranges: an archiving retention inside an aggregate's refresh window is
refused at preview like TimescaleDB's own retention; the runner re-reads the refresh policies at run time (one
added by hand after `pulumi up`) before a chunk is exported and inside the drop's transaction; a restore into the
hypertable refreshes its aggregates over the range only when asked (--refresh-aggregates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.runner.archive.archiver import archive
from lifecycle_resources.runner.archive.store import open_store
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import chunks, lifecycle, make_ticks
from tests.conftest import sql_run
from tests.test_archive_retention import chunk_ranges, declare, expiring

pytestmark = pytest.mark.integration


def make_aggregate(dsn: str, schema: str, start_offset: str | None = None) -> str:
    """An hourly aggregate over <schema>.ticks; with `start_offset` ('none': unbounded) its refresh policy."""
    view = f'"{schema}".ticks_1h'
    sql_run(dsn, f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous) AS SELECT time_bucket('1 hour', ts) "
                 f'AS bucket, symbol, count(*) AS n FROM "{schema}".ticks GROUP BY bucket, symbol WITH NO DATA')
    if start_offset is not None:
        add_refresh(dsn, view, start_offset)
    return view


def add_refresh(dsn: str, view: str, start_offset: str) -> None:
    sql_run(dsn, "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => %s::interval, "
                 "end_offset => interval '1 hour', schedule_interval => interval '1 hour')",
            (view, None if start_offset == "none" else start_offset))


def test_provider_archive_retention_inside_refresh_window_refused_at_check(tsdb_dsn: str, lifecycle_schema: None,
                                                                           schema: str, tmp_path: Path) -> None:
    from lifecycle_resources import RetentionPolicyProvider

    make_ticks(tsdb_dsn, schema, compress=0)
    make_aggregate(tsdb_dsn, schema, "30 days")
    sql_run(tsdb_dsn, "INSERT INTO lifecycle.archive_stores (project, stack, store_name, url) VALUES "
                      "('proj', %s, 'cold', %s)", (schema, f"file://{tmp_path}/cold"))
    provider = RetentionPolicyProvider()
    provider._config_dsn = tsdb_dsn
    news = {"hypertable": f"{schema}.ticks", "drop_after": "10 days", "resource_name": "pol", "archive": "cold",
            "registration": {"project": "proj", "stack": schema, "environment": schema}}
    failures = [(f.property, f.reason) for f in provider.check({}, news).failures]
    assert [f for f, _ in failures] == ["drop_after"], failures
    assert (f"continuous aggregate {schema}.ticks_1h refreshes from 30 days ago: the aggregated buckets between 30 "
            "days ago and 10 days ago would be erased") in failures[0][1], failures
    assert provider.check({}, {**news, "drop_after": "30 days"}).failures == []
    assert expiring(tsdb_dsn, schema) != [] and sql_run(
        tsdb_dsn, "SELECT count(*) FROM lifecycle.policy_declarations WHERE stack = %s", (schema,)) == [(0,)]


@pytest.mark.parametrize("start_offset, refused", [("12 days", 2), ("none", 10)], ids=["12-days", "unbounded"])
def test_runner_archived_policy_refuses_chunks_a_refresh_policy_added_by_hand_still_refreshes(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, tmp_path: Path, start_offset: str, refused: int) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    ranges = chunk_ranges(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    make_aggregate(tsdb_dsn, schema, start_offset)  # after the declaration: the preview never saw it
    [(reach,)] = sql_run(tsdb_dsn, "SELECT now() - interval '12 days'")
    kept = old if start_offset == "none" else [c for c in old if ranges[c][1] > reach]
    assert len(kept) == refused

    [dry] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}", dry_run=True)
    assert dry.chunks_affected == len(old) - refused, dry  # the dry run lists only what would be dropped
    [run] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "failed" and run.chunks_affected == len(old) - refused, run
    assert f"the refresh policy (job " in (run.error or "") and f"continuous aggregate {schema}.ticks_1h" in run.error
    assert expiring(tsdb_dsn, schema) == kept
    refused_rows = [a for a in (run.details or {})["archived"] if a["action"] == "refused"]
    assert sorted(a["chunk"] for a in refused_rows) == kept
    archived = sql_run(tsdb_dsn, "SELECT chunk_name FROM lifecycle.archives WHERE hypertable = %s",
                       (f"{schema}.ticks",))
    assert not set(kept) & {c for (c,) in archived}  # not even exported


def test_archiver_rechecks_refresh_policies_inside_the_drop(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle_resources.runner.archive import refresh_guard

    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    make_aggregate(tsdb_dsn, schema, "none")
    # The planning read sees no refresh policy, as if it were added by hand after it (the embedded server takes
    # one client at a time, so the test cannot add it from a second connection mid-run); the drop reads again.
    real, reads = refresh_guard.refreshes_over, []

    def blind_first(conn: Any, table: Any, integer: bool) -> list[refresh_guard.Refresh]:
        reads.append(table)
        return [] if len(reads) == 1 else real(conn, table, integer)

    monkeypatch.setattr(refresh_guard, "refreshes_over", blind_first)
    results = archive(tsdb_dsn, f"{schema}.ticks", "10 days", open_store(f"file://{tmp_path}/cold"))
    assert len(results) == len(old) and all(r.error for r in results), results
    assert all("seen at the drop: its object stays verified" in (r.error or "") for r in results), results[0]
    assert expiring(tsdb_dsn, schema) == old
    assert {s for (s,) in sql_run(tsdb_dsn, "SELECT state FROM lifecycle.archives WHERE hypertable = %s",
                                  (f"{schema}.ticks",))} == {"failed"}
    monkeypatch.undo()
    assert proc_fails(tsdb_dsn, schema, tmp_path)


def proc_fails(dsn: str, schema: str, tmp_path: Path) -> bool:
    """`lifecycle archive run` refuses the same chunks at planning and exits 1."""
    proc = lifecycle(dsn, "archive", "run", "--table", f"{schema}.ticks", "--older-than", "10 days", "--to",
                     f"file://{tmp_path}/cold")
    return proc.returncode == 1 and "refreshes all the way back (start_offset unbounded)" in proc.stdout


def test_runner_plain_retention_refuses_to_drop_inside_a_refresh_window(tsdb_dsn: str, lifecycle_schema: None,
                                                                        schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=None)
    make_aggregate(tsdb_dsn, schema, "12 days")
    [run] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "failed" and "nothing dropped" in (run.error or "") and run.chunks_affected == 0, run
    assert expiring(tsdb_dsn, schema) == old


def test_sql_execute_refuses_a_drop_inside_a_refresh_window(tsdb_dsn: str, lifecycle_schema: None,
                                                            schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=None)
    view = make_aggregate(tsdb_dsn, schema, "12 days")
    [(status, error)] = sql_run(tsdb_dsn, "SELECT status, error FROM lifecycle.execute_lifecycle_policy(%s, false, "
                                          "%s)", (policy, f"proj/{schema}"))
    assert status == "failed" and f"continuous aggregate {schema}.ticks_1h (start_offset 12 days)" in error, error
    assert expiring(tsdb_dsn, schema) == old
    sql_run(tsdb_dsn, "SELECT alter_job(job_id, config => jsonb_set(config, '{start_offset}', '\"9 days\"')) "
                      "FROM timescaledb_information.jobs WHERE hypertable_name = 'ticks_1h' AND hypertable_schema = %s",
            (schema,))
    [(status, error)] = sql_run(tsdb_dsn, "SELECT status, error FROM lifecycle.execute_lifecycle_policy(%s, false, "
                                          "%s)", (policy, f"proj/{schema}"))
    assert (status, error) == ("succeeded", None) and expiring(tsdb_dsn, schema) == [], view


def test_runner_plain_retention_on_an_aggregate_guarded_by_the_aggregate_reading_it(tsdb_dsn: str,
                                                                                   lifecycle_schema: None,
                                                                                   schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    view = make_aggregate(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
    [(old,)] = sql_run(tsdb_dsn, f"SELECT count(*) FROM show_chunks('{view}'::regclass, older_than => "
                                 "interval '10 days')")
    policy = declare(tsdb_dsn, schema, store_url=None, table="ticks_1h")
    # An aggregate reading that aggregate, refreshing all the way back: the first one's chunks are kept.
    child = f'"{schema}".ticks_1d'
    sql_run(tsdb_dsn, f"CREATE MATERIALIZED VIEW {child} WITH (timescaledb.continuous) AS SELECT "
                      f"time_bucket('1 day', bucket) AS day, symbol, sum(n) AS n FROM {view} GROUP BY day, symbol "
                      "WITH NO DATA")
    add_refresh(tsdb_dsn, child, "none")
    manager = DataLifecycleManager(tsdb_dsn)
    [refused] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert refused.status == "failed" and f"continuous aggregate {schema}.ticks_1d" in (refused.error or ""), refused
    sql_run(tsdb_dsn, "SELECT remove_continuous_aggregate_policy(%s::regclass)", (child,))
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")  # a retention on an aggregate still runs
    assert (run.status, run.error, run.chunks_affected) == ("succeeded", None, old) and old > 0, run


def test_restore_into_hypertable_refreshes_aggregates_only_when_asked(tsdb_dsn: str, lifecycle_schema: None,
                                                                      schema: str, tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=0)
    table = f"{schema}.ticks"
    old = expiring(tsdb_dsn, schema)
    start, end = chunk_ranges(tsdb_dsn, schema)[old[3]]
    [(raw_buckets,)] = sql_run(tsdb_dsn, f"SELECT count(DISTINCT (time_bucket('1 hour', ts), symbol)) FROM {rel} "
                                         "WHERE ts >= %s AND ts < %s", (start, end))
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    manager = DataLifecycleManager(tsdb_dsn)
    manager.run(policy=policy, stack=f"proj/{schema}")
    # An aggregate created after the drop (or recreated) has no buckets for the archived range.
    view = make_aggregate(tsdb_dsn, schema)

    def buckets() -> int:
        return sql_run(tsdb_dsn, f"SELECT count(*) FROM {view} WHERE bucket >= %s AND bucket < %s",
                       (start, end))[0][0]

    with pytest.raises(LifecycleError, match="--refresh-aggregates .* only with --into"):
        manager.restore(table, start, end, refresh_aggregates=True)
    hold = manager.hold(table, start, end)
    manager.restore(table, start, end, into=table)
    assert buckets() == 0  # restored rows alone do not refresh the aggregate
    cli = lifecycle(tsdb_dsn, "restore", "--table", table, "--from", start.isoformat(), "--to", end.isoformat(),
                    "--into", table, "--refresh-aggregates")
    assert cli.returncode == 0 and f"continuous aggregate {schema}.ticks_1h refreshed over" in cli.stdout, cli
    assert "0 rows restored from 1 archived objects" in cli.stdout, cli.stdout
    assert buckets() == raw_buckets > 0
    manager.release_hold(hold.hold_id)


def test_runner_archived_policy_integer_time_refuses_chunks_an_integer_refresh_policy_refreshes(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, tmp_path: Path) -> None:
    from tests.test_archive_integer_retention import declare_int
    from tests.test_archive_integer_time import BASE, NOW, make_int_ticks

    rel = make_int_ticks(tsdb_dsn, schema)
    before = chunks(tsdb_dsn, schema)
    policy = declare_int(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")  # drops what ends by NOW - 5000
    view = f'"{schema}".int_100'
    sql_run(tsdb_dsn, f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous) AS SELECT time_bucket(100, t) "
                      f"AS b, count(*) AS n FROM {rel} GROUP BY b WITH NO DATA")
    sql_run(tsdb_dsn, "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => 8000, end_offset => 100, "
                      "schedule_interval => interval '1 hour')", (view,))
    [run] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    # The refresh reaches back to integer_now - 8000 = BASE + 2000: the chunks ending after it stay.
    assert NOW - 8000 == BASE + 2000
    assert run.status == "failed" and run.chunks_affected == 2, run
    assert f"refreshes from 8000 ago ({BASE + 2000})" in (run.error or ""), run.error
    assert chunks(tsdb_dsn, schema) == before[2:]
