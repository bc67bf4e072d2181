"""CleanupRule provider against a real TimescaleDB, without the engine: check's refusals and match count, create,
read (no drift, drift), update in place, another stack's rule name refused, delete of its own rule only."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources import CleanupRuleProvider
from lifecycle_resources.resources.base import unfold
from tests.conftest import sql_run
from tests.test_policy_providers import checked, failures, make

pytestmark = pytest.mark.integration


def owner(stack: str) -> dict[str, str]:
    return {"project": "p", "stack": stack, "resource_type": "CleanupRule", "resource_name": "r"}


def table(dsn: str, schema: str) -> None:
    sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, price double precision, symbol text)')
    sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', CASE WHEN g % 10 = 0 '
                 "THEN -1 ELSE g END, 'S' FROM generate_series(1, 100) g")


def declared(schema: str, stack: str = "a", **extra: Any) -> dict[str, Any]:
    return {"table": f"{schema}.ticks", "invalid": {"price": "finite_positive"}, "resource_name": f"r-{schema}",
            "owner": owner(stack), **extra}


def test_cleanup_provider_lifecycle(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    table(tsdb_dsn, schema)
    name = f"r-{schema}"
    p = make(CleanupRuleProvider, tsdb_dsn)
    assert failures(p, declared(schema, invalid={"symbol": "finite"})) == [
        ("invalid.symbol", f"{name}: invalid.symbol='finite': {schema}.ticks.symbol is text; accepted: finite on a "
                           "numeric column (smallint .. double precision, numeric); not_null or allowed on any "
                           "column")]
    news = checked(p, {}, declared(schema))
    assert unfold(news)["planned_operations"] == [
        f"register cleanup rule {name} on {schema}.ticks: price finite_positive -> quarantine",
        f"cleanup rule {name} matches 10 rows of {schema}.ticks now"]

    created = p.create(news)
    assert created.id == name and unfold(created.outs)["matches"] == 10
    read = p.read(created.id, created.outs)
    assert unfold(read.inputs)["invalid"] == {"price": "finite_positive"}
    assert unfold(read.outs)["rule"] == "price finite_positive -> quarantine"

    sql_run(tsdb_dsn, "UPDATE lifecycle.cleanup_rules SET action = 'delete' WHERE rule_name = %s", (name,))
    drifted = unfold(p.read(created.id, created.outs).inputs)
    assert (drifted["action"], drifted["rule"]) == ("delete", "price finite_positive -> delete")
    assert p.diff(created.id, p.read(created.id, created.outs).outs, news).changes

    # Another stack cannot declare a rule of the same name; nothing changes in the database.
    assert failures(p, declared(schema, stack="b")) == [
        ("name", f"{name}: name='{name}': a cleanup rule of this name is already declared by stack p/a (rule names "
                 "are unique per database); accepted: another resource name")]

    changed = checked(p, created.outs, declared(schema, invalid={"price": "finite"}))
    diff = p.diff(created.id, created.outs, changed)
    assert diff.changes and not diff.replaces
    p.update(created.id, created.outs, changed)
    assert sql_run(tsdb_dsn, "SELECT spec, action FROM lifecycle.cleanup_rules WHERE rule_name = %s", (name,)) == [
        ({"checks": [{"column": "price", "check": "finite"}]}, "quarantine")]

    # Delete by another stack's resource of the same name leaves this stack's rule; its own delete removes it.
    p.delete(created.id, declared(schema, stack="b"))
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.cleanup_rules WHERE rule_name = %s", (name,)) == [(1,)]
    p.delete(created.id, changed)
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.cleanup_rules WHERE rule_name = %s", (name,)) == [(0,)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(100,)]
    assert p.read(created.id, created.outs).id is None  # gone: the next up records it again
