"""One owner per object, recorded in the database, through the real `pulumi` binary: renames keep the objects,
another stack's objects are refused at preview unless adopted, a delete never removes what another resource owns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_policy_e2e import make_table

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionSettings, Hypertable, RetentionPolicy

cfg = pulumi.Config("test")
suffix = cfg.get("suffix") or ""
alias = cfg.get("alias_suffix")
extra = {"adopt": True} if cfg.get_bool("adopt") else {}

def opts(name):
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=name + alias)]) if alias is not None else None

ht = Hypertable("ticks", table=cfg.require("table"), time_column="ts", chunk_interval="1 day", **extra)
CompressionSettings("ticks-compression" + suffix, ht, segment_by=["symbol"], opts=opts("ticks-compression"), **extra)
rp = RetentionPolicy("ticks-retention" + suffix, ht, drop_after="30 days", opts=opts("ticks-retention"), **extra)
pulumi.export("retention_job", rp.job_id)
"""


def retention_jobs(dsn: str, schema: str) -> list[int]:
    return [r[0] for r in sql_run(dsn, "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
                                       "AND proc_name = 'policy_retention' ORDER BY job_id", (schema,))]


def compression_enabled(dsn: str, schema: str) -> bool:
    return sql_run(dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                        "WHERE hypertable_schema = %s", (schema,)) == [(True,)]


def owners(dsn: str, schema: str) -> dict[str, tuple]:
    rows = sql_run(dsn, "SELECT object_kind, project, stack, resource_type, resource_name "
                        "FROM _timescale_lifecycle.owners WHERE object_key = %s", (f"{schema}.ticks",))
    return {r[0]: tuple(r[1:]) for r in rows}


def test_ownership_e2e_rename_keeps_objects(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks"})
    stack.up()
    job = stack.outputs()["retention_job"]

    # Renamed without an alias: Pulumi creates the new resources first, then deletes the old ones.
    stack.set("test:suffix", "-v2")
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == [job]
    assert compression_enabled(tsdb_dsn, schema)
    found = owners(tsdb_dsn, schema)
    assert found["job:policy_retention"] == ("lifecycle-test", "test", "RetentionPolicy", "ticks-retention-v2")
    assert found["compression_settings"][3] == "ticks-compression-v2"

    # Renamed with an alias: the same resources, now recorded under their new names.
    stack.set("test:suffix", "-v3")
    stack.set("test:alias_suffix", "-v2")
    stack.up()
    assert retention_jobs(tsdb_dsn, schema) == [job]
    assert compression_enabled(tsdb_dsn, schema)
    found = owners(tsdb_dsn, schema)
    assert found["job:policy_retention"][3] == "ticks-retention-v3"
    assert found["compression_settings"][3] == "ticks-compression-v3"
    assert stack.preview("--expect-no-changes").code == 0

    stack.destroy()
    assert retention_jobs(tsdb_dsn, schema) == [] and not compression_enabled(tsdb_dsn, schema)
    assert owners(tsdb_dsn, schema) == {}


def test_ownership_e2e_other_stack_refused_unless_adopted(stack: PulumiStack, tsdb_dsn: str, schema: str,
                                                         tmp_path: Path, pulumi_home: Path) -> None:
    make_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'), migrate_data => true)",
            (f'"{schema}".ticks',))
    hand = sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '90 days')",
                   (f'"{schema}".ticks',))[0][0]
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks"})
    preview = stack.preview()
    assert preview.code == 0, preview
    assert f"adopt job {hand} (RetentionPolicy on {schema}.ticks) (made outside Pulumi)" in preview.out, preview
    assert f"adopt hypertable {schema}.ticks (made outside Pulumi)" in preview.out, preview
    stack.up()

    other = PulumiStack(tmp_path / "other", pulumi_home=pulumi_home, dsn=tsdb_dsn, stack="other")
    try:
        other.program(PROGRAM)
        other.init({"test:table": f"{schema}.ticks"})
        refused = other.preview()
        assert refused.code != 0, refused
        assert re.search(r"is owned by (Hypertable ticks|CompressionSettings ticks-compression|RetentionPolicy "
                         r"ticks-retention) of stack lifecycle-test/test", refused.out), refused
        assert "adopt=True" in refused.out, refused

        other.set("test:adopt", "true")
        taking = other.preview()
        assert taking.code == 0, taking
        assert (f"take over job {hand} (RetentionPolicy on {schema}.ticks) from RetentionPolicy ticks-retention "
                "of stack lifecycle-test/test") in taking.out, taking
        other.up()
        assert owners(tsdb_dsn, schema)["job:policy_retention"][1] == "other"

        # The first stack lets go: its deletes leave what the other stack now owns.
        stack.destroy()
        assert retention_jobs(tsdb_dsn, schema) == [hand]
        assert compression_enabled(tsdb_dsn, schema)
        other.destroy()
        assert retention_jobs(tsdb_dsn, schema) == []
    finally:
        other.cleanup()
