"""ContinuousAggregate provider against a real TimescaleDB: create, no change, refresh policy in place, drift,
recreation refused then allowed, adoption, delete keeping the data; policies on an aggregate; retention overlap."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources import ContinuousAggregateProvider, RetentionPolicyProvider
from lifecycle_resources.resources.base import unfold
from tests.conftest import sql_run
from tests.test_policy_providers import checked, failures, hypertable, make

pytestmark = pytest.mark.integration

QUERY = ("SELECT time_bucket('1 minute', ts) AS bucket, symbol, first(price, ts) AS open, max(price) AS high, "
         "min(price) AS low, last(price, ts) AS close, sum(volume) AS volume FROM {table} GROUP BY bucket, symbol")
OWNER = {"project": "p", "stack": "s", "resource_type": "ContinuousAggregate", "resource_name": "ohlcv"}


def declared(schema: str, **extra: Any) -> dict[str, Any]:
    return {"view": f"{schema}.ohlcv", "query": QUERY.format(table=f'"{schema}".ticks'),
            "refresh_policy": {"start_offset": "2 days", "end_offset": "1 minute", "schedule_interval": "5 minutes"},
            "resource_name": "ohlcv", "owner": OWNER, **extra}


def cagg_row(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT materialized_only, compression_enabled "
                        "FROM timescaledb_information.continuous_aggregates "
                        "WHERE view_schema = %s AND view_name = 'ohlcv'", (schema,))


def refresh_jobs(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT job_id, schedule_interval::text, config ->> 'start_offset', config ->> 'end_offset' "
                        "FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' "
                        "AND hypertable_schema = %s ORDER BY job_id", (schema,))


def rows(dsn: str, schema: str) -> int:
    return sql_run(dsn, f'SELECT count(*) FROM "{schema}".ohlcv')[0][0]


def test_cagg_provider_lifecycle(tsdb_dsn: str, schema: str) -> None:
    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    news = checked(p, {}, declared(schema))
    planned = unfold(news)["planned_operations"]
    assert planned == [f"create continuous aggregate {schema}.ohlcv WITH NO DATA (materialized_only=true)",
                       f"add refresh policy on {schema}.ohlcv (start_offset 2 days, end_offset 1 minute, every "
                       "5 minutes)",
                       f"refresh {schema}.ohlcv from 2 days ago to 1 minute ago (first materialization, the "
                       "refresh policy's window)"], planned
    assert cagg_row(tsdb_dsn, schema) == []  # the preview's probe left nothing behind
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
                             "WHERE view_schema = %s", (schema,)) == [(0,)]
    created = p.create(news)
    outs = created.outs
    assert created.id == f"{schema}.ohlcv"
    assert unfold(outs)["last_operations"] == planned
    [(job, schedule, start, end)] = refresh_jobs(tsdb_dsn, schema)
    assert (schedule, start, end) == ("00:05:00", "2 days", "00:01:00")
    assert outs["refresh_policy"] == {"job_id": job, "start_offset": "2 days", "end_offset": "1 minute",
                                      "schedule_interval": "5 minutes"}
    assert 0 < rows(tsdb_dsn, schema) <= 2 * 24 * 60 * 4  # the policy's window only

    # The same query spelled otherwise, and a read straight after: no change.
    same = checked(p, outs, declared(schema, query=QUERY.format(table=f"{schema}.ticks").replace("'1 minute'",
                                                                                                 "'60 seconds'")))
    assert p.diff(created.id, outs, same).changes is False
    read = p.read(created.id, outs)
    assert p.diff(created.id, read.outs, checked(p, read.outs, declared(schema))).changes is False

    # Refresh policy in place: same job.
    moved = checked(p, outs, declared(schema, refresh_policy={"start_offset": "3 days", "end_offset": "1 minute",
                                                              "schedule_interval": "10 minutes"}))
    assert unfold(moved)["planned_operations"] == [
        f"alter job {job} (refresh policy of {schema}.ohlcv): start_offset 2 days -> 3 days, schedule_interval "
        "00:05:00 -> 10 minutes"]
    diff = p.diff(created.id, outs, moved)
    assert diff.changes is True and diff.replaces == []
    outs = p.update(created.id, outs, moved).outs
    assert refresh_jobs(tsdb_dsn, schema) == [(job, "00:10:00", "3 days", "00:01:00")]

    # Drift: altered by hand shows and converges.
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '1 hour')", (job,))
    drifted = p.read(created.id, outs)
    assert drifted.outs["refresh_policy"]["schedule_interval"] == "01:00:00"
    again = checked(p, drifted.outs, moved)
    assert p.diff(created.id, drifted.outs, again).changes is True
    outs = p.update(created.id, drifted.outs, again).outs
    assert refresh_jobs(tsdb_dsn, schema) == [(job, "00:10:00", "3 days", "00:01:00")]

    # Options in place.
    opts = checked(p, outs, {**moved, "materialized_only": False})
    assert unfold(opts)["planned_operations"] == [
        f"set timescaledb.materialized_only = false on {schema}.ohlcv (was true)"]
    outs = p.update(created.id, outs, opts).outs
    assert cagg_row(tsdb_dsn, schema) == [(False, False)]

    # A changed query: refused with its cost, nothing changed.
    before = rows(tsdb_dsn, schema)
    changed = declared(schema, query=QUERY.format(table=f'"{schema}".ticks').replace("'1 minute'", "'5 minutes'"),
                       materialized_only=False)
    [(field, reason)] = failures(p, changed)
    assert field == "query", reason
    assert "recreate continuous aggregate" in reason and f"drops its {before} materialized rows" in reason, reason
    assert "allow_recreate=True" in reason, reason
    assert rows(tsdb_dsn, schema) == before and refresh_jobs(tsdb_dsn, schema)[0][0] == job

    # ... and recreated when allowed.
    allowed = checked(p, outs, {**changed, "allow_recreate": True})
    assert unfold(allowed)["planned_operations"][0].startswith(f"DESTRUCTIVE: recreate continuous aggregate "
                                                               f"{schema}.ohlcv"), allowed
    assert unfold(allowed)["planned_operations"][-1] == (f"refresh {schema}.ohlcv over all the rows of its source "
                                                         "(first materialization)")
    outs = p.update(created.id, outs, allowed).outs
    assert rows(tsdb_dsn, schema) == 3000  # one 5-minute bucket per 10-minute tick
    assert len(refresh_jobs(tsdb_dsn, schema)) == 1

    # Delete keeps the view and its rows, removes the refresh policy.
    kept = rows(tsdb_dsn, schema)
    assert "keeps" in outs["on_delete"]
    p.delete(created.id, outs)
    assert rows(tsdb_dsn, schema) == kept and refresh_jobs(tsdb_dsn, schema) == []

    # Dropped by hand: gone.
    sql_run(tsdb_dsn, f'DROP MATERIALIZED VIEW "{schema}".ohlcv')
    assert p.read(created.id, outs).id is None


def test_cagg_provider_adopt_and_drop_on_delete(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f'CREATE MATERIALIZED VIEW "{schema}".ohlcv WITH (timescaledb.continuous) AS '
                      + QUERY.format(table=f'"{schema}".ticks') + " WITH NO DATA")
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    news = checked(p, {}, declared(schema, drop_on_delete=True))
    assert unfold(news)["planned_operations"][0] == (f"adopt continuous aggregate {schema}.ohlcv "
                                                     "(made outside Pulumi)"), news
    outs = p.create(news).outs
    assert outs["adopted"] is True and len(refresh_jobs(tsdb_dsn, schema)) == 1
    assert "drops" in outs["on_delete"]
    p.delete(f"{schema}.ohlcv", outs)
    assert cagg_row(tsdb_dsn, schema) == [] and refresh_jobs(tsdb_dsn, schema) == []
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {table}") == [(3000,)]


def test_cagg_provider_refusals_change_nothing(tsdb_dsn: str, schema: str) -> None:
    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    [(field, reason)] = failures(p, declared(schema, query=f'SELECT ts, max(price) FROM "{schema}".ticks GROUP BY ts'))
    assert field == "query" and "time bucket" in reason, reason
    [(field, reason)] = failures(p, declared(schema, refresh_policy={"start_offset": "2 minutes",
                                                                     "end_offset": "1 minute"}))
    assert field == "refresh_policy" and "too small" in reason, reason
    [(field, reason)] = failures(p, declared(schema, refresh_policy={"start_offset": "2 dayz", "end_offset": None}))
    assert field == "refresh_policy.start_offset", reason
    assert cagg_row(tsdb_dsn, schema) == [] and refresh_jobs(tsdb_dsn, schema) == []


def test_cagg_provider_retention_overlap_refused(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    # Declared in the same program: the program's drop_after is compared.
    [(field, reason)] = failures(p, declared(schema, retention_peers={table: "1 day"}))
    assert field == "refresh_policy.start_offset", reason
    assert ("drops chunks older than 1 day" in reason and "between 2 days ago and 1 day ago" in reason), reason
    # Retention side: a refresh policy already running over the table.
    p.create(checked(p, {}, declared(schema)))
    r = make(RetentionPolicyProvider, tsdb_dsn)
    [(field, reason)] = failures(r, {"hypertable": table, "drop_after": "1 day", "resource_name": "ret"})
    assert field == "drop_after" and f"continuous aggregate {schema}.ohlcv" in reason, reason
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                             "AND hypertable_schema = %s", (schema,)) == [(0,)]
    assert checked(r, {}, {"hypertable": table, "drop_after": "30 days", "resource_name": "ret"})


def test_cagg_lifecycle_runner_reads_an_aggregate(tsdb_dsn: str, schema: str, lifecycle_schema: None) -> None:
    """Migration 007: the runner's policies act on an aggregate (it failed with 'is not a hypertable')."""
    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    p.create(checked(p, {}, declared(schema, compress=True, with_data=True)))
    info = sql_run(tsdb_dsn, "SELECT ht_label, time_column, window_type::text, compression_enabled "
                             "FROM lifecycle._hypertable_info(%s::regclass)", (f"{schema}.ohlcv",))
    assert info == [(f"{schema}.ohlcv", "bucket", "interval", True)]
    chunks = sql_run(tsdb_dsn, "SELECT count(*) FROM show_chunks(%s::regclass, older_than => interval '1 day')",
                     (f"{schema}.ohlcv",))[0][0]
    assert chunks > 0
    dropped = sql_run(tsdb_dsn, "SELECT lifecycle._drop_chunks(%s::regclass, '1 day', 'interval'::regtype)",
                      (f"{schema}.ohlcv",))[0][0]
    assert len(dropped) == chunks


