"""RetentionPolicy(archive=...) on an integer-time hypertable through the real `pulumi`: declared with an integer
window, no TimescaleDB retention job (toggled off and on in place), `lifecycle run` archives and drops the chunks
older than integer_now - window, the rows restore; an interval window is refused at preview."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.archive_helpers import chunks, lifecycle, rows_text
from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_archive_integer_time import BASE, NOW, make_int_ticks

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import ArchiveStore, Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="t", chunk_interval=1000,
                integer_now=cfg.require("now_fn"))
store = ArchiveStore("cold", url=cfg.require("store_url"))
window = cfg.require("drop_after")
rp = RetentionPolicy(cfg.require("name"), ht, drop_after=int(window) if window.isdigit() else window,
                     archive=store if cfg.get_bool("archive") else None)
pulumi.export("retention_job", rp.job_id)
pulumi.export("done", rp.last_operations)
"""


def retention_jobs(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT job_id, config ->> 'drop_after' FROM timescaledb_information.jobs WHERE proc_name = "
                        "'policy_retention' AND hypertable_schema = %s", (schema,))


def test_archive_e2e_integer_time_declared_run_and_toggled(stack: PulumiStack, tsdb_dsn: str, lifecycle_schema: None,
                                                           schema: str, tmp_path: Path) -> None:
    rel = make_int_ticks(tsdb_dsn, schema)
    original = rows_text(tsdb_dsn, rel, f"t < {NOW - 5000}")
    before = chunks(tsdb_dsn, schema)
    name, table = f"{schema}-retention", f"{schema}.int_ticks"
    stack.program(PROGRAM)
    stack.init({"test:table": table, "test:name": name, "test:now_fn": f"{schema}.ns_now",
                "test:store_url": f"file://{tmp_path}/cold", "test:drop_after": "5000", "test:archive": "true"})

    created = stack.preview()
    runner_drops = f"chunks of {table} older than 5000 (counted back from integer_now)"
    said_new = (f"no TimescaleDB retention job: {runner_drops} are dropped only by `lifecycle run`, after archiving "
                "to cold")
    # The preview prints the first 150 characters of a planned operation; outputs hold it whole.
    assert created.code == 0 and said_new[:140] in created.out, created
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == [] and stack.outputs()["done"][0] == said_new
    assert sql_run(tsdb_dsn, "SELECT parameters ->> 'drop_after', parameters ->> 'archive_store' FROM "
                             "lifecycle.policy_declarations WHERE policy_name = %s AND enabled", (name,)) == [
        ("5000", "cold")]
    assert stack.preview("--expect-no-changes").code == 0

    # Off then on, in place: TimescaleDB's integer job comes back, then goes again.
    stack.set("test:archive", "false")
    off = stack.preview()
    said_off = (f"add TimescaleDB retention job on {table} (drop_after 5000): chunks are then dropped by TimescaleDB "
                "without archiving (no longer archived to cold by `lifecycle run`)")
    assert "(update)" in off.out and "replace" not in off.out and said_off[:140] in off.out, off
    stack.up()
    [(job, window)] = retention_jobs(tsdb_dsn, schema)
    assert window == "5000" and stack.outputs()["done"][0] == said_off and stack.outputs()["retention_job"] == job
    stack.set("test:archive", "true")
    on = stack.preview()
    said_on = (f"remove TimescaleDB retention job {job}: {runner_drops} are then dropped only by `lifecycle run`, "
               "after archiving to cold")
    assert "(update)" in on.out and "replace" not in on.out and said_on[:140] in on.out, on
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == [] and stack.outputs()["done"][0] == said_on
    assert stack.preview("--expect-no-changes").code == 0

    run = lifecycle(tsdb_dsn, "run", "--policy", name, "--stack", "lifecycle-test/test")
    assert run.returncode == 0 and "5 chunks archived to cold, verified and dropped" in run.stdout, run
    assert chunks(tsdb_dsn, schema) == before[5:]
    restored = lifecycle(tsdb_dsn, "restore", "--table", table, "--from", str(BASE), "--to", str(NOW),
                         "--into", f"{schema}.replay")
    assert restored.returncode == 0, restored
    assert rows_text(tsdb_dsn, f'"{schema}".replay') == original

    # An interval on integer time: refused at preview, nothing changed.
    stack.set("test:drop_after", "10 days")
    refused = stack.preview()
    assert refused.code != 0 and "drop_after" in refused.out and "integer time" in refused.out, refused
    assert retention_jobs(tsdb_dsn, schema) == [] and chunks(tsdb_dsn, schema) == before[5:]
    stack.set("test:drop_after", "5000")
    stack.destroy()
    assert retention_jobs(tsdb_dsn, schema) == [] and chunks(tsdb_dsn, schema) == before[5:]
