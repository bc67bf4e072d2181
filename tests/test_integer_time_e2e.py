"""Integer time through the real `pulumi`: a Zabbix-style history table on bigint seconds with its integer_now
function declared as code, a hash dimension, integer policy windows; create, no-change preview, in-place updates
keeping the job ids, drift and convergence, refusal at preview with the database unchanged, delete keeps data."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_integer_time import body_of, dims, metrics

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import (CompressionPolicy, CompressionSettings, Hypertable, IntegerNow, PolicyGuard,
                                 RetentionPolicy)

cfg = pulumi.Config("test")
s = cfg.require("schema")
now = IntegerNow(function=f"{s}.unix_now", sql=cfg.require("now_sql")) if cfg.get_bool("with_now") else None
ht = Hypertable("history", table=f"{s}.metrics", time_column="clock", chunk_interval=86400, integer_now=now,
                space_column="itemid", number_partitions=cfg.get_int("partitions") or 4)
CompressionSettings("history-compression", ht, segment_by=["itemid"], order_by=["clock DESC"])
cp = CompressionPolicy("history-compress", ht, compress_after=cfg.get_int("compress_after") or 7 * 86400)
rp = RetentionPolicy("history-retention", ht, drop_after=cfg.require("drop_after"))
PolicyGuard("guard")
pulumi.export("compress_job", cp.job_id)
pulumi.export("retention_job", rp.job_id)
"""
NOW = "SELECT extract(epoch FROM now())::bigint"


def policy_windows(dsn: str, schema: str) -> dict:
    rows = sql_run(dsn, "SELECT proc_name, job_id, coalesce(config->'compress_after', config->'drop_after') "
                        "FROM timescaledb_information.jobs WHERE hypertable_schema = %s", (schema,))
    return {r[0]: (r[1], r[2]) for r in rows}


def test_integer_time_e2e_lifecycle(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    metrics(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:schema": schema, "test:now_sql": NOW, "test:drop_after": "2592000", "test:with_now": "false"})

    # Without integer_now, the integer-time policies are refused at preview; nothing is changed.
    refused = stack.preview()
    assert refused.code != 0 and "no integer_now function" in refused.out, refused
    assert stack.up(check=False).code != 0
    assert policy_windows(tsdb_dsn, schema) == {} and body_of(tsdb_dsn, schema) is None

    stack.set("test:with_now", "true")
    preview = stack.preview()
    assert preview.code == 0 and f"create function {schema}.unix_now() returning bigint" in preview.out, preview
    stack.up()
    first = stack.outputs()
    assert dims(tsdb_dsn, schema) == [("clock", "86400", None, "unix_now"), ("itemid", None, 4, None)]
    assert policy_windows(tsdb_dsn, schema) == {"policy_compression": (first["compress_job"], 604800),
                                                "policy_retention": (first["retention_job"], 2592000)}
    assert stack.preview("--expect-no-changes").code == 0
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # In place: windows, partitions and the function body; the same jobs.
    stack.set("test:drop_after", "5184000")
    stack.set("test:partitions", "8")
    stack.set("test:now_sql", "SELECT (extract(epoch FROM now()))::bigint")
    change = stack.preview()
    assert "replace" not in change.out.split("Resources:")[-1] and "2 to update" in change.out, change
    stack.up()
    after = stack.outputs()
    assert (after["compress_job"], after["retention_job"]) == (first["compress_job"], first["retention_job"])
    assert policy_windows(tsdb_dsn, schema)["policy_retention"] == (first["retention_job"], 5184000)
    assert dims(tsdb_dsn, schema)[1] == ("itemid", None, 8, None)
    assert body_of(tsdb_dsn, schema) == "SELECT (extract(epoch FROM now()))::bigint"

    # Drift by hand: partitions and the function body; reported, then converged.
    sql_run(tsdb_dsn, f"SELECT set_number_partitions('\"{schema}\".metrics', 2)")
    sql_run(tsdb_dsn, f'CREATE OR REPLACE FUNCTION "{schema}".unix_now() RETURNS bigint LANGUAGE sql STABLE '
                      "AS $$ SELECT 0::bigint $$")
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "number_partitions" in drift.out and "integer_now_body" in drift.out, drift
    stack.up("--refresh")
    assert dims(tsdb_dsn, schema)[1] == ("itemid", None, 8, None)
    assert body_of(tsdb_dsn, schema) == "SELECT (extract(epoch FROM now()))::bigint"
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    stack.destroy()
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".metrics') == [(500,)]
    assert policy_windows(tsdb_dsn, schema) == {}  # the policies' own jobs are removed; data and function stay
    assert dims(tsdb_dsn, schema)[0][3] == "unix_now" and body_of(tsdb_dsn, schema) is not None
