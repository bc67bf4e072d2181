"""ArchiveStore and RetentionPolicy(archive=...) through the real `pulumi`: no TimescaleDB retention job while
archiving (toggled in place both ways, the preview and up saying what happens to the job), then `lifecycle run`
archives, verifies and drops, and the rows restore."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.archive_helpers import before_expiring_end, lifecycle, make_ticks, rows_text
from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import ArchiveStore, Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
store = ArchiveStore("cold", url=cfg.require("store_url"), endpoint_url=cfg.get("endpoint_url"),
                     access_key_id=cfg.get_secret("key_id"), secret_access_key=cfg.get_secret("secret_key"))
rp = RetentionPolicy(cfg.require("name"), ht, drop_after="10 days",
                     archive=store if cfg.get_bool("archive") else None)
pulumi.export("retention_job", rp.job_id)
pulumi.export("done", rp.last_operations)
pulumi.export("store_done", store.last_operations)
"""


def retention_jobs(dsn: str, schema: str) -> list[int]:
    return [r[0] for r in sql_run(dsn, "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = "
                                       "'policy_retention' AND hypertable_schema = %s", (schema,))]


def declared_store(dsn: str, name: str) -> list[tuple]:
    return sql_run(dsn, "SELECT parameters ->> 'archive_store', enabled, job_id FROM lifecycle.policy_declarations "
                        "WHERE policy_name = %s", (name,))


def test_archive_e2e_toggle_in_place_then_run_archives_drops_and_restores(
        stack: PulumiStack, tsdb_dsn: str, lifecycle_schema: None, schema: str, tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=1)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "10 days"))
    name, table = f"{schema}-retention", f"{schema}.ticks"
    stack.program(PROGRAM)
    stack.init({"test:table": table, "test:name": name, "test:store_url": f"file://{tmp_path}/cold",
                "test:archive": "true"})

    created = stack.preview()
    assert created.code == 0, created
    runner_drops = f"chunks of {table} older than 10 days are dropped only by `lifecycle run`, after archiving to cold"
    assert f"no TimescaleDB retention job: {runner_drops}" in created.out, created
    assert f"register archive store cold (file://{tmp_path}/cold) in lifecycle.archive_stores" in created.out
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == []
    assert declared_store(tsdb_dsn, name) == [("cold", True, None)]
    out = stack.outputs()
    assert out.get("retention_job") is None and out["done"][0] == f"no TimescaleDB retention job: {runner_drops}"
    assert stack.preview("--expect-no-changes").code == 0
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # Off: in place, TimescaleDB's job comes back, and the preview says what that means.
    stack.set("test:archive", "false")
    off = stack.preview()
    said_off = (f"add TimescaleDB retention job on {table} (drop_after 10 days): chunks are then dropped by "
                "TimescaleDB without archiving (no longer archived to cold by `lifecycle run`)")
    assert "(update)" in off.out and "replace" not in off.out and said_off in off.out, off
    stack.up()
    [job] = retention_jobs(tsdb_dsn, schema)
    assert stack.outputs()["done"][0] == said_off and stack.outputs()["retention_job"] == job
    assert declared_store(tsdb_dsn, name) == [(None, True, job)]

    # On again: the job goes.
    stack.set("test:archive", "true")
    on = stack.preview()
    said_on = (f"remove TimescaleDB retention job {job}: chunks of {table} older than 10 days are then dropped "
               "only by `lifecycle run`, after archiving to cold")
    assert "(update)" in on.out and "replace" not in on.out and said_on in on.out, on
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == [] and stack.outputs()["done"][0] == said_on
    assert stack.preview("--expect-no-changes").code == 0

    # A job added by hand while archiving is drift: refresh shows it, up removes it.
    sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '3 days')", (rel,))
    assert stack.preview("--refresh", "--expect-no-changes").code != 0
    stack.up("--refresh")
    assert retention_jobs(tsdb_dsn, schema) == []

    run = lifecycle(tsdb_dsn, "run", "--policy", name, "--stack", "lifecycle-test/test")
    assert run.returncode == 0, run
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM show_chunks(%s::regclass, older_than => interval '10 days')",
                   (rel,)) == [(0,)]
    listed = lifecycle(tsdb_dsn, "archive", "list", "--table", table)
    assert listed.returncode == 0 and "dropped" in listed.stdout, listed
    assert lifecycle(tsdb_dsn, "archive", "verify", "--table", table).returncode == 0
    restored = lifecycle(tsdb_dsn, "restore", "--table", table, "--from", "2000-01-01", "--to", "2100-01-01",
                         "--into", f"{schema}.replay")
    assert restored.returncode == 0, restored
    assert rows_text(tsdb_dsn, f'"{schema}".replay') == original

    stack.destroy()
    assert retention_jobs(tsdb_dsn, schema) == []
    assert declared_store(tsdb_dsn, name) == [("cold", False, None)]
    assert sql_run(tsdb_dsn, "SELECT enabled FROM lifecycle.archive_stores WHERE project = 'lifecycle-test' AND "
                             "stack = 'test' AND store_name = 'cold'") == [(False,)]
    assert sql_run(tsdb_dsn, f"SELECT count(*) > 0 FROM {rel}") == [(True,)]  # the recent rows stay


def test_archive_e2e_s3_store_credentials_stay_secret_and_unreachable_is_warned(
        stack: PulumiStack, tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    marker = f"pw_{uuid.uuid4().hex}"
    name = f"{schema}-retention"
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:name": name, "test:store_url": "s3://ticks-archive/prod",
                "test:endpoint_url": "http://127.0.0.1:9", "test:archive": "true"})
    stack.run("config", "set", "--secret", "test:key_id", f"AKIA{marker}")
    stack.run("config", "set", "--secret", "test:secret_key", marker)
    preview = stack.preview()
    assert preview.code == 0, preview
    assert "WARNING: archive store cold (s3://ticks-archive/prod via http://127.0.0.1:9) is not reachable now" \
        in preview.out, preview
    up = stack.up()
    assert retention_jobs(tsdb_dsn, schema) == []
    state = stack.state()
    for text in (preview.out, up.out, state):
        assert marker not in text
    rows = sql_run(tsdb_dsn, "SELECT s::text FROM lifecycle.archive_stores s WHERE project = 'lifecycle-test'")
    assert rows and all(marker not in r[0] for r in rows)
    # The runner has no credentials of its own here and cannot reach the store: nothing is dropped.
    before = sql_run(tsdb_dsn, "SELECT count(*) FROM show_chunks(%s::regclass)", (f'"{schema}".ticks',))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    run = lifecycle(tsdb_dsn, "run", "--policy", name, "--stack", "lifecycle-test/test", env=env)
    assert run.returncode != 0 and marker not in run.stdout + run.stderr, run
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM show_chunks(%s::regclass)", (f'"{schema}".ticks',)) == before
    stack.destroy()
