"""Job fields that used to be invisible (next_start, fixed_schedule, timezone, initial_start), through the real
`pulumi` binary: a job paused by hand is drift, `up --refresh` resumes it, and declared fields converge."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
rp = RetentionPolicy("ticks-retention", ht, drop_after="30 days", paused=cfg.get_bool("paused"),
                     timezone=cfg.get("timezone"), initial_start=cfg.get("initial_start"))
pulumi.export("job", rp.job_id)
pulumi.export("paused", rp.paused)
"""


def job_of(dsn: str, schema: str) -> tuple:
    rows = sql_run(dsn, "SELECT j.job_id, coalesce(j.next_start = 'infinity', false), j.fixed_schedule, "
                        "b.timezone, j.initial_start FROM timescaledb_information.jobs j "
                        "JOIN _timescaledb_config.bgw_job b ON b.id = j.job_id "
                        "WHERE j.hypertable_schema = %s AND j.proc_name = 'policy_retention'", (schema,))
    assert len(rows) == 1, rows
    return rows[0]


def test_job_drift_e2e_paused_by_hand_is_drift_and_resumed(stack: PulumiStack, tsdb_dsn: str,
                                                           schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, v int)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks"})
    stack.up()
    job = stack.outputs()["job"]
    assert job_of(tsdb_dsn, schema)[1:] == (False, False, None, None)  # as add_retention_policy leaves it
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    sql_run(tsdb_dsn, "SELECT alter_job(%s, next_start => 'infinity')", (job,))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "paused" in drift.out, drift
    stack.up("--refresh")
    assert job_of(tsdb_dsn, schema)[:2] == (job, False)
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # Declared: paused, a time zone and a fixed start; the same job converges, and stays converged.
    stack.set("test:paused", "true")
    stack.set("test:timezone", "Europe/Paris")
    stack.set("test:initial_start", "2026-01-01 02:00:00+00")
    stack.up()
    found = job_of(tsdb_dsn, schema)
    assert found[:4] == (job, True, True, "Europe/Paris") and found[4].isoformat() == "2026-01-01T02:00:00+00:00"
    assert stack.outputs()["paused"] is True
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    sql_run(tsdb_dsn, "SELECT alter_job(%s, timezone => 'UTC')", (job,))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "Europe/Paris" in drift.out, drift
    stack.set("test:paused", "false")
    stack.up("--refresh")
    assert job_of(tsdb_dsn, schema)[:4] == (job, False, True, "Europe/Paris")
    assert stack.preview("--refresh", "--expect-no-changes").code == 0


def test_job_drift_e2e_bad_schedule_fields_refused_at_preview(stack: PulumiStack, tsdb_dsn: str,
                                                              schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, v int)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:timezone": "Mars/Olympus"})
    preview = stack.preview()
    assert preview.code != 0 and "timezone='Mars/Olympus'" in preview.out, preview
    stack.set("test:timezone", "UTC")
    stack.set("test:initial_start", "next tuesday-ish")
    preview = stack.preview()
    assert preview.code != 0 and "initial_start='next tuesday-ish'" in preview.out, preview
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                   (schema,)) == [(0,)]
