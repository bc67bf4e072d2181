"""Job health from TimescaleDB's own scheduler: a policy job that really fails when the scheduler runs it (its
hypertable's integer_now function raises), seen by `lifecycle health`, sent to a real webhook receiver, and
warned about at refresh by the provider of the policy.

Native only: the embedded server has no background scheduler, and `CALL run_job` records nothing in job_stats
(TimescaleDB's job_run executes the job in the caller's session), so a job can fail there only in the runner,
which tests/test_health.py covers on both servers. Not tested here: a scheduler run turning the job healthy
again. With TimescaleDB 2.26.0 on PostgreSQL 15.20 every policy procedure the scheduler runs does its work and
then ends 'Failed' with "cannot drop portal "" while it is being set up" (tests/test_native_server.py shows
what `lifecycle status` makes of it), so no scheduler run ends in 'Success' on this server."""

from __future__ import annotations

import json
import time

import pytest

from lifecycle_resources import RetentionPolicyProvider
from lifecycle_resources.resources import health_warnings
from tests.conftest import native_cluster, sql_run
from tests.test_health import SECRET_PATH, Receiver, lifecycle

pytestmark = [pytest.mark.integration,
              pytest.mark.native_only("only a native server runs TimescaleDB's scheduler, which records job runs")]

BROKEN_CLOCK = ("CREATE OR REPLACE FUNCTION s.now_t() RETURNS bigint LANGUAGE plpgsql STABLE "
                "AS $$BEGIN RAISE EXCEPTION 'clock source unavailable'; END$$")
CLOCK = "CREATE FUNCTION s.now_t() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT 1000::bigint'"


def run_by_scheduler(dsn: str, job: int, status: str) -> int:
    """Wait until TimescaleDB's scheduler records a run of `job` ending in `status`; its failures in all."""
    deadline = time.monotonic() + 90
    while True:
        [stats] = sql_run(dsn, "SELECT last_run_status, total_failures "
                               "FROM timescaledb_information.job_stats WHERE job_id = %s", (job,))
        if stats[0] == status:
            return stats[1]
        assert time.monotonic() < deadline, f"TimescaleDB's scheduler did not run job {job} within 90 s: {stats}"
        time.sleep(0.5)


def test_health_scheduler_failing_job_is_reported_alerted_and_warned_at_refresh() -> None:
    with native_cluster(scheduler=True) as (_, dsn), Receiver() as receiver:
        sql_run(dsn, "CREATE SCHEMA s")
        sql_run(dsn, "CREATE TABLE s.ticks (t bigint NOT NULL, v int)")
        sql_run(dsn, "SELECT create_hypertable('s.ticks', by_range('t', 100))")
        sql_run(dsn, CLOCK)
        sql_run(dsn, "SELECT set_integer_now_func('s.ticks', 's.now_t')")
        sql_run(dsn, "INSERT INTO s.ticks SELECT g, g FROM generate_series(1, 999) g")
        job = sql_run(dsn, "SELECT add_retention_policy('s.ticks', drop_after => 500)")[0][0]
        # alter_job checks the config with the working clock; the scheduler's run, 3 s later, meets the broken one
        sql_run(dsn, "SELECT alter_job(%s, next_start => now() + interval '3 seconds')", (job,))
        sql_run(dsn, BROKEN_CLOCK)
        failures = run_by_scheduler(dsn, job, "Failed")

        out = lifecycle(dsn, "health", env={"LIFECYCLE_ALERT_WEBHOOK": receiver.url})
        assert out.returncode == 2, out.stdout + out.stderr
        [row] = [ln for ln in out.stdout.splitlines() if ln.startswith("job_failing")]
        assert f"job {job} (policy_retention)" in row and "s.ticks" in row
        assert f"TimescaleDB's last run failed ({failures} failures in all): clock source unavailable" in row
        [record] = [json.loads(ln) for ln in out.stderr.splitlines()]
        assert record["kind"] == "job_failing" and record["subject"] == f"job {job} (policy_retention)"
        [got] = receiver.received
        assert got["path"] == SECRET_PATH and "1 lifecycle problem" in got["json"]["text"]
        assert "clock source unavailable" in got["json"]["blocks"][1]["text"]["text"]
        assert "s3cr3t" not in out.stdout + out.stderr

        # The policy's provider at refresh warns about its own job, with no lifecycle schema in this database.
        provider = RetentionPolicyProvider()
        provider._config_dsn = dsn
        props = {"resource_name": "ticks-retention", "hypertable": "s.ticks",
                 "registration": {"project": "proj", "stack": "prod"}}
        [said] = health_warnings.warn_unhealthy(provider, str(job), props)
        assert said == (f"RetentionPolicy ticks-retention: job_failing: job {job} (policy_retention) on s.ticks: "
                        f"TimescaleDB's last run failed ({failures} failures in all): clock source unavailable")
        assert health_warnings.warn_unhealthy(provider, str(job + 1), props) == []
