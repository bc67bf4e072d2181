"""Compression settings, compression and retention policies through the real `pulumi` binary."""

from __future__ import annotations

import re

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import (CompressionPolicy, CompressionSettings, Hypertable, PolicyGuard,
                                 RetentionPolicy)

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
segment_by = cfg.get_object("segment_by")
CompressionSettings("ticks-compression", ht, segment_by=["symbol"] if segment_by is None else segment_by,
                    order_by=["ts DESC"])
cp = CompressionPolicy("ticks-compress", ht, compress_after=cfg.require("compress_after"),
                       schedule_interval=cfg.get("compress_schedule"))
rp = RetentionPolicy("ticks-retention", ht, drop_after=cfg.require("drop_after"))
if cfg.get_bool("second_retention"):
    RetentionPolicy("ticks-retention-again", ht, drop_after="60 days")
PolicyGuard("guard")
pulumi.export("compress_job", cp.job_id)
pulumi.export("retention_job", rp.job_id)
pulumi.export("retention_job_text", rp.job_id.apply(str))
pulumi.export("compress_numbers_text",
              pulumi.Output.all(cp.job_id, cp.max_retries).apply(lambda v: " ".join(map(str, v))))
pulumi.export("adopted", rp.adopted)
"""


def make_table(dsn: str, schema: str) -> None:
    sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, '
                 "price double precision)")
    sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'10 minutes\', \'S\' || (g % 3), g '
                 "FROM generate_series(1, 4000) g")


def jobs(dsn: str, schema: str) -> dict[str, tuple]:
    rows = sql_run(dsn, "SELECT proc_name, job_id, schedule_interval::text, config FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = %s", (schema,))
    return {r[0]: r[1:] for r in rows}


def test_policies_e2e_lifecycle(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:compress_after": "7 days", "test:drop_after": "30 days"})

    preview = stack.preview()
    assert preview.code == 0, preview
    for kind in ("Hypertable", "CompressionSettings", "CompressionPolicy", "RetentionPolicy", "PolicyGuard"):
        assert f"+ pulumi-python:dynamic/timescale:{kind}: (create)" in preview.out, (kind, preview)
    assert "6 to create" in preview.out, preview
    assert jobs(tsdb_dsn, schema) == {}

    stack.up()
    first = stack.outputs()
    # Outputs declared on the policies' shared base class reach the program as the int they are declared.
    assert first["retention_job_text"] == str(first["retention_job"]), first
    assert re.fullmatch(r"\d+ -?\d+", first["compress_numbers_text"]), first
    found = jobs(tsdb_dsn, schema)
    assert found["policy_compression"][2]["compress_after"] == "7 days"
    assert found["policy_retention"][2]["drop_after"] == "30 days"
    assert stack.preview("--expect-no-changes").code == 0
    assert "unchanged" in stack.up().out

    for spelling in ("1 week", "168 hours"):
        stack.set("test:compress_after", spelling)
        assert stack.preview("--expect-no-changes").code == 0, spelling

    # In place, same jobs.
    stack.set("test:drop_after", "45 days")
    stack.set("test:compress_schedule", "6 hours")
    change = stack.preview()
    assert "(update)" in change.out and "replace" not in change.out, change
    assert "2 to update" in change.out, change
    stack.up()
    after = stack.outputs()
    assert (after["compress_job"], after["retention_job"]) == (first["compress_job"], first["retention_job"])
    found = jobs(tsdb_dsn, schema)
    assert found["policy_retention"][2]["drop_after"] == "45 days"
    assert found["policy_compression"][1] == "06:00:00"

    # New compression settings apply to chunks compressed afterwards: the preview says so.
    sql_run(tsdb_dsn, f"SELECT compress_chunk(c) FROM show_chunks('\"{schema}\".ticks') c LIMIT 1")
    stack.set("test:segment_by", '[]')
    settings = stack.preview()
    assert "chunks compressed from now on" in settings.out, settings
    stack.up()

    # Drift: altered by hand, removed by hand.
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '3 hours')", (after["retention_job"],))
    sql_run(tsdb_dsn, "SELECT delete_job(%s)", (after["compress_job"],))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0, drift
    assert "03:00:00" in drift.out and "1 day" in drift.out, drift  # actual and declared schedule
    assert "CompressionPolicy: (create)" in drift.out, drift
    stack.up("--refresh")
    found = jobs(tsdb_dsn, schema)
    assert found["policy_retention"][0] == after["retention_job"] and found["policy_retention"][1] == "1 day"
    assert "policy_compression" in found
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    assert tsdb_dsn not in stack.state()
    stack.destroy()
    assert jobs(tsdb_dsn, schema) == {}
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(4000,)]


def test_policies_e2e_adopt_and_guard(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'), "
                      "migrate_data => true)", (f'"{schema}".ticks',))
    hand = sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '90 days')",
                   (f'"{schema}".ticks',))[0][0]
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:compress_after": "7 days", "test:drop_after": "30 days"})
    stack.up()
    out = stack.outputs()
    assert out["adopted"] is True and out["retention_job"] == hand
    assert jobs(tsdb_dsn, schema)["policy_retention"][2]["drop_after"] == "30 days"

    # A policy added by hand that nobody declares: the guard reports it, up --refresh removes it.
    stack.program(PROGRAM.replace('rp = RetentionPolicy("ticks-retention", ht, drop_after=cfg.require("drop_after"))',
                                  "rp = None").replace('pulumi.export("retention_job", rp.job_id)', "")
                  .replace('pulumi.export("retention_job_text", rp.job_id.apply(str))', "")
                  .replace('pulumi.export("adopted", rp.adopted)', ""))
    stack.up()
    assert "policy_retention" not in jobs(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '10 days')", (f'"{schema}".ticks',))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "RetentionPolicy" in drift.out, drift
    stack.up("--refresh")
    assert "policy_retention" not in jobs(tsdb_dsn, schema)
    assert stack.preview("--refresh", "--expect-no-changes").code == 0


@pytest.mark.parametrize("config, fragment", [
    ({"test:second_retention": "true"}, "already has a RetentionPolicy declared by ticks-retention"),
    ({"test:compress_after": "-7 days"}, "must be positive"),
    ({"test:segment_by": '["symbl"]'}, "segment_by='symbl': no such column"),
])
def test_policies_e2e_bad_input_refused_at_preview(stack: PulumiStack, tsdb_dsn: str, schema: str,
                                                   config: dict, fragment: str) -> None:
    make_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:compress_after": "7 days", "test:drop_after": "30 days",
                **config})
    preview = stack.preview()
    assert preview.code != 0 and fragment in preview.out, preview
    assert jobs(tsdb_dsn, schema) == {}