def test_cagg_provider_another_stacks_aggregate_needs_adopt(tsdb_dsn: str, schema: str) -> None:
    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    theirs = {**OWNER, "stack": "other"}
    p.create(checked(p, {}, declared(schema, owner=theirs)))
    [(field, reason)] = failures(p, declared(schema, refresh_policy=None))
    assert field == "adopt" and "of stack p/other" in reason, reason
    assert len(refresh_jobs(tsdb_dsn, schema)) == 1  # refused: their refresh policy stays
    taken = checked(p, {}, declared(schema, adopt=True))
    assert unfold(taken)["planned_operations"] == [
        f"take over continuous aggregate {schema}.ohlcv from ContinuousAggregate ohlcv of stack p/other"]
    outs = p.create(taken).outs
    assert len(refresh_jobs(tsdb_dsn, schema)) == 1, outs
    # Their delete now leaves the aggregate and its refresh policy alone.
    p.delete(f"{schema}.ohlcv", {**unfold(outs), "owner": theirs})
    assert len(refresh_jobs(tsdb_dsn, schema)) == 1 and cagg_row(tsdb_dsn, schema) == [(True, False)]


def test_cagg_policy_guard_keeps_owned_aggregate_jobs(tsdb_dsn: str, schema: str) -> None:
    from lifecycle_resources.resources.policy_guard import PolicyGuardProvider

    table = hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    p.create(checked(p, {}, declared(schema, compress=True)))
    sql_run(tsdb_dsn, f'CREATE MATERIALIZED VIEW "{schema}".by_hand WITH (timescaledb.continuous) AS '
                      f"SELECT time_bucket('1 hour', ts) AS b, max(price) FROM {table} GROUP BY b WITH NO DATA")
    hand = sql_run(tsdb_dsn, "SELECT add_continuous_aggregate_policy(%s::regclass, interval '2 days', "
                             "interval '1 hour', interval '1 hour')", (f"{schema}.by_hand",))[0][0]
    guard = make(PolicyGuardProvider, tsdb_dsn)
    planned = unfold(checked(guard, {}, {"policies": {table: []}, "resource_name": "guard"}))["planned_operations"]
    assert planned == [f"DESTRUCTIVE: delete job {hand} (policy_refresh_continuous_aggregate:{schema}.by_hand on "
                       f"{table}, declared by no resource)"], planned


def test_cagg_policies_take_the_aggregate_by_name(tsdb_dsn: str, schema: str) -> None:
    from lifecycle_resources import CompressionPolicyProvider

    hypertable(tsdb_dsn, schema)
    p = make(ContinuousAggregateProvider, tsdb_dsn)
    outs = p.create(checked(p, {}, declared(schema))).outs
    c = make(CompressionPolicyProvider, tsdb_dsn)
    news = {"hypertable": f"{schema}.ohlcv", "compress_after": "7 days", "resource_name": "ohlcv-compress"}
    [(field, reason)] = failures(c, news)
    assert field == "hypertable" and "compression is not enabled" in reason, reason
    p.update(f"{schema}.ohlcv", outs, checked(p, outs, declared(schema, compress=True)))
    job = c.create(checked(c, {}, news)).outs["job_id"]
    assert sql_run(tsdb_dsn, "SELECT hypertable_name, config ->> 'compress_after' FROM timescaledb_information.jobs "
                             "WHERE job_id = %s", (job,)) == [("ohlcv", "7 days")]
