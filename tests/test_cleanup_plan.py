"""Cleanup rules without a database: the declared rule from a resource's inputs, its checks against the tables
as read, the condition it composes (psycopg.sql, rendered offline), the planner and the operations' words."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile import cleanup
from lifecycle_resources.reconcile.catalog import Column, TableSnapshot, TimeDimension
from lifecycle_resources.resources.cleanup_rule import _as_inputs


def snapshot(name: str, columns: dict[str, str], time_column: str | None = None) -> TableSnapshot:
    dim = TimeDimension(column=time_column, column_type=columns[time_column], interval_value=86_400_000_000,
                        interval_text="1 day") if time_column else None
    return TableSnapshot(table=TableName.parse(name), relkind="r", time_dimension=dim,
                         columns=tuple(Column(name=c, type_name=t, type_text=t) for c, t in columns.items()))


TICKS = snapshot("public.stream_data", {"ts": "timestamptz", "symbol": "text", "price": "float8", "qty": "int8"},
                 "ts")
OUTCOMES = snapshot("public.signal_outcomes", {"ts": "timestamptz", "signal_id": "int8", "note": "text"}, "ts")
SIGNALS = snapshot("public.signals", {"ts": "timestamptz", "signal_id": "int8", "id": "int4", "label": "text"})


def test_plan_invalid_rule_normalises_checks() -> None:
    rule = cleanup.declared("bad-ticks", "stream_data", invalid={
        "symbol": ["not_null", {"allowed": ["B", "A", "A"]}], "price": "finite_positive",
        "qty": {"range": {"min": 0, "max": 1_000_000}}})
    assert rule.table == "public.stream_data" and rule.kind == "invalid" and rule.action == "quarantine"
    assert [(c.column, c.check) for c in rule.checks] == [
        ("price", "finite_positive"), ("qty", "range"), ("symbol", "allowed"), ("symbol", "not_null")]
    assert rule.checks[2].values == ("A", "B")
    assert rule.describe() == ("price finite_positive, qty range [0, 1e+06], symbol allowed ['A', 'B'], "
                               "symbol not_null -> quarantine")
    # The same rule however the checks were spelled or ordered.
    again = cleanup.declared("bad-ticks", "public.stream_data", invalid={
        "qty": {"range": [0, 1_000_000]}, "price": ["finite_positive"],
        "symbol": [{"allowed": ["A", "B"]}, "not_null"]})
    assert again == rule
    # Numbers arrive from the engine as floats: a whole one is recorded as the int it was written as.
    engine = cleanup.declared("bad-ticks", "stream_data", invalid={"qty": {"range": [0.0, 1e6]}, "price": "finite"})
    assert engine.spec()["checks"][1] == {"column": "qty", "check": "range", "min": 0, "max": 1_000_000}
    assert type(engine.spec()["checks"][1]["min"]) is int


def test_plan_orphan_rule_defaults() -> None:
    rule = cleanup.declared("orphans", "public.signal_outcomes", orphans_of=("public.signals", ["signal_id"]))
    assert (rule.parent, rule.keys, rule.parent_keys, rule.grace) == (
        "public.signals", ("signal_id",), ("signal_id",), "1 day")
    resolved = cleanup.resolved(rule, OUTCOMES, SIGNALS)
    assert resolved.time_column == "ts"
    assert resolved.describe() == "orphans of public.signals (signal_id) older than 1 day (ts) -> quarantine"


@pytest.mark.parametrize("inputs, field, fragment", [
    ({"invalid": {"price": "positive"}}, "invalid.price", "unknown check"),
    ({"invalid": {"price": {"range": [5, 1]}}}, "invalid.price", "min 5 is above max 1"),
    ({"invalid": {"price": {"range": [None, None]}}}, "invalid.price", "range needs numeric bounds"),
    ({"invalid": {"price": {"range": ["0", 1]}}}, "invalid.price", "range needs numeric bounds"),
    ({"invalid": {"symbol": {"allowed": []}}}, "invalid.symbol", "would match every row"),
    ({"invalid": {}}, "invalid", "not a mapping"),
    ({"invalid": "price IS NULL"}, "invalid", "not a mapping"),
    ({}, "invalid", "neither orphans_of nor invalid"),
    ({"invalid": {"price": "finite"}, "orphans_of": ("public.signals", ["id"])}, "orphans_of", "either"),
    ({"orphans_of": "public.signals"}, "orphans_of", "not a parent table"),
    ({"orphans_of": ("public.signals", [])}, "orphans_of", "keys must be column names"),
    ({"orphans_of": ("public.signals", ["a", "b"], ["x"])}, "orphans_of", "as many for the parent"),
    ({"orphans_of": ("public.signals", ["id"]), "grace": 1.5}, "grace", "not an interval"),
    ({"invalid": {"price": "finite"}, "grace": "1 day"}, "grace", "only orphan rules"),
    ({"invalid": {"price": "finite"}, "action": "drop"}, "action", "unknown action"),
])
def test_plan_refuses_bad_inputs(inputs: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        cleanup.declared("r1", "public.stream_data", **inputs)
    assert err.value.field == field and fragment in str(err.value)
    assert str(err.value).startswith("r1: ") and err.value.accepted


def test_plan_refuses_a_bad_table_name() -> None:
    with pytest.raises(InputError, match=r"r1: table='a\.b\.c'"):
        cleanup.declared("r1", "a.b.c", invalid={"x": "not_null"})


@pytest.mark.parametrize("rule, table, parent, field, fragment", [
    (cleanup.declared("r", "public.stream_data", invalid={"nope": "not_null"}), TICKS, None, "invalid",
     "has no such column"),
    (cleanup.declared("r", "public.stream_data", invalid={"symbol": "finite"}), TICKS, None, "invalid.symbol",
     "public.stream_data.symbol is text"),
    (cleanup.declared("r", "public.stream_data", invalid={"symbol": {"range": [0, 1]}}), TICKS, None,
     "invalid.symbol", "is text"),
    (cleanup.declared("r", "public.stream_data", invalid={"price": "finite"}), None, None, "table", "no such table"),
    (cleanup.declared("r", "public.stream_data", invalid={"price": "finite"}),
     TICKS.model_copy(update={"relkind": "v"}), None, "table", "is a view, not a table"),
    (cleanup.declared("r", "public.signal_outcomes", orphans_of=("public.signals", ["signal_id"])), OUTCOMES, None,
     "orphans_of", "no such parent table"),
    (cleanup.declared("r", "public.signal_outcomes", orphans_of=("public.signals", ["nope"])), OUTCOMES, SIGNALS,
     "orphans_of", "has no such column"),
    (cleanup.declared("r", "public.signal_outcomes", orphans_of=("public.signals", ["note"], ["id"])), OUTCOMES,
     SIGNALS, "orphans_of", "signal_outcomes.note is text but public.signals.id is int4"),
    (cleanup.declared("r", "public.signals", orphans_of=("public.signal_outcomes", ["id"], ["signal_id"])), SIGNALS,
     OUTCOMES, "time_column", "is not a hypertable"),
    (cleanup.declared("r", "public.signal_outcomes", orphans_of=("public.signals", ["signal_id"]),
                      time_column="note"), OUTCOMES, SIGNALS, "time_column", "is text"),
])
def test_plan_refuses_rules_the_tables_cannot_take(rule: cleanup.Rule, table: TableSnapshot | None,
                                                   parent: TableSnapshot | None, field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        cleanup.resolved(rule, table, parent)
    assert err.value.field == field and fragment in str(err.value) and err.value.accepted


def test_plan_condition_of_invalid_rule() -> None:
    rule = cleanup.declared("r", "public.stream_data", invalid={
        "price": "finite_positive", "symbol": ["not_null", {"allowed": ["A", "B"]}], "qty": {"range": [0, None]}})
    assert cleanup.condition(rule).as_string(None) == (
        "(\"t\".\"price\"::text IN ('NaN', 'Infinity', '-Infinity') OR \"t\".\"price\" <= 0 "
        "OR \"t\".\"qty\" < '0'::numeric OR NOT (\"t\".\"symbol\"::text = ANY ('{A,B}'::text[])) "
        "OR \"t\".\"symbol\" IS NULL)")


def test_plan_condition_of_orphan_rule() -> None:
    rule = cleanup.resolved(cleanup.declared("r", "public.signal_outcomes",
                                             orphans_of=("public.signals", ["signal_id"], ["id"]), grace="2 days"),
                            OUTCOMES, SIGNALS)
    assert cleanup.condition(rule).as_string(None) == (
        "(\"t\".\"signal_id\" IS NOT NULL AND \"t\".\"ts\" < now() - '2 days'::interval AND NOT EXISTS "
        "(SELECT 1 FROM \"public\".\"signals\" p WHERE \"p\".\"id\" = \"t\".\"signal_id\"))")


def test_plan_condition_quotes_what_it_is_given() -> None:
    """A column or value that is SQL text stays a quoted name or a literal: never executed."""
    attack = "x); DROP TABLE t; --"
    rule = cleanup.declared("r", "public.stream_data", invalid={attack: {"allowed": [attack]}})
    text = cleanup.condition(rule).as_string(None)
    assert text == ("(NOT (\"t\".\"x); DROP TABLE t; --\"::text = ANY "
                    "('{\"x); DROP TABLE t; --\"}'::text[])))")


def test_plan_register_update_nothing() -> None:
    rule = cleanup.declared("r", "public.stream_data", invalid={"price": "finite"})
    changed = cleanup.declared("r", "public.stream_data", invalid={"price": "finite_positive"}, action="delete")
    assert cleanup.plan(rule, None) == [cleanup.RegisterRule(rule)]
    assert cleanup.plan(rule, rule) == []
    assert cleanup.plan(changed, rule) == [cleanup.UpdateRule(changed, rule)]
    assert cleanup.UpdateRule(changed, rule).describe() == (
        "update cleanup rule r on public.stream_data: price finite -> quarantine => price finite_positive -> delete")
    assert cleanup.Matches(rule, 42).describe() == "cleanup rule r matches 42 rows of public.stream_data now"
    assert "not counted" in cleanup.Matches(rule, None).describe()
    assert "no row is removed" in cleanup.UnregisterRule("r", "public.stream_data").describe()


@pytest.mark.parametrize("rule", [
    cleanup.declared("r", "public.stream_data", invalid={"price": ["finite_positive", {"range": [None, 10]}],
                                                         "symbol": {"allowed": ["A"]}}, action="delete"),
    cleanup.declared("r", "public.signal_outcomes", orphans_of=("public.signals", ["signal_id"], ["id"]),
                     grace="2 days", time_column="ts"),
])
def test_plan_record_round_trip(rule: cleanup.Rule) -> None:
    """What is recorded reads back as the same rule, and in the inputs' own form declares it again (drift)."""
    assert cleanup.Rule.from_record(rule.name, rule.table, rule.kind, rule.spec(), rule.action) == rule
    inputs = _as_inputs(rule)
    again = cleanup.declared("r", inputs["table"], orphans_of=inputs["orphans_of"], invalid=inputs["invalid"],
                             grace=inputs["grace"], time_column=inputs["time_column"], action=inputs["action"])
    assert again == rule
