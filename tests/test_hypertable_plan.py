"""The hypertable planner is pure: (declared, actual) -> operations, tested without a database."""

from __future__ import annotations

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.reconcile.hypertables import (
    CreateHypertable,
    HypertableState,
    RecreateOnTimeColumn,
    SetChunkInterval,
    plan,
)
from lifecycle_resources.identifiers import TableName

DAY = 86_400_000_000
T = TableName("public", "stream_data")


def state(column: str = "ts", value: int = DAY, text: str = "1 day") -> HypertableState:
    return HypertableState(table="public.stream_data", time_column=column, column_type="timestamptz",
                           chunk_interval=text, chunk_interval_value=value)


def test_hypertable_plan_creates_when_absent() -> None:
    assert plan(state(), None) == [CreateHypertable(T, "ts", "timestamptz", DAY, True)]


def test_hypertable_plan_create_keeps_migrate_flag() -> None:
    assert plan(state(), None, migrate_data=False)[0].migrate_data is False


def test_hypertable_plan_nothing_when_equal_whatever_the_spelling() -> None:
    assert plan(state(text="24 hours"), state(text="1 day")) == []


def test_hypertable_plan_sets_chunk_interval_in_place() -> None:
    assert plan(state(value=2 * DAY), state()) == [SetChunkInterval(T, "timestamptz", 2 * DAY, DAY)]


def test_hypertable_plan_refuses_time_column_change_without_opt_in() -> None:
    with pytest.raises(InputError, match="allow_time_column_change"):
        plan(state(column="created_at"), state())


def test_hypertable_plan_time_column_change_with_opt_in_copies() -> None:
    ops = plan(state(column="created_at"), state(), allow_time_column_change=True)
    assert ops == [RecreateOnTimeColumn(T, "created_at", "ts", "timestamptz", DAY)]


@pytest.mark.parametrize("op", [
    CreateHypertable(T, "ts", "timestamptz", DAY, True),
    SetChunkInterval(T, "timestamptz", 2 * DAY, DAY),
    RecreateOnTimeColumn(T, "created_at", "ts", "timestamptz", DAY),
])
def test_hypertable_operations_describe_themselves(op: object) -> None:
    text = op.describe()  # type: ignore[attr-defined]
    assert "public.stream_data" in text and "\n" not in text
