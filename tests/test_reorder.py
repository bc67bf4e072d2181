"""ReorderPolicy provider against a real TimescaleDB: create, no change, in place keeping the job id, drift,
adoption and ownership, delete of its own job only, refusals with nothing changed; the reorder planner, pure."""

from __future__ import annotations

import pytest

from lifecycle_resources import ReorderPolicyProvider
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile import reorder
from lifecycle_resources.reconcile.intervals import Window
from lifecycle_resources.resources.base import unfold
from lifecycle_resources.resources.policy_guard import PolicyGuardProvider
from tests.conftest import sql_run
from tests.test_policy_providers import checked, failures, hypertable, make

HOUR = 3_600_000_000


def reorder_jobs(dsn: str, schema: str) -> list[tuple]:
    return sql_run(dsn, "SELECT job_id, config->>'index_name', schedule_interval::text, max_retries "
                        "FROM timescaledb_information.jobs WHERE hypertable_schema = %s "
                        "AND proc_name = 'policy_reorder' ORDER BY job_id", (schema,))


def table_with_indexes(dsn: str, schema: str) -> str:
    table = hypertable(dsn, schema, rows=200)
    sql_run(dsn, f'CREATE INDEX ticks_symbol_ts ON "{schema}".ticks (symbol, ts DESC)')
    return table


def decl(table: str, **over: object) -> dict:
    return {"hypertable": table, "index": "ticks_symbol_ts", "resource_name": "reorder",
            "owner": {"project": "p", "stack": "s", "resource_type": "ReorderPolicy", "resource_name": "reorder"},
            **over}


def state(**over: object) -> reorder.ReorderState:
    return reorder.ReorderState(**{"hypertable": "public.t", "index": "i", **over})


def test_reorder_plan_pure() -> None:
    t = TableName("public", "t")
    assert reorder.plan(state(), []) == [reorder.AddReorder(t, state())]
    read = state(job_id=1001, schedule_interval=Window(0, 24 * HOUR), max_retries=-1, scheduled=True)
    assert reorder.plan(state(), [read]) == []  # undeclared schedule fields are not managed
    changed = state(index="j", schedule_interval=Window(0, 12 * HOUR))
    ops = reorder.plan(changed, [read, state(job_id=1002)])
    assert ops == [reorder.AlterReorder(1001, changed, read), reorder.DeleteReorder(1002, t)]
    assert ops[0].describe() == "alter job 1001 (ReorderPolicy): index, schedule_interval"


@pytest.mark.integration
def test_reorder_create_update_drift_delete(tsdb_dsn: str, schema: str) -> None:
    table = table_with_indexes(tsdb_dsn, schema)
    p = make(ReorderPolicyProvider, tsdb_dsn)
    news = checked(p, {}, decl(table))
    assert news["planned_operations"] == [f"add ReorderPolicy on {table} (index ticks_symbol_ts)"]
    assert reorder_jobs(tsdb_dsn, schema) == []
    created = p.create(news)
    job = created.outs["job_id"]
    assert [r[:2] for r in reorder_jobs(tsdb_dsn, schema)] == [(job, "ticks_symbol_ts")]
    assert p.diff(created.id, created.outs, checked(p, created.outs, decl(table))).changes is False
    read = p.read(created.id, created.outs)
    assert p.diff(created.id, read.outs, checked(p, read.inputs, decl(table))).changes is False

    # In place: another index and a schedule; same job.
    moved = checked(p, created.outs, decl(table, index="ticks_ts_idx", schedule_interval="12 hours",
                                          max_retries=3))
    diff = p.diff(created.id, created.outs, moved)
    assert diff.changes is True and diff.replaces == []
    outs = p.update(created.id, created.outs, moved).outs
    assert reorder_jobs(tsdb_dsn, schema) == [(job, "ticks_ts_idx", "12:00:00", 3)]
    assert outs["schedule_interval"] == "12 hours" and outs["job_id"] == job
    same = checked(p, outs, decl(table, index="ticks_ts_idx", schedule_interval="720 minutes", max_retries=3))
    assert p.diff(created.id, outs, same).changes is False

    # Drift by hand, reported by read, converged by update.
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '2 days')", (job,))
    read = p.read(created.id, outs)
    assert read.outs["schedule_interval"] == "2 days"
    assert p.diff(created.id, read.outs, checked(p, read.inputs, same)).changes is True
    p.update(created.id, read.outs, checked(p, read.inputs, same))
    assert reorder_jobs(tsdb_dsn, schema)[0][2] == "12:00:00"

    # Removed by hand: gone; delete removes only its own job and keeps the rows.
    p.delete(created.id, outs)
    assert reorder_jobs(tsdb_dsn, schema) == []
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(200,)]


