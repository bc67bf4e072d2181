"""The Hypertable provider's methods against a real TimescaleDB, one schema per test."""

from __future__ import annotations

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.resources.base import unfold
from lifecycle_resources.resources.hypertable import HypertableProvider
from tests.conftest import sql_run
from tests.test_hypertable_e2e import catalog_fingerprint

pytestmark = pytest.mark.integration


def make_table(dsn: str, schema: str, rows: int = 1000, name: str = "ticks") -> str:
    sql_run(dsn, f'CREATE TABLE "{schema}"."{name}" (ts timestamptz NOT NULL, seq bigint NOT NULL, '
                 "symbol text NOT NULL, price double precision)")
    sql_run(dsn, f'INSERT INTO "{schema}"."{name}" SELECT now() - g * interval \'1 minute\', g, \'AAA\', g '
                 f"FROM generate_series(1, {rows}) g")
    return f"{schema}.{name}"


def provider(dsn: str) -> HypertableProvider:
    p = HypertableProvider()
    p._config_dsn = dsn
    return p


def inputs(table: str, **over: object) -> dict:
    return {"time_column": "ts", "chunk_interval": "1 day", "resource_name": "ticks", "migrate_data": True,
            "table": table, **over}


def interval_of(dsn: str, schema: str, name: str = "ticks") -> str | None:
    rows = sql_run(dsn, "SELECT coalesce(time_interval::text, integer_interval::text) "
                        "FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                        "AND hypertable_name = %s", (schema, name))
    return rows[0][0] if rows else None


def test_hypertable_check_accepts_and_normalises(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    result = provider(tsdb_dsn).check({}, inputs(table, chunk_interval="P1D"))
    assert result.failures == []
    assert unfold(result.inputs)["chunk_interval_value"] == 86_400_000_000
    assert result.inputs["column_type"] == "timestamptz"


@pytest.mark.parametrize("over, field, fragment", [
    ({"table": "{schema}.missing"}, "table", "no such table"),
    ({"time_column": "nope"}, "time_column", "has no such column"),
    ({"time_column": "symbol"}, "time_column", "column is of type text"),
    ({"chunk_interval": "fortnight-ish"}, "chunk_interval", "not an interval"),
    ({"chunk_interval": "-3 days"}, "chunk_interval", "must be positive"),
    ({"chunk_interval": "0 days"}, "chunk_interval", "must be positive"),
    ({"time_column": ""}, "time_column", "at least 1 character"),
])
def test_hypertable_check_refuses_bad_input(tsdb_dsn: str, schema: str, over: dict, field: str,
                                            fragment: str) -> None:
    table = make_table(tsdb_dsn, schema)
    over = {k: (v.format(schema=schema) if isinstance(v, str) else v) for k, v in over.items()}
    result = provider(tsdb_dsn).check({}, {**inputs(table), **over})
    assert [f.property for f in result.failures] == [field]
    assert fragment in result.failures[0].reason
    assert "ticks" in result.failures[0].reason  # names the resource
    assert interval_of(tsdb_dsn, schema) is None  # nothing changed


def test_hypertable_check_unreachable_database_is_a_clear_failure(schema: str) -> None:
    p = provider("postgresql://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1")
    result = p.check({}, inputs(f"{schema}.ticks"))
    assert len(result.failures) == 1
    assert "cannot connect" in result.failures[0].reason
    assert "hunter2" not in result.failures[0].reason


def test_hypertable_create_converts_table_with_its_rows(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema, rows=5000)
    p = provider(tsdb_dsn)
    created = p.create(p.check({}, inputs(table)).inputs)
    assert created.id == table
    assert created.outs["adopted"] is False
    assert interval_of(tsdb_dsn, schema) == "1 day"
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks')[0][0] == 5000
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = %s",
                   (schema,))[0][0] > 1


def test_hypertable_create_adopts_existing_hypertable_and_converges(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '6 hours'), "
                      "migrate_data => true)", (f'"{schema}".ticks',))
    p = provider(tsdb_dsn)
    created = p.create(p.check({}, inputs(table)).inputs)
    assert created.outs["adopted"] is True
    assert interval_of(tsdb_dsn, schema) == "1 day"


