"""What TimescaleDB accepts, through the real `pulumi`: a chunk interval in integer microseconds on a timestamptz
column, a UUIDv7 time column, and drop_after equal to compress_after (a warning at preview, not a failure)."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionPolicy, CompressionSettings, Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
s = cfg.require("schema")
ticks = Hypertable("ticks", table=f"{s}.ticks", time_column="ts", chunk_interval=2592000000000)
CompressionSettings("ticks-compression", ticks, segment_by=["symbol"])
CompressionPolicy("ticks-compress", ticks, compress_after="7 days")
RetentionPolicy("ticks-retention", ticks, drop_after=cfg.require("drop_after"),
                allow_drop_before_compress=cfg.get_bool("allow") or False)
events = Hypertable("events", table=f"{s}.events", time_column="id", chunk_interval="1 day")
pulumi.export("ticks_chunk", ticks.chunk_interval)
pulumi.export("events_type", events.column_type)
"""


def test_accepts_e2e_micros_uuid_and_equal_windows(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, v int)')
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (id uuid NOT NULL, body text)')
    stack.program(PROGRAM)
    stack.init({"test:schema": schema, "test:drop_after": "1 week"})

    preview = stack.preview()
    assert preview.code == 0, preview
    assert "WARNING: ticks-retention: drop_after (1 week) is not longer than compress_after (7 days)" in preview.out
    stack.up()
    out = stack.outputs()
    assert out["ticks_chunk"] == 2592000000000 or out["ticks_chunk"] == "2592000000000", out
    assert out["events_type"] == "uuid"
    dims = sql_run(tsdb_dsn, "SELECT hypertable_name, coalesce(time_interval, justify_hours(integer_interval * "
                             "interval '1 microsecond'))::text FROM timescaledb_information.dimensions "
                             "WHERE hypertable_schema = %s ORDER BY 1", (schema,))
    assert dims == [("events", "1 day"), ("ticks", "30 days")]
    assert sql_run(tsdb_dsn, "SELECT proc_name, coalesce(config->>'drop_after', config->>'compress_after') "
                             "FROM timescaledb_information.jobs WHERE hypertable_schema = %s ORDER BY 1",
                   (schema,)) == [("policy_compression", "7 days"), ("policy_retention", "7 days")]
    assert stack.preview("--expect-no-changes").code == 0
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # The resource says it means it: no warning, and no change either.
    stack.set("test:allow", "true")
    quiet = stack.preview("--expect-no-changes")
    assert quiet.code == 0 and "WARNING: ticks-retention" not in quiet.out, quiet
    stack.destroy()
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(2,)]
