"""The Hypertable resource through the real `pulumi` binary: create, idempotence, in-place update, drift,
convergence, refusal at preview, destroy that keeps the data."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import Hypertable

cfg = pulumi.Config("test")
ht = Hypertable("ticks", table=cfg.require("table"), time_column=cfg.require("time_column"),
                chunk_interval=cfg.require("chunk_interval"),
                allow_time_column_change=cfg.get_bool("allow_time_column_change") or False)
pulumi.export("chunk_interval", ht.chunk_interval)
pulumi.export("adopted", ht.adopted)
"""


def make_table(dsn: str, schema: str, rows: int = 2000) -> None:
    sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, '
                 "price double precision)")
    sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'5 minutes\', \'AAA\', g '
                 f"FROM generate_series(1, {rows}) g")


def interval_of(dsn: str, schema: str) -> str | None:
    rows = sql_run(dsn, "SELECT time_interval::text FROM timescaledb_information.dimensions "
                        "WHERE hypertable_schema = %s AND hypertable_name = 'ticks'", (schema,))
    return rows[0][0] if rows else None


def test_hypertable_e2e_full_lifecycle(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:time_column": "ts", "test:chunk_interval": "1 day"})

    preview = stack.preview()
    assert preview.code == 0, preview
    assert "+ pulumi-python:dynamic/timescale:Hypertable: (create)" in preview.out, preview
    assert interval_of(tsdb_dsn, schema) is None  # a preview changes nothing

    stack.up()
    assert interval_of(tsdb_dsn, schema) == "1 day"
    assert stack.outputs()["adopted"] is False

    again = stack.preview("--expect-no-changes")
    assert again.code == 0, again
    second = stack.up()
    assert "1 updated" not in second.out and "created" not in second.out.split("Resources:")[1], second

    # Equal in the database, written differently: not a change.
    stack.set("test:chunk_interval", "24 hours")
    assert stack.preview("--expect-no-changes").code == 0

    # In place: same resource, set_chunk_time_interval.
    stack.set("test:chunk_interval", "2 days")
    change = stack.preview()
    assert "~ pulumi-python:dynamic/timescale:Hypertable: (update)" in change.out, change
    assert "replace" not in change.out, change
    assert stack.preview("--expect-no-changes").code != 0
    updated = stack.up()
    assert "1 updated" in updated.out, updated
    assert interval_of(tsdb_dsn, schema) == "2 days"

    # Drift: changed by hand, reported by a refreshing preview, converged by up --refresh.
    sql_run(tsdb_dsn, "SELECT set_chunk_time_interval(%s::regclass, interval '5 hours')", (f'"{schema}".ticks',))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0, drift
    assert "chunk_interval" in drift.out, drift
    assert "05:00:00" in drift.out and "2 days" in drift.out, drift
    stack.up("--refresh")
    assert interval_of(tsdb_dsn, schema) == "2 days"
    assert stack.preview("--refresh", "--expect-no-changes").code == 0

    # The DSN is a secret: never in the state in plain text.
    assert tsdb_dsn not in stack.state()

    stack.destroy()
    assert interval_of(tsdb_dsn, schema) == "2 days"  # still a hypertable: management released only
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks')[0][0] == 2000


def test_hypertable_e2e_bad_input_refused_at_preview(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    make_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:time_column": "tstamp", "test:chunk_interval": "1 day"})
    preview = stack.preview()
    assert preview.code != 0
    assert "time_column='tstamp'" in preview.out and "no such column" in preview.out, preview
    up = stack.up(check=False)
    assert up.code != 0
    assert interval_of(tsdb_dsn, schema) is None

    stack.set("test:time_column", "ts")
    stack.set("test:chunk_interval", "one day")
    preview = stack.preview()
    assert preview.code != 0 and "chunk_interval='one day'" in preview.out, preview


CATALOG = """
SELECT 'rel', c.relname || ':' || c.relkind::text || ':' || coalesce(c.relacl::text, '')
  FROM pg_class c WHERE c.relnamespace = %(s)s::text::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
UNION ALL SELECT 'column', table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':'
                 || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = %(s)s::text
UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = %(s)s::text AND tablename = 'ticks'
UNION ALL SELECT 'constraint', conname || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid = format('%%I.ticks', %(s)s::text)::regclass
UNION ALL SELECT 'trigger', tgname || ':' || pg_get_triggerdef(oid)
  FROM pg_trigger WHERE tgrelid = format('%%I.ticks', %(s)s::text)::regclass AND NOT tgisinternal
UNION ALL SELECT 'dimension', column_name || ':' || coalesce(time_interval::text, integer_interval::text)
  FROM timescaledb_information.dimensions WHERE hypertable_schema = %(s)s::text
UNION ALL SELECT 'compression', coalesce(segmentby, '') || ':' || coalesce(orderby, '')
  FROM timescaledb_information.hypertable_compression_settings
 WHERE hypertable = format('%%I.ticks', %(s)s::text)::regclass
UNION ALL SELECT 'job', job_id || ':' || proc_name || ':' || config::text
  FROM timescaledb_information.jobs WHERE hypertable_schema = %(s)s::text
UNION ALL SELECT 'rows', count(*) || ':' || coalesce(sum(hashtext(t::text)::bigint), 0)
  FROM {table} t
ORDER BY 1, 2
"""


def catalog_fingerprint(dsn: str, schema: str) -> list[tuple]:
    """What a time-column change used to lose: keys, indexes, grants, triggers, compression, policies, rows."""
    return sql_run(dsn, CATALOG.replace("{table}", f'"{schema}".ticks'), {"s": schema})  # type: ignore[arg-type]


def test_hypertable_e2e_time_column_change_refused_database_unchanged(stack: PulumiStack, tsdb_dsn: str,
                                                                      schema: str) -> None:
    make_table(tsdb_dsn, schema)
    t = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"ALTER TABLE {t} ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()")
    sql_run(tsdb_dsn, f"ALTER TABLE {t} ADD PRIMARY KEY (symbol, ts)")
    sql_run(tsdb_dsn, f"CREATE INDEX ON {t} (price)")
    sql_run(tsdb_dsn, f"GRANT SELECT ON {t} TO PUBLIC")
    sql_run(tsdb_dsn, f"CREATE FUNCTION \"{schema}\".touch() RETURNS trigger LANGUAGE plpgsql AS "
                      "'BEGIN RETURN NEW; END'")
    sql_run(tsdb_dsn, f"CREATE TRIGGER touch BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION \"{schema}\".touch()")
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:time_column": "ts", "test:chunk_interval": "1 day"})
    stack.up()
    sql_run(tsdb_dsn, f"ALTER TABLE {t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')")
    sql_run(tsdb_dsn, f"SELECT add_retention_policy('{t}'::regclass, interval '90 days')")
    before = catalog_fingerprint(tsdb_dsn, schema)
    kinds = [k for k, _ in before]
    assert kinds.count("index") >= 2 and {"constraint", "trigger", "compression", "job", "rows"} <= set(kinds)

    stack.set("test:time_column", "created_at")
    for opt_in in ("false", "true"):  # the old opt-in no longer copies anything
        stack.set("test:allow_time_column_change", opt_in)
        preview = stack.preview()
        assert preview.code != 0, preview
        assert "time_column='created_at'" in preview.out and "ACCESS EXCLUSIVE" in preview.out, preview
        up = stack.up(check=False)
        assert up.code != 0 and "bounded batches" in up.out, up
        assert catalog_fingerprint(tsdb_dsn, schema) == before