def test_hypertable_diff_equal_intervals_spelled_differently(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    for spelling in ["24 hours", "1440 minutes", "P1D", "1d"]:
        news = p.check(outs, inputs(table, chunk_interval=spelling)).inputs
        assert p.diff(table, outs, news).changes is False, spelling
    news = p.check(outs, inputs(table, chunk_interval="2 days")).inputs
    diff = p.diff(table, outs, news)
    assert diff.changes is True and diff.replaces == []


def test_hypertable_update_changes_interval_in_place(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    news = p.check(outs, inputs(table, chunk_interval="12 hours")).inputs
    updated = p.update(table, outs, news).outs
    assert updated["chunk_interval"] == "12 hours"
    assert interval_of(tsdb_dsn, schema) == "12:00:00"


def test_hypertable_read_reports_drift_and_gone(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    same = p.read(table, outs)
    assert same.id == table and same.inputs["chunk_interval"] == "1 day"
    sql_run(tsdb_dsn, "SELECT set_chunk_time_interval(%s::regclass, interval '3 days')", (f'"{schema}".ticks',))
    drifted = p.read(table, outs)
    assert unfold(drifted.outs)["chunk_interval_value"] == 3 * 86_400_000_000
    assert p.diff(table, drifted.outs, p.check(outs, inputs(table)).inputs).changes is True
    sql_run(tsdb_dsn, f'DROP TABLE "{schema}".ticks')
    assert p.read(table, outs).id is None


@pytest.mark.parametrize("opt_in", [False, True])
def test_hypertable_time_column_change_refused_at_check_and_apply(tsdb_dsn: str, schema: str, opt_in: bool) -> None:
    table = make_table(tsdb_dsn, schema, rows=3000)
    sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".ticks ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()')
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    before = catalog_fingerprint(tsdb_dsn, schema)
    changed = inputs(table, time_column="created_at", allow_time_column_change=opt_in)
    refused = p.check(outs, changed)
    assert [f.property for f in refused.failures] == ["time_column"]
    assert "ACCESS EXCLUSIVE" in refused.failures[0].reason and "bounded batches" in refused.failures[0].reason
    # A new resource adopting the table on another column (no olds) is refused the same way, and so is up.
    assert [f.property for f in p.check({}, changed).failures] == ["time_column"]
    with pytest.raises(InputError, match="time_column='created_at'"):
        p.update(table, outs, changed)
    with pytest.raises(InputError, match="time_column='created_at'"):
        p.create(changed)
    assert catalog_fingerprint(tsdb_dsn, schema) == before


def test_hypertable_integer_time_column(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    p = provider(tsdb_dsn)
    bad = p.check({}, inputs(table, time_column="seq", chunk_interval="1 day"))
    assert [f.property for f in bad.failures] == ["chunk_interval"]
    good = p.check({}, inputs(table, time_column="seq", chunk_interval=100))
    assert good.failures == []
    outs = p.create(good.inputs).outs
    assert unfold(outs)["chunk_interval_value"] == 100 and outs["column_type"] == "int8"


def test_hypertable_delete_keeps_table_and_rows(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema, rows=1234)
    p = provider(tsdb_dsn)
    outs = p.create(p.check({}, inputs(table)).inputs).outs
    p.delete(table, outs)
    assert interval_of(tsdb_dsn, schema) == "1 day"
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks')[0][0] == 1234


def test_hypertable_provider_pickles_without_connection(tsdb_dsn: str) -> None:
    import dill

    p = provider(tsdb_dsn)
    blob = dill.dumps(p)
    assert tsdb_dsn.encode() not in blob
    assert dill.loads(blob)._config_dsn is None
