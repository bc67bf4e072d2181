"""ReorderPolicy through the real `pulumi`: create, no-change preview, in place keeping the job id, drift and
convergence, refusal at preview with the database unchanged, PolicyGuard, delete keeps the data."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_reorder import reorder_jobs

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import Hypertable, PolicyGuard, ReorderPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
rp = ReorderPolicy("ticks-reorder", ht, index=cfg.require("index"), schedule_interval=cfg.get("schedule"))
PolicyGuard("guard")
pulumi.export("job", rp.job_id)
"""


def test_reorder_e2e_lifecycle(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, v int)')
    sql_run(tsdb_dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', \'S\' || (g % 3), g '
                      "FROM generate_series(1, 300) g")
    sql_run(tsdb_dsn, f'CREATE INDEX ticks_symbol_ts ON "{schema}".ticks (symbol, ts DESC)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:index": "nope"})

    refused = stack.preview()
    assert refused.code != 0 and "index='nope'" in refused.out and "ticks_symbol_ts" in refused.out, refused
    assert stack.up(check=False).code != 0
    assert reorder_jobs(tsdb_dsn, schema) == []

    stack.set("test:index", "ticks_symbol_ts")
    stack.up()
    job = stack.outputs()["job"]
    assert [r[:2] for r in reorder_jobs(tsdb_dsn, schema)] == [(job, "ticks_symbol_ts")]
    assert stack.preview("--expect-no-changes").code == 0
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
    assert stack.refresh_rewrites() == set()  # what a read cannot see is carried over (the plan, the internals)

    stack.set("test:schedule", "6 hours")
    change = stack.preview()
    assert "ReorderPolicy: (update)" in change.out and "replace" not in change.out.split("Resources:")[-1], change
    stack.up()
    assert stack.outputs()["job"] == job
    assert reorder_jobs(tsdb_dsn, schema)[0][2] == "06:00:00"
    stack.set("test:schedule", "360 minutes")
    assert stack.preview("--expect-no-changes").code == 0

    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '3 days')", (job,))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "3 days" in drift.out, drift
    stack.up("--refresh")
    assert reorder_jobs(tsdb_dsn, schema)[0][2] == "06:00:00"
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    stack.destroy()
    assert reorder_jobs(tsdb_dsn, schema) == []
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(300,)]


ADOPTING = """
import pulumi
from lifecycle_resources import Hypertable, ReorderPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
rp = ReorderPolicy("ticks-reorder", ht, index="ticks_symbol_ts", schedule_interval="6 hours")
Hypertable("bare", table=cfg.require("bare"), time_column="ts", chunk_interval="1 day",
           create_default_indexes=False)
pulumi.export("job", rp.job_id)
"""


def test_reorder_e2e_adopts_a_hand_made_job_and_default_indexes_are_declared(
        stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    """A reorder job made by hand is adopted (shown at preview, same job id); create_default_indexes=False
    makes a hypertable without TimescaleDB's time index."""
    for table in ("ticks", "bare"):
        sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".{table} (ts timestamptz NOT NULL, symbol text NOT NULL, v int)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".ticks', by_range('ts', interval '1 day'))")
    sql_run(tsdb_dsn, f'CREATE INDEX ticks_symbol_ts ON "{schema}".ticks (symbol, ts DESC)')
    hand = sql_run(tsdb_dsn, f"SELECT add_reorder_policy('\"{schema}\".ticks', 'ticks_symbol_ts')")[0][0]
    stack.program(ADOPTING)
    stack.init({"test:table": f"{schema}.ticks", "test:bare": f"{schema}.bare"})

    preview = stack.preview()
    assert preview.code == 0 and "adopt" in preview.out and str(hand) in preview.out, preview
    stack.up()
    assert stack.outputs()["job"] == hand
    assert [r[:3] for r in reorder_jobs(tsdb_dsn, schema)] == [(hand, "ticks_symbol_ts", "06:00:00")]
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
    indexes = sql_run(tsdb_dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'bare'",
                      (schema,))
    assert indexes == [], indexes
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s AND hypertable_name = 'bare'", (schema,)) == [(1,)]
