"""Integer time, integer_now as code, the optional chunk interval, a hash dimension and create_default_indexes,
through the providers against a real TimescaleDB."""

from __future__ import annotations

import pytest

from lifecycle_resources import CompressionPolicyProvider, HypertableProvider, RetentionPolicyProvider
from lifecycle_resources.resources.base import unfold
from tests.conftest import sql_run
from tests.test_policy_providers import checked, failures, jobs_of, make

pytestmark = pytest.mark.integration
NOW = "SELECT extract(epoch FROM now())::bigint"


def metrics(dsn: str, schema: str, column_type: str = "bigint", rows: int = 500) -> str:
    sql_run(dsn, f'CREATE TABLE "{schema}".metrics (clock {column_type} NOT NULL, itemid int NOT NULL, '
                 "value double precision)")
    if rows:
        sql_run(dsn, f'INSERT INTO "{schema}".metrics SELECT extract(epoch FROM now())::bigint - g * 600, g % 5, g '
                     f"FROM generate_series(1, {rows}) g")
    return f"{schema}.metrics"


def dims(dsn: str, schema: str, table: str = "metrics") -> list[tuple]:
    return sql_run(dsn, "SELECT column_name, coalesce(time_interval::text, integer_interval::text), num_partitions, "
                        "integer_now_func FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                        "AND hypertable_name = %s ORDER BY dimension_number", (schema, table))


def body_of(dsn: str, schema: str, name: str = "unix_now") -> str | None:
    rows = sql_run(dsn, "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(%s)", (f'"{schema}".{name}()',))
    return rows[0][0] if rows else None


def news(table: str, schema: str, **over: object) -> dict:
    return {"table": table, "time_column": "clock", "chunk_interval": 86400, "resource_name": "metrics",
            "integer_now": {"function": f"{schema}.unix_now", "sql": NOW}, **over}


def test_integer_time_hypertable_with_integer_now_as_code(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema)
    p = make(HypertableProvider, tsdb_dsn)
    declared = checked(p, {}, news(table, schema, space_column="itemid", number_partitions=4))
    planned = declared["planned_operations"]
    assert f"create function {schema}.unix_now() returning bigint: {NOW}" in planned
    assert f"set integer_now of {table}: none -> {schema}.unix_now" in planned
    assert dims(tsdb_dsn, schema) == [] and body_of(tsdb_dsn, schema) is None  # check changed nothing
    assert f"create hypertable {table} on clock and hash itemid (4 partitions)" in planned
    outs = p.create(checked(p, {}, news(table, schema))).outs
    assert dims(tsdb_dsn, schema) == [("clock", "86400", None, "unix_now")]
    assert body_of(tsdb_dsn, schema) == NOW
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".metrics') == [(500,)]
    same = checked(p, outs, news(table, schema))
    assert p.diff(table, outs, same).changes is False
    read = p.read(table, outs)
    assert p.diff(table, read.outs, checked(p, read.inputs, news(table, schema))).changes is False

    # In place: a new body (CREATE OR REPLACE), then drift (set_integer_now_func by hand) converged.
    other = "SELECT (extract(epoch FROM now()) * 1)::bigint"
    changed = checked(p, outs, news(table, schema, integer_now={"function": f"{schema}.unix_now", "sql": other}))
    assert p.diff(table, outs, changed).changes is True
    outs = p.update(table, outs, changed).outs
    assert body_of(tsdb_dsn, schema) == other
    sql_run(tsdb_dsn, f'CREATE FUNCTION "{schema}".hand() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT 1::bigint $$')
    sql_run(tsdb_dsn, f"SELECT set_integer_now_func('\"{schema}\".metrics', '\"{schema}\".hand', true)")
    read = p.read(table, outs)
    assert unfold(read.outs)["integer_now"] == f"{schema}.hand"
    again = checked(p, read.inputs, changed)
    assert p.diff(table, read.outs, again).changes is True
    p.update(table, read.outs, again)
    assert dims(tsdb_dsn, schema)[0][3] == "unix_now"

    # Delete releases management: the function and the data stay.
    p.delete(table, outs)
    assert body_of(tsdb_dsn, schema) == other and dims(tsdb_dsn, schema)[0][3] == "unix_now"


def test_integer_time_existing_function_by_name(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema, "integer")
    sql_run(tsdb_dsn, f'CREATE FUNCTION "{schema}".now4() RETURNS integer LANGUAGE sql STABLE AS '
                      "$$ SELECT extract(epoch FROM now())::integer $$")
    p = make(HypertableProvider, tsdb_dsn)
    outs = p.create(checked(p, {}, news(table, schema, integer_now=f"{schema}.now4", chunk_interval=None))).outs
    # chunk_interval not declared: TimescaleDB's own default for an integer column (100000 for integer).
    assert dims(tsdb_dsn, schema) == [("clock", "100000", None, "now4")]
    assert unfold(outs)["chunk_interval_value"] == 100000
    assert body_of(tsdb_dsn, schema, "now4") is not None


@pytest.mark.parametrize("column_type, over, field, fragment", [
    ("bigint", {"integer_now": "{schema}.missing"}, "integer_now", "no such function"),
    ("integer", {"integer_now": "{schema}.now8"}, "integer_now", "returns bigint, and"),
    ("timestamptz", {"integer_now": "{schema}.now8", "chunk_interval": "1 day"}, "integer_now", "not an integer"),
    ("bigint", {"chunk_interval": "1 day"}, "chunk_interval", "integer time"),
    ("bigint", {"space_column": "nope", "number_partitions": 2}, "space_column", "no such column"),
    ("bigint", {"space_column": "itemid", "number_partitions": 0}, "number_partitions", "greater than or equal to 1"),
])
def test_integer_time_refused_at_check(tsdb_dsn: str, schema: str, column_type: str, over: dict, field: str,
                                       fragment: str) -> None:
    table = metrics(tsdb_dsn, schema, column_type, rows=0)
    sql_run(tsdb_dsn, f'CREATE FUNCTION "{schema}".now8() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT 1::bigint $$')
    over = {k: v.format(schema=schema) if isinstance(v, str) else v for k, v in over.items()}
    found = failures(make(HypertableProvider, tsdb_dsn), news(table, schema, **over))
    assert [f for f, _ in found] == [field], found
    assert fragment in found[0][1] and "metrics" in found[0][1], found
    assert dims(tsdb_dsn, schema) == []


def test_integer_time_default_chunk_interval_on_time_column(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, v int)')
    p = make(HypertableProvider, tsdb_dsn)
    decl = {"table": f"{schema}.ticks", "time_column": "ts", "resource_name": "ticks"}
    outs = p.create(checked(p, {}, decl)).outs
    assert dims(tsdb_dsn, schema, "ticks") == [("ts", "7 days", None, None)]
    assert p.diff("x", outs, checked(p, outs, decl)).changes is False
    assert p.diff("x", outs, checked(p, outs, {**decl, "chunk_interval": "1 week"})).changes is False
    sql_run(tsdb_dsn, f"SELECT set_chunk_time_interval('\"{schema}\".ticks', interval '1 day')")
    read = p.read("x", outs)
    assert p.diff("x", read.outs, checked(p, read.inputs, decl)).changes is True  # drift back to the default


def test_integer_time_hash_dimension_and_indexes(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema, rows=0)
    p = make(HypertableProvider, tsdb_dsn)
    decl = news(table, schema, space_column="itemid", number_partitions=4, create_default_indexes=False)
    outs = p.create(checked(p, {}, decl)).outs
    assert dims(tsdb_dsn, schema) == [("clock", "86400", None, "unix_now"), ("itemid", None, 4, None)]
    assert sql_run(tsdb_dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,)) == []
    assert p.diff(table, outs, checked(p, outs, decl)).changes is False
    more = checked(p, outs, {**decl, "number_partitions": 6})
    assert p.diff(table, outs, more).changes is True and p.diff(table, outs, more).replaces == []
    outs = p.update(table, outs, more).outs
    assert dims(tsdb_dsn, schema)[1] == ("itemid", None, 6, None)
    sql_run(tsdb_dsn, f"SELECT set_number_partitions('\"{schema}\".metrics', 3)")
    read = p.read(table, outs)
    assert unfold(read.outs)["number_partitions"] == 3
    p.update(table, read.outs, checked(p, read.inputs, more))
    assert dims(tsdb_dsn, schema)[1] == ("itemid", None, 6, None)
    refused = failures(p, {**decl, "space_column": "value", "number_partitions": 6})
    assert [f for f, _ in refused] == ["space_column"] and "cannot remove or change" in refused[0][1]


