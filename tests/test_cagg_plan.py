"""The pure continuous-aggregate planner, its operations' words, the retention overlap check and the SQL the
executor renders: no database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.reconcile import caggs
from lifecycle_resources.reconcile.caggs import (AddRefresh, AlterRefresh, CaggState, Cost, CreateCagg,
                                                 RecreateCagg, Refresh, RefreshPolicy, RemoveRefresh, SetOption)
from lifecycle_resources.reconcile.intervals import Window
from lifecycle_resources.resources.continuous_aggregate import _mentions

W = Window.from_output
V = TableName("public", "ohlcv")
DEF = " SELECT time_bucket('00:01:00'::interval, ts) AS bucket FROM ticks GROUP BY 1;"
Q = "SELECT time_bucket('1 minute', ts) AS bucket FROM ticks GROUP BY 1"
POLICY = RefreshPolicy(start_offset=W("2 days"), end_offset=W("00:01:00"), schedule_interval=W("00:05:00"))
COST = Cost(10, datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc),
            "public.ticks", datetime(2026, 1, 1, 12, tzinfo=timezone.utc))


def state(**over: object) -> CaggState:
    fields: dict[str, object] = dict(view="public.ohlcv", definition=DEF, refresh=POLICY)
    fields.update(over)
    return CaggState(**fields)  # type: ignore[arg-type]


def plan(declared: CaggState, actual: CaggState | None, **kw: object) -> list[object]:
    args: dict[str, object] = dict(with_data=False, allow_recreate=False, resource="ohlcv", recreate_cost=COST)
    args.update(kw)
    return caggs.plan(declared, Q, actual, **args)  # type: ignore[arg-type]


def test_cagg_plan_create_without_data_refreshes_the_policy_window() -> None:
    ops = plan(state(), None)
    assert ops == [CreateCagg(V, Q, state()), AddRefresh(V, POLICY),
                   Refresh(V, POLICY.start_offset, POLICY.end_offset, whole=False)]
    assert [op.describe() for op in ops] == [  # type: ignore[attr-defined]
        "create continuous aggregate public.ohlcv WITH NO DATA (materialized_only=true)",
        "add refresh policy on public.ohlcv (start_offset 2 days, end_offset 00:01:00, every 00:05:00)",
        "refresh public.ohlcv from 2 days ago to 00:01:00 ago (first materialization, the refresh policy's window)"]


def test_cagg_plan_create_with_data_and_options() -> None:
    declared = state(refresh=None, compress=True, materialized_only=False)
    assert plan(declared, None, with_data=True) == [
        CreateCagg(V, Q, declared), SetOption(V, "compress", True, False),
        SetOption(V, "materialized_only", False, True), Refresh(V, None, None, whole=True)]
    assert plan(state(refresh=None), None) == [CreateCagg(V, Q, state(refresh=None))]  # nothing to refresh


def test_cagg_plan_no_change() -> None:
    same = RefreshPolicy(start_offset=W("48:00:00"), end_offset=W("00:01:00"), schedule_interval=W("00:05:00"),
                         job_id=1000)
    assert plan(state(), state(refresh=same)) == []


@pytest.mark.parametrize("declared, actual, expected", [
    (POLICY, None, [AddRefresh(V, POLICY)]),
    (None, POLICY.model_copy(update={"job_id": 1001}), [RemoveRefresh(V, 1001)]),
])
def test_cagg_plan_refresh_policy_added_or_removed(declared: RefreshPolicy | None, actual: RefreshPolicy | None,
                                                    expected: list[object]) -> None:
    assert plan(state(refresh=declared), state(refresh=actual)) == expected


def test_cagg_plan_refresh_policy_altered_in_place() -> None:
    existing = POLICY.model_copy(update={"job_id": 1000, "start_offset": None})
    [op] = plan(state(), state(refresh=existing))
    assert op == AlterRefresh(V, 1000, POLICY, existing)
    assert op.describe() == ("alter job 1000 (refresh policy of public.ohlcv): start_offset unbounded -> 2 days")


def test_cagg_plan_option_changes() -> None:
    assert plan(state(materialized_only=False), state()) == [SetOption(V, "materialized_only", False, True)]
    assert SetOption(V, "compress", True, False).describe() == \
        "set timescaledb.compress = true on public.ohlcv (was false)"


def test_cagg_plan_query_change_refused_without_allow_recreate() -> None:
    old = state(definition=" SELECT 1;")
    with pytest.raises(InputError) as refused:
        plan(state(), old)
    assert refused.value.field == "query" and "allow_recreate=True" in str(refused.value)
    assert ("drops its 10 materialized rows (buckets 2026-01-01 00:00 to 2026-01-02 00:00) and recomputes them "
            "from public.ticks; public.ticks only holds rows from 2026-01-01 12:00: the buckets before that are "
            "lost") in str(refused.value)


def test_cagg_plan_query_change_recreates_when_allowed() -> None:
    ops = plan(state(), state(definition=" SELECT 1;"), allow_recreate=True, other_jobs=(1003,))
    assert ops == [RecreateCagg(V, Q, state(), COST, (1003,)), AddRefresh(V, POLICY), Refresh(V, None, None, True)]
    assert ops[0].destructive and "[1003] are dropped with it" in ops[0].describe()  # type: ignore[attr-defined]


def test_cagg_plan_query_change_refused_while_read_by_another_aggregate() -> None:
    with pytest.raises(InputError, match=r"while the continuous aggregates \['public.ohlcv_1h'\] read it"):
        plan(state(), state(definition=" SELECT 1;"), allow_recreate=True, readers=("public.ohlcv_1h",))


@pytest.mark.parametrize("drop_after, start_offset, refused", [
    ("30 days", "2 days", False), ("2 days", "2 days", False), ("1 day", "2 days", True), ("30 days", None, True),
    ("1 mon", "30 days", False), ("29 days", "1 mon", True),
])
def test_cagg_retention_overlap(drop_after: str, start_offset: str | None, refused: bool) -> None:
    problem = caggs.retention_overlap("r", "drop_after", drop_after, W(drop_after), "public.ohlcv",
                                      W(start_offset) if start_offset else None, "public.ticks")
    assert (problem is not None) is refused
    if problem is not None and start_offset:
        assert f"between {start_offset} ago and {drop_after} ago" in str(problem)


@pytest.mark.parametrize("query, table, found", [
    ("SELECT .. FROM public.stream_data GROUP BY 1", "public.stream_data", True),
    ("SELECT .. FROM stream_data GROUP BY 1", "public.stream_data", True),
    ('SELECT .. FROM "public"."stream_data"', "public.stream_data", True),
    ("SELECT .. FROM stream_data_1m", "public.stream_data", False),
    ("SELECT .. FROM other.stream_data", "public.stream_data", False),
])
def test_cagg_program_sources_named_by_the_query(query: str, table: str, found: bool) -> None:
    assert _mentions(query, table) is found


def test_cagg_executor_sql_rendering() -> None:
    """Offsets as the user spelled them; unbounded as SQL NULL (a jsonb null in alter_job's config)."""
    assert caggs._offset(None).as_string(None) == "NULL"
    assert caggs._offset(W("2 days")).as_string(None) == "'2 days'::interval"
    assert caggs._config_value(None).as_string(None) == "'null'::jsonb"
    assert caggs._config_value(W("2 days")).as_string(None) == "to_jsonb(('2 days'::interval)::text)"
