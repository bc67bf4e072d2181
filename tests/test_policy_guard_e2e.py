"""PolicyGuard through the real `pulumi`: declared before the policies it guards, it keeps every declared job
and removes, with the preview saying so, every kind of job added by hand on a managed table."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionPolicy, CompressionSettings, Hypertable, PolicyGuard, RetentionPolicy

cfg = pulumi.Config("test")
PolicyGuard("guard")  # declared first, on purpose
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
CompressionPolicy("ticks-compress", ht, compress_after="7 days")
RetentionPolicy("ticks-retention", ht, drop_after="30 days")
CompressionSettings("ticks-compression", ht, segment_by=["symbol"])  # after the policy that needs it
"""


def jobs_of(dsn: str, schema: str) -> list[str]:
    return sorted(r[0] for r in sql_run(dsn, "SELECT proc_name FROM timescaledb_information.jobs "
                                             "WHERE hypertable_schema = %s AND job_id >= 1000", (schema,)))


def test_policy_guard_e2e_declared_first_keeps_declared_jobs(stack: PulumiStack, tsdb_dsn: str,
                                                             schema: str) -> None:
    table = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"CREATE TABLE {table} (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)")
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks"})
    stack.up()
    assert jobs_of(tsdb_dsn, schema) == ["policy_compression", "policy_retention"]
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # Jobs nobody declares: a reorder policy, a continuous aggregate's refresh policy, a custom job.
    reorder = sql_run(tsdb_dsn, "SELECT add_reorder_policy(%s::regclass, 'ticks_ts_idx')", (table,))[0][0]
    sql_run(tsdb_dsn, f'CREATE MATERIALIZED VIEW "{schema}".hourly WITH (timescaledb.continuous) AS '
                      f"SELECT time_bucket('1 hour', ts) AS bucket, count(*) FROM {table} GROUP BY 1 WITH NO DATA")
    refresh = sql_run(tsdb_dsn, "SELECT add_continuous_aggregate_policy(%s::regclass, interval '3 days', "
                                "interval '1 hour', interval '1 hour')", (f'"{schema}".hourly',))[0][0]
    sql_run(tsdb_dsn, f'CREATE PROCEDURE "{schema}".touch(job_id int, config jsonb) LANGUAGE sql AS $$ SELECT 1 $$')
    custom = sql_run(tsdb_dsn, "SELECT add_job(%s::regproc, interval '1 hour', config => %s::jsonb)",
                     (f'"{schema}".touch', f'{{"hypertable": "{schema}.ticks"}}'))[0][0]

    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0, drift
    for job_id, kind in ((reorder, "ReorderPolicy"), (refresh, f"policy_refresh_continuous_aggregate:{schema}.hourly"),
                         (custom, f"custom:{schema}.touch")):
        assert f"DESTRUCTIVE: delete job {job_id} ({kind} on {schema}.ticks, declared by no resource)" in drift.out, drift
    stack.up("--refresh")
    assert jobs_of(tsdb_dsn, schema) == ["policy_compression", "policy_retention"]
    remaining = {r[0] for r in sql_run(tsdb_dsn, "SELECT job_id FROM timescaledb_information.jobs")}
    assert not {reorder, refresh, custom} & remaining
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
