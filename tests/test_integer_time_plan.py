"""The hypertable planner's integer_now and hash-dimension operations, pure (no database)."""

from __future__ import annotations

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile.hypertables import (
    AddHashDimension,
    CreateHypertable,
    CreateIntegerNowFunction,
    HypertableState,
    SetIntegerNow,
    SetNumberPartitions,
    plan,
)
from lifecycle_resources.resources.args.hypertable import HypertableArgs

T = TableName("public", "metrics")
F = TableName("public", "unix_now")


def state(**over: object) -> HypertableState:
    return HypertableState(**{"table": "public.metrics", "time_column": "clock", "column_type": "int8",
                              "chunk_interval": "86400", "chunk_interval_value": 86400, **over})


def test_integer_time_plan_create_with_function_and_dimension() -> None:
    declared = state(integer_now="public.unix_now", integer_now_body="SELECT 1::bigint", space_column="itemid",
                     number_partitions=4)
    assert plan(declared, None, create_default_indexes=False) == [
        CreateHypertable(T, "clock", "int8", 86400, True, False, "itemid", 4),
        CreateIntegerNowFunction(F, "int8", "SELECT 1::bigint", None),
        SetIntegerNow(T, F, None)]
    assert plan(state(space_column="itemid", number_partitions=4), state()) == [AddHashDimension(T, "itemid", 4)]


def test_integer_time_plan_nothing_when_equal() -> None:
    both = state(integer_now="public.unix_now", integer_now_body="SELECT 1", space_column="d", number_partitions=2)
    assert plan(both, both) == []


def test_integer_time_plan_unmanaged_when_not_declared() -> None:
    actual = state(integer_now="public.other", integer_now_body="SELECT 2", space_column="d", number_partitions=2)
    assert plan(state(), actual) == []


def test_integer_time_plan_in_place_changes() -> None:
    actual = state(integer_now="public.other", integer_now_body="SELECT 2", space_column="d", number_partitions=2)
    declared = state(integer_now="public.unix_now", integer_now_body="SELECT 1", space_column="d",
                     number_partitions=6)
    assert plan(declared, actual) == [CreateIntegerNowFunction(F, "int8", "SELECT 1", "SELECT 2"),
                                      SetIntegerNow(T, F, "public.other"),
                                      SetNumberPartitions(T, "d", 6, 2)]
    body_only = plan(state(integer_now="public.unix_now", integer_now_body="SELECT 3"),
                     state(integer_now="public.unix_now", integer_now_body="SELECT 1"))
    assert body_only == [CreateIntegerNowFunction(F, "int8", "SELECT 3", "SELECT 1")]
    assert "replace the body of function public.unix_now() returning bigint" in body_only[0].describe()


def test_integer_time_plan_space_column_change_refused() -> None:
    with pytest.raises(InputError, match="cannot remove or change a dimension"):
        plan(state(space_column="e", number_partitions=2), state(space_column="d", number_partitions=2),
             resource="m")


def test_integer_time_args_integer_now_forms() -> None:
    args = HypertableArgs.model_validate({"table": "m", "time_column": "clock",
                                          "integer_now": {"function": "public.f", "sql": "SELECT 1"}})
    assert (args.integer_now, args.integer_now_body, args.chunk_interval) == ("public.f", "SELECT 1", None)
    assert HypertableArgs.model_validate({"table": "m", "time_column": "c", "integer_now": "f"}).integer_now == "f"
    with pytest.raises(ValueError, match="go together"):
        HypertableArgs.model_validate({"table": "m", "time_column": "c", "space_column": "d"})
