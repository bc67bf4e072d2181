"""What TimescaleDB accepts, we accept: spellings and column types seen in real schemas that main refused.

Each case is checked against the real server first (its own SQL accepts it), then through our providers."""

from __future__ import annotations

import pytest

from lifecycle_resources import CompressionPolicyProvider, HypertableProvider, RetentionPolicyProvider
from lifecycle_resources.resources.base import unfold
from tests.conftest import sql_run
from tests.test_policy_providers import checked, failures, hypertable, jobs_of, make

pytestmark = pytest.mark.integration
THIRTY_DAYS_MICROS = 2_592_000_000_000


def dimension(dsn: str, schema: str, name: str) -> tuple:
    # A uuid dimension reads as integer microseconds on 2.23, as an interval on 2.26.
    return sql_run(dsn, "SELECT column_name, coalesce(time_interval, justify_hours(integer_interval * interval "
                        "'1 microsecond'))::text FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                        "AND hypertable_name = %s", (schema, name))[0]


@pytest.mark.parametrize("spelling", [THIRTY_DAYS_MICROS, str(THIRTY_DAYS_MICROS)])
def test_hypertable_chunk_interval_integer_micros_on_timestamptz(tsdb_dsn: str, schema: str,
                                                                  spelling: int | str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".theirs (ts timestamptz NOT NULL, v int)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".theirs', by_range('ts', {THIRTY_DAYS_MICROS}))")
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ours (ts timestamptz NOT NULL, v int)')
    p = make(HypertableProvider, tsdb_dsn)
    news = checked(p, {}, {"table": f"{schema}.ours", "time_column": "ts", "chunk_interval": spelling,
                           "resource_name": "ours"})
    assert unfold(news)["chunk_interval_value"] == THIRTY_DAYS_MICROS
    outs = p.create(news).outs
    assert dimension(tsdb_dsn, schema, "ours") == dimension(tsdb_dsn, schema, "theirs") == ("ts", "30 days")
    # '30 days' and '1 month' are what TimescaleDB stores for it: no change.
    for same in ("30 days", "1 month", "720 hours"):
        again = checked(p, outs, {**news, "chunk_interval": same})
        assert p.diff("x", outs, again).changes is False, same
    assert p.diff("x", outs, checked(p, outs, {**news, "chunk_interval": THIRTY_DAYS_MICROS + 1})).changes


@pytest.mark.parametrize("bad", [0, -5, "12x"])
def test_hypertable_chunk_interval_bad_integer_refused(tsdb_dsn: str, schema: str, bad: int | str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ours (ts timestamptz NOT NULL, v int)')
    p = make(HypertableProvider, tsdb_dsn)
    failures = p.check({}, {"table": f"{schema}.ours", "time_column": "ts", "chunk_interval": bad,
                            "resource_name": "ours"}).failures
    assert [f.property for f in failures] == ["chunk_interval"], failures
    assert "ours" in failures[0].reason and "microseconds" in failures[0].reason


def test_hypertable_uuid_v7_time_column(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (id uuid NOT NULL, body text)')
    p = make(HypertableProvider, tsdb_dsn)
    news = checked(p, {}, {"table": f"{schema}.events", "time_column": "id", "chunk_interval": "1 day",
                           "resource_name": "events"})
    outs = p.create(news).outs
    assert dimension(tsdb_dsn, schema, "events") == ("id", "1 day")
    assert outs["column_type"] == "uuid"
    read = p.read(f"{schema}.events", outs)
    assert p.diff("x", read.outs, checked(p, read.inputs, news)).changes is False
    # Policies on it take intervals, as TimescaleDB's own add_*_policy do.
    sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".events SET (timescaledb.compress)')
    c = make(CompressionPolicyProvider, tsdb_dsn)
    c.create(checked(c, {}, {"hypertable": f"{schema}.events", "compress_after": "7 days", "resource_name": "cp"}))
    assert sql_run(tsdb_dsn, "SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema = %s", (schema,)) == [("7 days",)]


@pytest.mark.native_only("2.23 cannot alter_job a retention policy on a uuid time column; 2.26 can")
def test_retention_policy_on_uuid_time_column(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (id uuid NOT NULL, body text)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".events', by_range('id', interval '1 day'))")
    r = make(RetentionPolicyProvider, tsdb_dsn)
    outs = r.create(checked(r, {}, {"hypertable": f"{schema}.events", "drop_after": "90 days",
                                    "resource_name": "ret"})).outs
    assert sql_run(tsdb_dsn, "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema = %s", (schema,)) == [("90 days",)]
    changed = checked(r, outs, {"hypertable": f"{schema}.events", "drop_after": "60 days", "resource_name": "ret"})
    assert r.update(str(outs["job_id"]), outs, changed).outs["job_id"] == outs["job_id"]


@pytest.mark.embedded_only("2.23 refuses alter_job on a retention policy of a uuid time column")
def test_retention_policy_on_uuid_refused_at_check_on_2_23(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (id uuid NOT NULL, body text)')
    sql_run(tsdb_dsn, f"SELECT create_hypertable('\"{schema}\".events', by_range('id', interval '1 day'))")
    found = failures(make(RetentionPolicyProvider, tsdb_dsn),
                     {"hypertable": f"{schema}.events", "drop_after": "90 days", "resource_name": "ret"})
    assert [f for f, _ in found] == ["hypertable"], found
    assert "ret:" in found[0][1] and "unsupported time type uuid" in found[0][1] and "2.26" in found[0][1]
    assert jobs_of(tsdb_dsn, schema) == []


def _policy_news(table: str, drop: str, compress: str, **over: object) -> dict:
    return {"hypertable": table, "drop_after": drop, "resource_name": "ret",
            "peers": {"compress_after": compress, "compression_settings": True}, **over}


def test_retention_equal_to_compression_warns_not_fails(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema, rows=10)
    r = make(RetentionPolicyProvider, tsdb_dsn)
    news = checked(r, {}, _policy_news(table, "7 days", "1 week"))
    planned = " ".join(news["planned_operations"])
    assert "WARNING" in planned and "drop_after (7 days)" in planned and "allow_drop_before_compress" in planned
    # The resource may say it means it: no warning then.
    quiet = checked(r, {}, _policy_news(table, "7 days", "1 week", allow_drop_before_compress=True))
    assert "WARNING" not in " ".join(quiet["planned_operations"])
    r.create(news)
    assert sql_run(tsdb_dsn, "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema = %s", (schema,)) == [("7 days",)]
