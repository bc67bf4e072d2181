"""The CompressionSettings preview measures the declared settings on a sample chunk when they are created or
changed, and warns (never refuses) when they make the data larger than uncompressed."""

from __future__ import annotations

import pytest

from lifecycle_resources import CompressionSettingsProvider
from lifecycle_resources.db.connection import connect
from tests.conftest import sql_run
from tests.test_advisor import no_scratch, ticks
from tests.test_policy_providers import checked, make

pytestmark = pytest.mark.integration


def unique_ids(dsn: str, schema: str, *, hypertable: bool = True) -> str:
    """One day of ticks with a unique trade id: segmenting by it makes every row a segment of its own."""
    rel = f'"{schema}".trades'
    sql_run(dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, trade_id bigint NOT NULL, sym text, price float8)")
    if hypertable:
        sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(dsn, f"INSERT INTO {rel} SELECT date_trunc('day', now()) - interval '1 day' + g * interval '10 seconds', "
                 f"g, 'S' || (g % 5), 100 + g / 1000.0 FROM generate_series(0, 8639) g")
    return f"{schema}.trades"


def settings(table: str, segment_by: list[str]) -> dict:
    return {"hypertable": table, "segment_by": segment_by, "order_by": ["ts DESC"], "resource_name": "cs"}


def warnings(ops: list[str]) -> list[str]:
    return [o for o in ops if o.startswith("WARNING: ")]


def test_compression_preview_warns_settings_worse_than_uncompressed(tsdb_dsn: str, lifecycle_schema: None,
                                                                     schema: str) -> None:
    table = unique_ids(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    ops = checked(p, {}, settings(table, ["trade_id"]))["planned_operations"]
    [warning] = warnings(ops)
    assert f"compression settings of {table} (segment_by trade_id, order_by ts DESC) make the data larger" in warning
    assert "on a sample of 8640 rows of" in warning, warning
    ratio = float(warning.split("make the data larger: ")[1].split("x")[0])
    assert ratio < 1.0
    # the advisor's best candidate, as a declaration to paste, measured better than 1:1
    assert "the advisor's best candidate: CompressionSettings(hypertable=" in warning
    assert "segment_by=['trade_id']" not in warning.split("best candidate: ")[1]
    best = float(warning.split("best candidate: ")[1].split(": ")[1].split("x")[0])
    assert best > 1.0 > ratio
    assert ops[0].startswith(f"enable compression on {table}"), ops  # the change itself comes first
    no_scratch(tsdb_dsn)
    # a preview changes nothing: compression is still off on the table
    assert sql_run(tsdb_dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(False,)]


def test_compression_preview_warns_on_a_table_not_yet_a_hypertable(tsdb_dsn: str, lifecycle_schema: None,
                                                                   schema: str) -> None:
    """The first `up` of a program that makes a table with rows a hypertable and compresses it: the settings are
    measured on the table's newest rows (there is no chunk yet), and the table is left as it was."""
    table = unique_ids(tsdb_dsn, schema, hypertable=False)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    ops = checked(p, {}, settings(table, ["trade_id"]) | {"peers": {"time_column": "ts"}})["planned_operations"]
    [warning] = warnings(ops)
    assert f"compression settings of {table} (segment_by trade_id, order_by ts DESC) make the data larger" in warning
    assert f"on a sample of 8640 rows of {table} (not a hypertable yet: its newest rows)" in warning, warning
    assert "the advisor's best candidate: CompressionSettings(hypertable=" in warning
    no_scratch(tsdb_dsn)
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = %s",
                   (schema,)) == [(0,)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".trades') == [(8640,)]


def test_compression_preview_plain_table_sampled_in_the_declared_chunk_interval(tsdb_dsn: str, schema: str) -> None:
    """Small chunks hold few rows per segment and compress worse: the declared chunk interval is the one used."""
    from lifecycle_resources.identifiers import TableName
    from lifecycle_resources.reconcile.compression import CompressionState
    from lifecycle_resources.runner import advisor

    table = unique_ids(tsdb_dsn, schema, hypertable=False)
    declared = CompressionState(hypertable=table, enabled=True, segment_by=("sym",), order_by=("ts DESC",))
    with connect(tsdb_dsn) as conn:
        ratio = {every: advisor.advise_within(conn, TableName.parse(table), declared, 50_000, "ts", every).current.ratio
                 for every in ("1 hour", None)}  # None: TimescaleDB's default, 7 days
    assert ratio["1 hour"] < ratio[None], ratio
    no_scratch(tsdb_dsn)


def test_compression_preview_no_warning_when_settings_compress_well(tsdb_dsn: str, lifecycle_schema: None,
                                                                     schema: str) -> None:
    table = ticks(tsdb_dsn, schema, symbols=10, every="20 seconds", segment_by=None)
    ops = checked(make(CompressionSettingsProvider, tsdb_dsn), {}, settings(table, ["sym"]))["planned_operations"]
    assert ops and warnings(ops) == [], ops
    no_scratch(tsdb_dsn)


def test_compression_preview_unchanged_settings_not_measured(tsdb_dsn: str, lifecycle_schema: None,
                                                              schema: str) -> None:
    """Settings already in place (however bad) are not measured again: a no-change preview stays fast."""
    table = unique_ids(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f"ALTER TABLE \"{schema}\".trades SET (timescaledb.compress, "
                      "timescaledb.compress_segmentby = 'trade_id', timescaledb.compress_orderby = 'ts DESC')")
    p = make(CompressionSettingsProvider, tsdb_dsn)
    assert warnings(checked(p, {}, settings(table, ["trade_id"]) | {"adopt": True})["planned_operations"]) == []
    # changed to settings that compress worse than 1:1 again: measured and said
    changed = checked(p, {}, settings(table, ["trade_id", "sym"]) | {"adopt": True})["planned_operations"]
    assert len(warnings(changed)) == 1, changed


def test_compression_preview_empty_table_no_warning(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".empty (ts timestamptz NOT NULL, id bigint)')
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts'))", (f'"{schema}".empty',))
    ops = checked(make(CompressionSettingsProvider, tsdb_dsn), {},
                  settings(f"{schema}.empty", ["id"]))["planned_operations"]
    assert ops and warnings(ops) == [], ops
    no_scratch(tsdb_dsn)