def test_integer_time_hash_dimension_at_create_with_rows(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema)
    p = make(HypertableProvider, tsdb_dsn)
    p.create(checked(p, {}, news(table, schema, space_column="itemid", number_partitions=4)))
    assert dims(tsdb_dsn, schema) == [("clock", "86400", None, "unix_now"), ("itemid", None, 4, None)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".metrics') == [(500,)]


def test_integer_time_hash_dimension_added_in_place_with_chunks(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema)
    p = make(HypertableProvider, tsdb_dsn)
    outs = p.create(checked(p, {}, news(table, schema))).outs
    chunks = sql_run(tsdb_dsn, f"SELECT count(*) FROM show_chunks('\"{schema}\".metrics')")
    more = checked(p, outs, news(table, schema, space_column="itemid", number_partitions=4))
    assert p.diff(table, outs, more).changes is True and p.diff(table, outs, more).replaces == []
    p.update(table, outs, more)
    assert dims(tsdb_dsn, schema)[1] == ("itemid", None, 4, None)
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM show_chunks('\"{schema}\".metrics')") == chunks



def test_integer_time_policies_take_integer_windows(tsdb_dsn: str, schema: str) -> None:
    table = metrics(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".metrics', by_range('clock', 86400), migrate_data => true)")
    r = make(RetentionPolicyProvider, tsdb_dsn)
    base = {"hypertable": table, "drop_after": 7 * 86400, "resource_name": "ret"}
    # No integer_now yet: refused, naming what to declare.
    found = failures(r, base)
    assert [f for f, _ in found] == ["drop_after"] and "no integer_now function" in found[0][1], found
    # Declared in the same program (peers): accepted before the Hypertable resource has set it.
    assert r.check({}, {**base, "peers": {"integer_now": f"{schema}.unix_now"}}).failures == []
    sql_run(tsdb_dsn, f'CREATE FUNCTION "{schema}".unix_now() RETURNS bigint LANGUAGE sql STABLE AS $$ {NOW} $$')
    sql_run(tsdb_dsn, f"SELECT set_integer_now_func('\"{schema}\".metrics', '\"{schema}\".unix_now')")
    wrong = failures(r, {**base, "drop_after": "7 days"})
    assert [f for f, _ in wrong] == ["drop_after"] and "integer time" in wrong[0][1], wrong
    outs = r.create(checked(r, {}, base)).outs
    assert jobs_of(tsdb_dsn, schema)[0][3]["drop_after"] == 604800
    changed = checked(r, outs, {**base, "drop_after": "1209600"})
    assert r.diff("x", outs, changed).changes is True
    assert r.update("x", outs, changed).outs["job_id"] == outs["job_id"]
    assert jobs_of(tsdb_dsn, schema)[0][3]["drop_after"] == 1209600
    sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".metrics SET (timescaledb.compress, '
                      "timescaledb.compress_segmentby = 'itemid')")
    c = make(CompressionPolicyProvider, tsdb_dsn)
    c.create(checked(c, {}, {"hypertable": table, "compress_after": 86400, "resource_name": "cp"}))
    assert {j[1]: j[3].get("compress_after", j[3].get("drop_after")) for j in jobs_of(tsdb_dsn, schema)} == {
        "policy_compression": 86400, "policy_retention": 1209600}


def test_integer_time_window_type_must_match_time_column(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, v int)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".ticks', by_range('ts'))")
    found = failures(make(RetentionPolicyProvider, tsdb_dsn),
                     {"hypertable": f"{schema}.ticks", "drop_after": 604800, "resource_name": "ret"})
    assert [f for f, _ in found] == ["drop_after"], found
    assert "is timestamptz, not integer time: an interval is needed" in found[0][1]


def test_hypertable_unique_index_without_time_column_refused(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (time timestamptz NOT NULL, event_id uuid PRIMARY KEY)')
    try:  # TimescaleDB's own refusal
        sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".events', 'time')")
        raise AssertionError("TimescaleDB accepted it")
    except Exception as exc:  # noqa: BLE001 - its error class is not ours to pin
        assert "cannot create a unique index without the column" in str(exc)
    found = failures(make(HypertableProvider, tsdb_dsn),
                     {"table": f"{schema}.events", "time_column": "time", "resource_name": "events"})
    assert [f for f, _ in found] == ["time_column"], found
    assert "unique index events_pkey without time" in found[0][1] and "events:" in found[0][1]
    assert dims(tsdb_dsn, schema, "events") == []
