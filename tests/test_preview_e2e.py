"""The preview shows what `up` will do, in the executor's words, and only the user's own fields."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionSettings, Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval=cfg.require("chunk"))
if not cfg.get_bool("no_settings"):
    cs = CompressionSettings("ticks-compression", ht, segment_by=["symbol"])
    pulumi.export("settings_on_delete", getattr(cs, "on_delete", None))  # None on a version without it
rp = RetentionPolicy("ticks-retention", ht, drop_after=cfg.require("drop_after"))
pulumi.export("done", rp.last_operations)
"""

INTERNALS = ("peers", "resource_name", "window_value", "chunk_interval_value", "config_source", "registration",
             "__lifecycle", "owner", "segment_by_normalised", "duplicate_job_ids")


def test_preview_e2e_shows_planned_operations_only_user_fields(stack: PulumiStack, tsdb_dsn: str,
                                                               schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:chunk": "1 day", "test:drop_after": "30 days"})
    preview = stack.preview()
    assert preview.code == 0, preview
    assert "planned_operations" in preview.out, preview
    assert f"create hypertable {schema}.ticks on ts" in preview.out, preview
    assert f"enable compression on {schema}.ticks (segment_by [symbol]" in preview.out, preview
    assert f"add RetentionPolicy on {schema}.ticks (drop_after 30 days)" in preview.out, preview
    for key in INTERNALS:
        assert key not in preview.out, (key, preview)

    stack.up()
    assert stack.outputs()["done"][0] == f"add RetentionPolicy on {schema}.ticks (drop_after 30 days)"
    job = sql_run(tsdb_dsn, "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s", (schema,))

    stack.set("test:drop_after", "40 days")
    stack.set("test:chunk", "2 days")
    change = stack.preview()
    assert change.code == 0, change
    assert f"alter job {job[0][0]} (RetentionPolicy): window" in change.out, change
    assert f"set chunk interval of {schema}.ticks" in change.out, change
    for key in INTERNALS:
        assert key not in change.out, (key, change)
    stack.up()
    assert stack.outputs()["done"][0] == f"alter job {job[0][0]} (RetentionPolicy): window"


def test_preview_e2e_compression_left_enabled_is_shown(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)')
    sql_run(tsdb_dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', \'S\', g '
                      "FROM generate_series(1, 100) g")
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:chunk": "1 day", "test:drop_after": "30 days"})
    stack.up()
    sql_run(tsdb_dsn, f"SELECT compress_chunk(c) FROM show_chunks('\"{schema}\".ticks') c LIMIT 1")
    assert stack.outputs().get("settings_on_delete") is None  # nothing compressed yet: delete disables it
    stack.run("refresh", "--yes")
    stack.up()  # the refreshed outputs say what a delete would leave, before anyone deletes
    said = f"{schema}.ticks keeps compression enabled: 1 chunks are compressed"
    assert said in stack.outputs()["settings_on_delete"]
    stack.set("test:no_settings", "true")
    before = stack.preview("--refresh")
    assert "CompressionSettings: (delete)" in before.out and said in before.out, before
    removal = stack.up()
    assert f"warning: CompressionSettings ticks-compression: {said}" in removal.out, removal


def test_preview_e2e_state_internals_packed_and_older_states_clean(stack: PulumiStack, tsdb_dsn: str,
                                                                  schema: str) -> None:
    """The state holds each resource's internals as one string; a state written before that (an object) gives a
    clean drift check and a clean `up`, with nothing done to the database."""
    import json
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)')
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:chunk": "1 day", "test:drop_after": "30 days"})
    stack.up()
    exported = json.loads(stack.state())
    dynamic = [r for r in exported["deployment"]["resources"] if r["type"].startswith("pulumi-python:dynamic")]
    assert len(dynamic) == 3
    for r in dynamic:
        assert isinstance(r["inputs"]["__lifecycle"], str) and isinstance(r["outputs"]["__lifecycle"], str), r
    for args in ((), ("--refresh",)):
        clean = stack.preview("--expect-no-changes", *args)
        assert clean.code == 0, clean

    for r in dynamic:  # as an older version wrote it
        for side in ("inputs", "outputs"):
            r[side]["__lifecycle"] = json.loads(r[side]["__lifecycle"])
    (stack.workdir / "older.json").write_text(json.dumps(exported))
    stack.run("stack", "import", "--file", str(stack.workdir / "older.json"))
    assert isinstance(json.loads(stack.state())["deployment"]["resources"][-1]["inputs"]["__lifecycle"], dict)
    for args in ((), ("--refresh",)):
        clean = stack.preview("--expect-no-changes", *args)
        assert clean.code == 0, clean
    jobs = sql_run(tsdb_dsn, "SELECT job_id, config::text FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema = %s", (schema,))
    again = stack.up("--expect-no-changes")
    assert again.code == 0, again
    assert sql_run(tsdb_dsn, "SELECT job_id, config::text FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema = %s", (schema,)) == jobs
    for args in ((), ("--refresh",)):
        clean = stack.preview("--expect-no-changes", *args)
        assert clean.code == 0, clean
