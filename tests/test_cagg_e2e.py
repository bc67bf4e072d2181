"""ContinuousAggregate through the real `pulumi` binary: create (over a hypertable the same program makes, and
hierarchical), no-change preview, refresh policy in place keeping the job id, drift and convergence, a changed
query refused at preview then recreated when allowed, adoption, policies on the aggregate, delete keeping data."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_policy_e2e import make_table

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import (CompressionPolicy, ContinuousAggregate, Hypertable, PolicyGuard,
                                 RetentionPolicy)

cfg = pulumi.Config("test")
table = cfg.require("table")
ht = Hypertable("ticks", table=table, time_column="ts", chunk_interval="1 day")
RetentionPolicy("ticks-retention", ht, drop_after=cfg.get("raw_drop_after") or "30 days")
bucket = cfg.get("bucket") or "1 minute"
ohlcv = ContinuousAggregate(
    "ohlcv", view=cfg.require("view"),
    query=f"SELECT time_bucket('{bucket}', ts) AS bucket, symbol, first(price, ts) AS open, max(price) AS high, "
          f"min(price) AS low, last(price, ts) AS close, count(*) AS trades FROM {table} GROUP BY bucket, symbol",
    compress=True, adopt=cfg.get_bool("adopt") or False, allow_recreate=cfg.get_bool("allow_recreate") or False,
    refresh_policy={"start_offset": cfg.get("start_offset") or "2 days", "end_offset": "1 minute",
                    "schedule_interval": "5 minutes"})
CompressionPolicy("ohlcv-compress", ohlcv, compress_after="7 days")
RetentionPolicy("ohlcv-retention", ohlcv, drop_after="365 days")
if cfg.get_bool("hourly") is not False:
  ContinuousAggregate(
    "hourly", view=cfg.require("view") + "_1h",
    query=f"SELECT time_bucket('1 hour', bucket) AS bucket, symbol, max(high) AS high, min(low) AS low "
          f"FROM {cfg.require('view')} GROUP BY 1, 2",
    with_data=True, drop_on_delete=cfg.get_bool("hourly_drop") or False,
    refresh_policy={"start_offset": "3 days", "end_offset": "1 hour", "schedule_interval": "1 hour"})
PolicyGuard("guard")
pulumi.export("refresh_job", ohlcv.refresh_job_id)
pulumi.export("adopted", ohlcv.adopted)
pulumi.export("on_delete", ohlcv.on_delete)
"""


def jobs(dsn: str, schema: str) -> dict[tuple[str, str], tuple]:
    rows = sql_run(dsn, "SELECT hypertable_name, proc_name, job_id, schedule_interval::text, config "
                        "FROM timescaledb_information.jobs WHERE hypertable_schema = %s", (schema,))
    return {(r[0], r[1]): r[2:] for r in rows}


def count(dsn: str, view: str) -> int:
    return sql_run(dsn, f"SELECT count(*) FROM {view}")[0][0]


def caggs(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT view_name, compression_enabled FROM timescaledb_information.continuous_aggregates "
                        "WHERE view_schema = %s ORDER BY 1", (schema,))


