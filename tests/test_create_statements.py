"""Statements of a create and of a check, counted by db.metering: each costs its parse, plan and execution on
a server that competes with the engine for the same cores, and the provider's database time in `up` is mostly
theirs, so a regression in their number shows here. (Round trips alone are not the cost: pipeline mode cut them
by a fifth and made a create slower on both servers; see README, Performance.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from lifecycle_resources import CompressionPolicyProvider, CompressionSettingsProvider, RetentionPolicyProvider
from lifecycle_resources.db import metering, pool
from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile import compression, ownership
from tests.conftest import fresh_server, sql_run
from tests.test_hypertable_provider import inputs, make_table, provider
from tests.test_policy_providers import checked, jobs_of, make

pytestmark = pytest.mark.integration


def owner(kind: str) -> dict[str, str]:
    return {"project": "p", "stack": "s", "resource_type": kind, "resource_name": kind}


def ledger(dsn: str) -> None:
    """The ownership ledger as after the stack's first create (its creation is once per database)."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        ownership.ensure_ledger(conn)


def metered_create(p: Any, news: dict[str, Any], kind: str) -> int:
    ins = checked(p, {}, news)
    with metering.metered() as meter:
        p.create({**ins, "owner": owner(kind)})
    return meter.statements


def steps_for(dsn: str, table: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """The four resources of a table, as the bench declares them."""
    return [("Hypertable", provider(dsn), inputs(table)),
            ("CompressionSettings", make(CompressionSettingsProvider, dsn),
             {"hypertable": table, "segmentby": ["symbol"], "resource_name": "cs"}),
            ("CompressionPolicy", make(CompressionPolicyProvider, dsn),
             {"hypertable": table, "compress_after": "7 days", "resource_name": "cp"}),
            ("RetentionPolicy", make(RetentionPolicyProvider, dsn),
             {"hypertable": table, "drop_after": "30 days", "resource_name": "rp"})]


def test_statements_create_of_each_kind(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    ledger(tsdb_dsn)
    table = make_table(tsdb_dsn, schema)
    counted = {kind: metered_create(p, news, kind) for kind, p, news in steps_for(tsdb_dsn, table)}
    assert counted == EXPECTED, counted


def test_statements_check_and_create_in_an_up(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What `up` pays per resource: check then create of each kind, in one process with pooling on (as in the
    provider host), on a second new table once the first was created (connecting and the once-per-command probes
    are paid by then), over an empty table (as in the bench: no rows to measure, no chunk to count)."""
    ledger(tsdb_dsn)
    assert up_counts(tsdb_dsn, schema, monkeypatch) == EXPECTED_IN_AN_UP


def test_statements_check_and_create_in_an_up_without_the_lifecycle_schema(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The lifecycle schema is optional: on a database that has neither it nor the ownership ledger, the same `up`
    creates everything, records the owners (the ledger made by the first create) and registers nothing."""
    with fresh_server(tmp_path / "server") as dsn:
        sql_run(dsn, "CREATE SCHEMA s")
        counted = up_counts(dsn, "s", monkeypatch)
        assert sql_run(dsn, "SELECT to_regnamespace('lifecycle')") == [(None,)]
        assert sql_run(dsn, f'SELECT count(*) FROM "{ownership.SCHEMA}"."{ownership.TABLE}"') == [(8,)]
        assert sorted(j[1] for j in jobs_of(dsn, "s")) == ["policy_compression", "policy_compression",
                                                          "policy_retention", "policy_retention"]
    assert counted == EXPECTED_IN_AN_UP_WITHOUT_SCHEMA, counted


def up_counts(dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, int]]:
    """(check, create) statements of each kind on the second of two new empty tables, pooled as in an `up`."""
    tables = [make_table(dsn, schema, rows=0, name=name) for name in ("first", "second")]
    monkeypatch.setenv(pool.POOL_ENV, "1")
    # No idle check or closing of the pooled connection in between, however slow the machine: counted apart.
    monkeypatch.setattr(pool, "PING_AFTER", 600.0)
    monkeypatch.setattr(pool, "IDLE_SECONDS", 600.0)
    try:
        counted: dict[str, tuple[int, int]] = {}
        for table in tables:
            for kind, p, news in steps_for(dsn, table):
                with metering.metered() as check_meter:
                    ins = checked(p, {}, {**news, "owner": owner(kind)})
                with metering.metered() as create_meter:
                    p.create(ins)
                counted[kind] = (check_meter.statements, create_meter.statements)
    finally:
        pool.close_all()
        pool.pool_for(dsn).reaper = None  # this one sleeps 300 s: the next pooled use starts its own
    return counted


# Pooling is off in tests: each create opens its connection, and these counts include what connecting asks
# (the server's TimescaleDB version and schema; once per command in the provider host). A create's BEGIN and
# COMMIT are counted (2 of each count here; db.metering.MeteredConnection: not counted before c. 2026-11-30). The lifecycle schema is installed (as in the demo's stack, and in a test run once any test installed
# it): the policies then register in it (with the owner's record, one statement), after asking whether it is there
# (on each connection here, with the plan's reads: catalog.presence_read; once per command in the provider host),
# and retention reads its archive declaration. (Were 10, 10, 12 and 14 before catalog.bundle; 10 and 12 for the
# policies while the lifecycle schema was asked about in statements of their own.)
EXPECTED = {"Hypertable": 10, "CompressionSettings": 10, "CompressionPolicy": 11, "RetentionPolicy": 12}
# (check, create) of a resource in an `up` (the provider host: pooled, probes once per command); a check sends no
# BEGIN, a create's BEGIN and COMMIT are 2 of its count. Counted without them, before this was pinned (main
# 3dfb318): (3, 8), (8, 7), (7, 10), (10, 13); then (2, 7), (4, 7), (5, 8), (6, 9) until the reads of a plan went
# out as one statement (catalog.bundle: README, "One read per check, one re-read per create"); then (1, 4), (2, 4),
# (1, 5), (1, 5).
EXPECTED_IN_AN_UP = {"Hypertable": (1, 6), "CompressionSettings": (2, 6), "CompressionPolicy": (1, 7),
                     "RetentionPolicy": (1, 7)}
# Without the lifecycle schema a policy asks again whether it is there (only its presence is remembered: a
# LifecycleSchema of the same `up` may create it meanwhile; its absence is remembered for one engine call), in the
# statement of its plan's reads (catalog.presence_read), and records its owner in the statement that reads its job
# back. (Were (1, 8) and (2, 9), BEGIN and COMMIT counted, while it asked in statements of its own and recorded
# the owner alone.)
EXPECTED_IN_AN_UP_WITHOUT_SCHEMA = {"Hypertable": (1, 6), "CompressionSettings": (2, 6), "CompressionPolicy": (1, 6),
                                    "RetentionPolicy": (1, 6)}


def test_ownership_record_refused_rolls_back_create_and_names_resource(tsdb_dsn: str, schema: str) -> None:
    """The owner's INSERT comes after the job is added: refused (here by a trigger), the error names the resource
    and nothing of the create is kept (no job)."""
    ledger(tsdb_dsn)
    table = make_table(tsdb_dsn, schema)
    provider(tsdb_dsn).create(checked(provider(tsdb_dsn), {}, inputs(table)))
    sql_run(tsdb_dsn, f'CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql SET search_path = '
                      "pg_catalog AS $$ BEGIN RAISE EXCEPTION 'ledger refused %', NEW.object_key; END $$")
    sql_run(tsdb_dsn, f'CREATE TRIGGER refuse_{schema} BEFORE INSERT ON "{ownership.SCHEMA}"."{ownership.TABLE}" '
                      f"FOR EACH ROW WHEN (NEW.object_key = '{table}') "
                      f'EXECUTE FUNCTION "{schema}".refuse()')
    try:
        sql_run(tsdb_dsn, f'ALTER TABLE "{schema}".ticks SET (timescaledb.compress)')
        p = make(CompressionPolicyProvider, tsdb_dsn)
        ins = checked(p, {}, {"hypertable": table, "compress_after": "7 days", "resource_name": "cp"})
        with pytest.raises(LifecycleError, match=rf"CompressionPolicy cp: .*ledger refused {table}"):
            p.create({**ins, "owner": owner("CompressionPolicy")})
        assert jobs_of(tsdb_dsn, schema) == []
    finally:
        sql_run(tsdb_dsn, f'DROP TRIGGER refuse_{schema} ON "{ownership.SCHEMA}"."{ownership.TABLE}"')


def test_statements_prepared_kept_across_compression_settings_alter(tsdb_dsn: str, schema: str) -> None:
    """psycopg deallocates every prepared statement of a connection on any ALTER: the settings' ALTER TABLE .. SET
    made every later read of an `up` be prepared and planned again, once per table (the reads of one plan, sent as
    one statement, are each used once per table). It changes no column, so the statements are kept."""
    table = TableName.parse(make_table(tsdb_dsn, schema, rows=0))
    sql_run(tsdb_dsn, f"SELECT create_hypertable('{table.qualified}', by_range('ts'))")
    with psycopg.connect(tsdb_dsn, autocommit=True, prepare_threshold=0) as conn:
        conn.execute("SELECT %s::int", (1,))
        state = compression.CompressionState(hypertable=table.qualified, enabled=True, segment_by=(), order_by=("ts DESC",))
        compression.apply_settings(conn, table, state)
        kept = conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int'")
        assert kept.fetchone() == (1,)
