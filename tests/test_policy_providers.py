"""CompressionSettings, CompressionPolicy, RetentionPolicy and PolicyGuard providers against a real
TimescaleDB: every method, adoption, drift, refusal with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources import (
    CompressionPolicyProvider,
    CompressionSettingsProvider,
    RetentionPolicyProvider,
)
from lifecycle_resources.resources.base import unfold
from lifecycle_resources.resources.policy_guard import PolicyGuardProvider
from tests.conftest import sql_run

pytestmark = pytest.mark.integration
DAY = 86_400_000_000


def hypertable(dsn: str, schema: str, rows: int = 3000, compress: bool = False) -> str:
    sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, symbol text NOT NULL, '
                 "price double precision, volume double precision)")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (f'"{schema}".ticks',))
    sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'10 minutes\', '
                 f"'S' || (g % 4), g, g FROM generate_series(1, {rows}) g")
    if compress:
        sql_run(dsn, f'ALTER TABLE "{schema}".ticks SET (timescaledb.compress)')
    return f"{schema}.ticks"


def make(cls: type, dsn: str) -> Any:
    p = cls()
    p._config_dsn = dsn
    return p


def checked(p: Any, olds: dict, news: dict) -> dict:
    result = p.check(olds, news)
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def failures(p: Any, news: dict) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in p.check({}, news).failures]


def jobs_of(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT job_id, proc_name, schedule_interval::text, config FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = %s ORDER BY job_id", (schema,))


def settings_of(dsn: str, schema: str) -> tuple:
    return sql_run(dsn, "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings "
                        "WHERE hypertable = %s::regclass", (f'"{schema}".ticks',))[0]


# -- CompressionSettings ---------------------------------------------------------------------------

def test_compression_settings_create_read_update_delete(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    news = {"hypertable": table, "segment_by": ["symbol"], "order_by": ["price DESC"], "resource_name": "cs"}
    outs = p.create(checked(p, {}, news)).outs
    assert outs["adopted"] is False and outs["enabled"] is True
    assert settings_of(tsdb_dsn, schema) == ("symbol", "price DESC,ts DESC")
    # The same ordering spelled otherwise is no change.
    same = checked(p, outs, {**news, "order_by": ["price desc nulls first", "ts DESC"]})
    assert p.diff(table, outs, same).changes is False
    assert unfold(p.read(table, outs).inputs)["order_by_normalised"] == unfold(outs)["order_by_normalised"]
    # Change in place.
    changed = checked(p, outs, {**news, "segment_by": [], "order_by": ["volume"]})
    assert p.diff(table, outs, changed).changes is True and p.diff(table, outs, changed).replaces == []
    outs = p.update(table, outs, changed).outs
    assert settings_of(tsdb_dsn, schema) == ("", "volume,ts DESC")
    p.delete(table, outs)
    assert sql_run(tsdb_dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(False,)]


def test_compression_settings_change_with_compressed_chunks_says_so(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    news = {"hypertable": table, "segment_by": ["symbol"], "order_by": [], "resource_name": "cs"}
    outs = p.create(checked(p, {}, news)).outs
    sql_run(tsdb_dsn, f"SELECT compress_chunk(c) FROM show_chunks('\"{schema}\".ticks') c LIMIT 2")
    changed = checked(p, outs, {**news, "segment_by": []})
    said = " ".join(changed["planned_operations"])
    assert "applies to chunks compressed from now on; the 2 chunks already compressed keep" in said
    assert "segment_by [symbol] -> []" in said
    outs = p.update(table, outs, changed).outs
    assert settings_of(tsdb_dsn, schema)[0] == ""
    # Delete cannot disable compression while chunks are compressed: it leaves it, and the data, alone.
    rows = sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks')
    p.delete(table, outs)
    assert sql_run(tsdb_dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(True,)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == rows


def test_compression_settings_adopts_and_reports_drift(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f"ALTER TABLE \"{schema}\".ticks SET (timescaledb.compress, "
                      "timescaledb.compress_segmentby = 'symbol')")
    p = make(CompressionSettingsProvider, tsdb_dsn)
    news = {"hypertable": table, "segment_by": ["symbol"], "order_by": ["ts DESC"], "resource_name": "cs"}
    outs = p.create(checked(p, {}, news)).outs
    assert outs["adopted"] is True
    sql_run(tsdb_dsn, f"ALTER TABLE \"{schema}\".ticks SET (timescaledb.compress_orderby = 'price')")
    read = p.read(table, outs)
    assert read.inputs["order_by"] == ["price ASC NULLS LAST", "ts DESC NULLS FIRST"]
    assert p.diff(table, read.outs, checked(p, read.inputs, news)).changes is True


@pytest.mark.parametrize("over, field, fragment", [
    ({"hypertable": "{schema}.nope"}, "hypertable", "no such table"),
    ({"hypertable": "{schema}.plain"}, "hypertable", "not a hypertable"),
    ({"segment_by": ["symbl"]}, "segment_by", "no such column"),
    ({"order_by": ["price sideways"]}, "order_by", "not an ordering"),
    ({"order_by": ["prce"]}, "order_by", "no such column"),
])
def test_compression_settings_refused_at_check(tsdb_dsn: str, schema: str, over: dict, field: str,
                                               fragment: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".plain (ts timestamptz NOT NULL)')
    over = {k: v.format(schema=schema) if isinstance(v, str) else v for k, v in over.items()}
    news = {"hypertable": table, "segment_by": ["symbol"], "order_by": [], "resource_name": "cs", **over}
    found = failures(make(CompressionSettingsProvider, tsdb_dsn), news)
    assert [f for f, _ in found] == [field] and fragment in found[0][1] and "cs:" in found[0][1]
    assert settings_of(tsdb_dsn, schema) == (None, None)


# -- policies --------------------------------------------------------------------------------------

def test_compression_policy_lifecycle_same_job_id(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema, compress=True)
    p = make(CompressionPolicyProvider, tsdb_dsn)
    news = {"hypertable": table, "compress_after": "7 days", "resource_name": "cp"}
    created = p.create(checked(p, {}, news))
    outs = created.outs
    assert outs["adopted"] is False and outs["config"]["compress_after"] == "7 days"
    for spelling in ("1 week", "168 hours", "P7D"):
        assert p.diff(created.id, outs, checked(p, outs, {**news, "compress_after": spelling})).changes is False
    changed = checked(p, outs, {**news, "compress_after": "10 days", "schedule_interval": "2 hours",
                                "max_retries": 3})
    assert p.diff(created.id, outs, changed).changes is True
    updated = p.update(created.id, outs, changed).outs
    assert updated["job_id"] == outs["job_id"]
    assert jobs_of(tsdb_dsn, schema)[0][2] == "02:00:00"
    assert jobs_of(tsdb_dsn, schema)[0][3]["compress_after"] == "10 days"
    p.delete(created.id, updated)
    assert jobs_of(tsdb_dsn, schema) == []


def test_retention_policy_adopts_hand_made_policy_without_duplicating(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    hand = sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '90 days')",
                   (f'"{schema}".ticks',))[0][0]
    p = make(RetentionPolicyProvider, tsdb_dsn)
    created = p.create(checked(p, {}, {"hypertable": table, "drop_after": "30 days", "resource_name": "rp"}))
    assert created.outs["adopted"] is True and created.outs["job_id"] == hand
    assert [j[0] for j in jobs_of(tsdb_dsn, schema)] == [hand]
    assert jobs_of(tsdb_dsn, schema)[0][3]["drop_after"] == "30 days"


def test_retention_policy_drift_altered_and_removed(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(RetentionPolicyProvider, tsdb_dsn)
    news = {"hypertable": table, "drop_after": "30 days", "resource_name": "rp"}
    created = p.create(checked(p, {}, news))
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '5 hours')", (created.outs["job_id"],))
    read = p.read(created.id, created.outs)
    assert read.inputs["schedule_interval"] == "05:00:00"
    assert p.diff(created.id, read.outs, checked(p, read.inputs, news)).changes is True
    sql_run(tsdb_dsn, "SELECT delete_job(%s)", (created.outs["job_id"],))
    assert p.read(created.id, created.outs).id is None


@pytest.mark.parametrize("cls, over, field, fragment", [
    (RetentionPolicyProvider, {"hypertable": "{schema}.nope"}, "hypertable", "no such table"),
    (RetentionPolicyProvider, {"hypertable": "{schema}.plain"}, "hypertable", "not a hypertable"),
    (RetentionPolicyProvider, {"drop_after": "-1 day"}, "drop_after", "must be positive"),
    (RetentionPolicyProvider, {"drop_after": "thirty days"}, "drop_after", "not an interval"),
    (RetentionPolicyProvider, {"schedule_interval": "soon"}, "schedule_interval", "not an interval"),
    (CompressionPolicyProvider, {"compress_after": "7 days"}, "hypertable", "compression is not enabled"),
])
def test_policies_refused_at_check(tsdb_dsn: str, schema: str, cls: type, over: dict, field: str,
                                   fragment: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".plain (ts timestamptz NOT NULL)')
    over = {k: v.format(schema=schema) if isinstance(v, str) else v for k, v in over.items()}
    news = {"hypertable": table, "drop_after": "30 days", "resource_name": "pol", **over}
    found = failures(make(cls, tsdb_dsn), news)
    assert [f for f, _ in found] == [field], found
    assert fragment in found[0][1] and "pol:" in found[0][1]
    assert jobs_of(tsdb_dsn, schema) == []


def test_policy_on_table_declared_as_hypertable_in_same_program(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".plain (ts timestamptz NOT NULL)')
    p = make(RetentionPolicyProvider, tsdb_dsn)
    news = {"hypertable": f"{schema}.plain", "drop_after": "30 days", "resource_name": "rp",
            "peers": {"time_column": "ts"}}
    assert p.check({}, news).failures == []


def test_policy_guard_reports_and_removes_hand_added_policy(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    g = make(PolicyGuardProvider, tsdb_dsn)
    news = checked(g, {}, {"policies": {table: []}, "resource_name": "guard"})
    created = g.create(news)
    assert created.outs["policies"] == {table: []}
    hand = sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '90 days')",
                   (f'"{schema}".ticks',))[0][0]
    read = g.read(created.id, created.outs)
    assert read.outs["policies"] == {table: ["policy_retention"]}
    assert g.check({}, news).inputs["planned_operations"] == [
        f"DESTRUCTIVE: delete job {hand} (RetentionPolicy on {table}, declared by no resource)"]
    assert g.diff(created.id, read.outs, news).changes is True
    updated = g.update(created.id, read.outs, news)
    assert updated.outs["removed_job_ids"] == [hand]
    assert jobs_of(tsdb_dsn, schema) == []
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(3000,)]
