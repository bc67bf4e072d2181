"""With nothing to do, `check` gives back the inputs the state holds, as the engine compares them (a key absent
equals a null): after `up` (a clean preview) and after a refresh (the CI drift check). For every resource whose
checked inputs differ, the engine serialises its whole snapshot again, even in a preview: quadratic in resources.
A change made by hand still shows as one."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources import (CompressionPolicyProvider, CompressionSettingsProvider, HypertableProvider,
                                 RetentionPolicyProvider)
from lifecycle_resources.resources.base import unfold
from tests.conftest import sql_run
from tests.test_hypertable_provider import inputs as hypertable_inputs, make_table
from tests.test_policy_providers import checked, hypertable, make

pytestmark = pytest.mark.integration


def as_engine_sees(props: dict[str, Any]) -> dict[str, Any]:
    """Property maps as the engine's DeepEquals compares them: nulls dropped, at every depth."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None and k != "__provider"}
        return value
    return strip(unfold(props))


def settled(p: Any, id_: str, news: dict[str, Any]) -> tuple[dict, dict]:
    """Create from `news`; then the inputs of the preview right after, and of a refresh then a preview."""
    at_create = checked(p, {}, news)
    outs = p.create(at_create).outs
    preview = checked(p, at_create, news)
    assert p.diff(id_, outs, preview).changes is False
    assert as_engine_sees(preview) == as_engine_sees(at_create)
    refreshed = p.read(id_, outs)
    again = checked(p, refreshed.inputs, news)
    assert p.diff(id_, refreshed.outs, again).changes is False
    return as_engine_sees(again), as_engine_sees(refreshed.inputs)


def test_stable_inputs_hypertable(tsdb_dsn: str, schema: str) -> None:
    table = make_table(tsdb_dsn, schema)
    p = make(HypertableProvider, tsdb_dsn)
    news = hypertable_inputs(table, adopt=False, allow_time_column_change=False, create_default_indexes=True,
                             peers={"time_column": "ts"})  # as the program sends them
    again, refreshed = settled(p, table, news)
    assert again == refreshed


def test_stable_inputs_compression_settings(tsdb_dsn: str, schema: str) -> None:
    table = hypertable(tsdb_dsn, schema)
    p = make(CompressionSettingsProvider, tsdb_dsn)
    again, refreshed = settled(p, table, {"hypertable": table, "segment_by": ["symbol"], "order_by": [],
                                          "adopt": False, "resource_name": "cs",
                                          "peers": {"time_column": "ts", "compression_settings": True}})
    assert again == refreshed


@pytest.mark.parametrize("cls, window", [(CompressionPolicyProvider, {"compress_after": "7 days"}),
                                         (RetentionPolicyProvider, {"drop_after": "30 days"})])
def test_stable_inputs_policy_and_a_change_by_hand_still_shows(tsdb_dsn: str, schema: str, cls: type,
                                                               window: dict[str, str]) -> None:
    table = hypertable(tsdb_dsn, schema, compress=True)
    p = make(cls, dsn=tsdb_dsn)
    # One name per test: where another test installed the lifecycle schema, the policy is registered, and a
    # name is one kind of policy per stack.
    news = {"hypertable": table, **window, "allow_drop_before_compress": False, "adopt": False,
            "resource_name": f"{schema}-policy", "peers": {"time_column": "ts", **window}}
    again, refreshed = settled(p, table, news)
    assert again == refreshed
    job = sql_run(tsdb_dsn, "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                  (schema,))[0][0]
    outs = p.create(checked(p, {}, news)).outs  # adopts its own job: outputs of the current state
    sql_run(tsdb_dsn, "SELECT alter_job(%s, schedule_interval => interval '5 hours')", (job,))
    drifted = p.read(str(job), outs)
    planned = checked(p, drifted.inputs, news)
    assert p.diff(str(job), drifted.outs, planned).changes is True
    assert any("schedule" in op for op in unfold(planned)["planned_operations"]), unfold(planned)