def test_cagg_e2e_lifecycle(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    view = f"{schema}.ohlcv"
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:view": view})

    preview = stack.preview()
    assert preview.code == 0, preview
    assert "timescale:ContinuousAggregate: (create)" in preview.out, preview
    assert caggs(tsdb_dsn, schema) == []

    stack.up()
    first = stack.outputs()
    assert caggs(tsdb_dsn, schema) == [("ohlcv", True), ("ohlcv_1h", False)]
    found = jobs(tsdb_dsn, schema)
    assert found[("ohlcv", "policy_refresh_continuous_aggregate")][0] == first["refresh_job"]
    assert found[("ohlcv", "policy_compression")][2]["compress_after"] == "7 days"
    assert found[("ohlcv", "policy_retention")][2]["drop_after"] == "365 days"
    assert ("ohlcv_1h", "policy_refresh_continuous_aggregate") in found
    assert 0 < count(tsdb_dsn, view) and count(tsdb_dsn, f"{view}_1h") > 0
    assert "keeps" in first["on_delete"]
    assert stack.preview("--expect-no-changes").code == 0
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # The same bucket spelled otherwise: no change.
    stack.set("test:bucket", "60 seconds")
    assert stack.preview("--expect-no-changes").code == 0

    # Refresh policy in place, same job.
    stack.set("test:start_offset", "3 days")
    change = stack.preview()
    assert "(update)" in change.out and "replace" not in change.out, change
    assert f"alter job {first['refresh_job']} (refresh policy of {view}): start_offset 2 days -> 3 days" \
        in change.out, change
    stack.up()
    found = jobs(tsdb_dsn, schema)
    assert found[("ohlcv", "policy_refresh_continuous_aggregate")][0] == first["refresh_job"]
    assert found[("ohlcv", "policy_refresh_continuous_aggregate")][2]["start_offset"] == "3 days"

    # Drift: a refresh policy changed by hand shows and converges; the guard keeps the owned jobs.
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '2 hours')", (first["refresh_job"],))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "02:00:00" in drift.out, drift
    stack.up("--refresh")
    assert jobs(tsdb_dsn, schema)[("ohlcv", "policy_refresh_continuous_aggregate")][1] == "00:05:00"
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # A changed query: refused at preview with its cost, nothing changed.
    before = count(tsdb_dsn, view)
    stack.set("test:bucket", "5 minutes")
    refused = stack.preview()
    assert refused.code != 0, refused
    assert "recreate continuous aggregate" in refused.out and "materialized rows" in refused.out, refused
    assert "allow_recreate=True" in refused.out, refused
    assert count(tsdb_dsn, view) == before
    assert jobs(tsdb_dsn, schema)[("ohlcv", "policy_refresh_continuous_aggregate")][0] == first["refresh_job"]

    # Retention on the raw table reaching into the refresh window: refused at preview.
    stack.set("test:bucket", "1 minute")
    stack.set("test:raw_drop_after", "1 day")
    overlap = stack.preview()
    assert overlap.code != 0 and "between 3 days ago and 1 day ago" in overlap.out, overlap
    stack.set("test:raw_drop_after", "30 days")

    # Dropped by hand: gone, created again.
    sql_run(tsdb_dsn, f"DROP MATERIALIZED VIEW {view}_1h")
    gone = stack.preview("--refresh", "--expect-no-changes")
    assert gone.code != 0 and "timescale:ContinuousAggregate: (create)" in gone.out, gone
    stack.up("--refresh")
    assert caggs(tsdb_dsn, schema) == [("ohlcv", True), ("ohlcv_1h", False)]
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # Delete keeps the views and their rows; only the policies go.
    kept = count(tsdb_dsn, view)
    stack.destroy()
    assert caggs(tsdb_dsn, schema) == [("ohlcv", True), ("ohlcv_1h", False)]
    assert count(tsdb_dsn, view) == kept
    assert jobs(tsdb_dsn, schema) == {}
    assert count(tsdb_dsn, f"{schema}.ticks") == 4000


def test_cagg_e2e_recreate_and_adopt(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    view = f"{schema}.ohlcv"
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'), "
                      "migrate_data => true)", (f'"{schema}".ticks',))
    sql_run(tsdb_dsn, f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous) AS SELECT time_bucket("
                      f"'1 minute', ts) AS bucket, symbol, first(price, ts) AS open, max(price) AS high, min(price) "
                      f"AS low, last(price, ts) AS close, count(*) AS trades FROM {schema}.ticks GROUP BY bucket, "
                      "symbol WITH NO DATA")
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:view": view})
    preview = stack.preview()
    assert f"adopt continuous aggregate {view} (made outside Pulumi)" in preview.out, preview
    stack.up()
    out = stack.outputs()
    assert out["adopted"] is True

    stack.set("test:bucket", "5 minutes")
    stack.set("test:allow_recreate", "true")
    blocked = stack.preview()
    assert blocked.code != 0 and f"continuous aggregates ['{view}_1h'] read it" in blocked.out, blocked
    # The hierarchical aggregate dropped first (asked for explicitly), then the recreation goes through.
    stack.set("test:bucket", "1 minute")
    stack.set("test:hourly_drop", "true")
    stack.up()
    stack.set("test:hourly", "false")
    stack.up()
    assert caggs(tsdb_dsn, schema) == [("ohlcv", True)]
    stack.set("test:bucket", "5 minutes")
    planned = stack.preview()
    assert planned.code == 0 and "DESTRUCTIVE: recreate continuous aggregate" in planned.out, planned
    stack.up()
    rows = sql_run(tsdb_dsn, f"SELECT DISTINCT extract(minute FROM bucket)::int % 5 FROM {view}")
    assert rows == [(0,)]
    found = jobs(tsdb_dsn, schema)
    assert ("ohlcv", "policy_refresh_continuous_aggregate") in found
    assert stack.preview("--refresh", "--expect-no-changes").code != 0  # its policies were dropped with it
    stack.up("--refresh")
    found = jobs(tsdb_dsn, schema)
    assert {("ohlcv", "policy_compression"), ("ohlcv", "policy_retention")} <= set(found)
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