@pytest.mark.integration
def test_reorder_adopts_existing_and_respects_other_owner(tsdb_dsn: str, schema: str) -> None:
    table = table_with_indexes(tsdb_dsn, schema)
    hand = sql_run(tsdb_dsn, "SELECT add_reorder_policy(%s::regclass, 'ticks_symbol_ts')", (f'"{schema}".ticks',))
    p = make(ReorderPolicyProvider, tsdb_dsn)
    news = checked(p, {}, decl(table))
    assert any("adopt" in op for op in news["planned_operations"]), news["planned_operations"]
    created = p.create(news)
    assert created.outs["adopted"] is True and created.outs["job_id"] == hand[0][0]
    # Another stack's resource is refused without adopt; with adopt it takes over, and the first one's delete
    # then leaves the job alone.
    other = decl(table, owner={"project": "p", "stack": "other", "resource_type": "ReorderPolicy",
                               "resource_name": "theirs"}, resource_name="theirs")
    refused = failures(p, other)
    assert [f for f, _ in refused] == ["adopt"], refused
    p.create(checked(p, {}, {**other, "adopt": True}))
    p.delete(created.id, created.outs)
    assert [r[0] for r in reorder_jobs(tsdb_dsn, schema)] == [hand[0][0]]


@pytest.mark.integration
@pytest.mark.parametrize("over, field, fragment", [
    ({"index": "nope"}, "index", "no such index"),
    ({"hypertable": "{schema}.missing"}, "hypertable", "no such table"),
    ({"schedule_interval": "often"}, "schedule_interval", "not an interval"),
    ({"max_retries": -2}, "max_retries", "greater than or equal to -1"),
])
def test_reorder_refused_at_check(tsdb_dsn: str, schema: str, over: dict, field: str, fragment: str) -> None:
    table = table_with_indexes(tsdb_dsn, schema)
    over = {k: v.format(schema=schema) if isinstance(v, str) else v for k, v in over.items()}
    found = failures(make(ReorderPolicyProvider, tsdb_dsn), decl(table, **over))
    assert [f for f, _ in found] == [field], found
    assert fragment in found[0][1] and "reorder" in found[0][1]
    assert reorder_jobs(tsdb_dsn, schema) == []


@pytest.mark.integration
def test_reorder_policy_guard_sees_reorder_jobs(tsdb_dsn: str, schema: str) -> None:
    table = table_with_indexes(tsdb_dsn, schema)
    g = make(PolicyGuardProvider, tsdb_dsn)
    hand = sql_run(tsdb_dsn, "SELECT add_reorder_policy(%s::regclass, 'ticks_symbol_ts')",
                   (f'"{schema}".ticks',))[0][0]
    planned = checked(g, {}, {"policies": {table: []}, "resource_name": "guard"})["planned_operations"]
    assert planned == [f"DESTRUCTIVE: delete job {hand} (ReorderPolicy on {table}, declared by no resource)"]
    declared = checked(g, {}, {"policies": {table: ["policy_reorder"]}, "resource_name": "guard"})
    assert declared["planned_operations"] == []
    assert unfold(declared)["policies"] == {table: ["policy_reorder"]}


@pytest.mark.integration
def test_reorder_on_table_the_program_makes_a_hypertable(tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".plain (ts timestamptz NOT NULL, id int, PRIMARY KEY (id, ts))')
    p = make(ReorderPolicyProvider, tsdb_dsn)
    base = {"hypertable": f"{schema}.plain", "resource_name": "reorder", "peers": {"time_column": "ts"}}
    assert p.check({}, {**base, "index": "plain_ts_idx"}).failures == []  # its default index, made at up
    assert p.check({}, {**base, "index": "plain_pkey"}).failures == []
    found = failures(p, {**base, "index": "nope"})
    assert [f for f, _ in found] == ["index"] and "plain_pkey, plain_ts_idx" in found[0][1], found
