"""The hypertable planner is pure: (declared, actual) -> operations, tested without a database."""

from __future__ import annotations

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.reconcile.hypertables import (
    CreateHypertable,
    HypertableState,
    SetChunkInterval,
    plan,
)
from lifecycle_resources.reconcile.intervals import Window
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


@pytest.mark.parametrize("opt_in", [False, True])
def test_hypertable_plan_refuses_time_column_change_with_procedure(opt_in: bool) -> None:
    # allow_time_column_change used to copy rows into CREATE TABLE .. LIKE, losing keys, indexes, grants,
    # triggers, compression and policies: no flag makes the planner copy any more.
    with pytest.raises(InputError) as err:
        plan(state(column="created_at"), state(), resource="ticks")
    text = str(err.value)
    assert err.value.field == "time_column" and err.value.value == "created_at" and text.startswith("ticks: ")
    for step in ("create_hypertable", "bounded batches", "ACCESS EXCLUSIVE", "rename", "pulumi up --refresh"):
        assert step in text, step


def test_hypertable_plan_month_chunk_interval_is_thirty_days_as_stored() -> None:
    # TimescaleDB stores a chunk interval in microseconds, a month as 30 days: '1 month' over a '30 days'
    # catalog value is no change, and '32 days' is.
    month = Window.from_output("1 mon").as_chunk_interval()
    assert plan(state(value=month.micros, text="1 month"), state(value=30 * DAY, text="30 days")) == []
    assert plan(state(value=Window.from_output("1 mon 2 days").as_chunk_interval().micros),
                state(value=30 * DAY)) == [SetChunkInterval(T, "timestamptz", 32 * DAY, 30 * DAY)]


@pytest.mark.parametrize("op", [
    CreateHypertable(T, "ts", "timestamptz", DAY, True),
    SetChunkInterval(T, "timestamptz", 2 * DAY, DAY),
])
def test_hypertable_operations_describe_themselves(op: object) -> None:
    text = op.describe()  # type: ignore[attr-defined]
    assert "public.stream_data" in text and "\n" not in text
