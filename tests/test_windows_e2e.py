"""Windows compare as TimescaleDB applies them, through the real `pulumi` binary: a month is not 30 days for
a policy (now() - interval is calendar arithmetic), while a chunk interval is stored with a month as 30 days."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionPolicy, CompressionSettings, Hypertable

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval=cfg.require("chunk"))
CompressionSettings("ticks-compression", ht, segment_by=["symbol"])
cp = CompressionPolicy("ticks-compress", ht, compress_after=cfg.require("compress_after"))
pulumi.export("compress_after", cp.compress_after)
pulumi.export("job", cp.job_id)
"""


def window_of(dsn: str, schema: str) -> str:
    rows = sql_run(dsn, "SELECT (config->>'compress_after')::interval::text FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = %s AND proc_name = 'policy_compression'", (schema,))
    assert len(rows) == 1, rows
    return rows[0][0]


def test_windows_e2e_month_is_not_thirty_days(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, v int)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:chunk": "30 days", "test:compress_after": "30 days"})
    stack.up()
    job = stack.outputs()["job"]
    assert window_of(tsdb_dsn, schema) == "30 days"

    for spelling in ("1 month", "1 mon", "P1M"):
        stack.set("test:compress_after", spelling)
        change = stack.preview("--expect-no-changes")
        assert change.code != 0 and "CompressionPolicy: (update)" in change.out, (spelling, change)
    stack.set("test:compress_after", "1 month")
    stack.up()
    assert window_of(tsdb_dsn, schema) == "1 mon"
    out = stack.outputs()
    assert out["compress_after"] == "1 month" and out["job"] == job
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # Back to days, in days, weeks or hours: one window, one change.
    stack.set("test:compress_after", "4 weeks")
    stack.up()
    assert window_of(tsdb_dsn, schema) == "28 days"
    for spelling in ("28 days", "672 hours", "P4W"):
        stack.set("test:compress_after", spelling)
        assert stack.preview("--expect-no-changes").code == 0, spelling

    # A chunk interval is stored in microseconds with a month as 30 days: '1 month' is no change over '30 days'.
    stack.set("test:chunk", "1 month")
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
    stack.set("test:chunk", "31 days")
    assert stack.preview("--expect-no-changes").code != 0
