"""Pure planners of compression settings and policy jobs: every case, no database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lifecycle_resources.reconcile import jobs
from lifecycle_resources.reconcile.catalog import ServerInfo
from lifecycle_resources.reconcile.compression import (
    CompressionSettingsArgs,
    OrderItem,
    declared_state,
    split_list,
    unquote,
)
from lifecycle_resources.reconcile.declared import Target
from lifecycle_resources.reconcile.intervals import Window
from lifecycle_resources.errors import InputError, LifecycleError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.resources.policy import window_conflict

H = 3_600_000_000
DAY = 24 * H
T = TableName("public", "stream_data")
TARGET = Target(table=T, time_column="ts", column_type="timestamptz", compression_enabled=True)
COLUMNS = ["ts", "symbol", "price", "volume", "Weird Col"]
W = Window.from_output  # PostgreSQL's output for what users write: '1 week' -> '7 days', '168 hours' -> '168:00:00'


def job(window: Window | None = W("7 days"), schedule: Window = W("12:00:00"), job_id: int | None = 1000,
        **over: object) -> jobs.JobState:
    fields = dict(hypertable="public.stream_data", window=window, schedule_interval=schedule,
                  max_runtime=W("00:00:00"), max_retries=-1, retry_period=W("01:00:00"), scheduled=True,
                  job_id=job_id)
    fields.update(over)
    return jobs.JobState(**fields)  # type: ignore[arg-type]


# -- jobs ------------------------------------------------------------------------------------------

def test_jobs_plan_adds_when_absent() -> None:
    declared = job(job_id=None)
    assert jobs.plan(jobs.COMPRESSION, declared, []) == [jobs.AddJob(jobs.COMPRESSION, T, declared)]


def test_jobs_plan_nothing_when_equal() -> None:
    assert jobs.plan(jobs.RETENTION, job(job_id=None), [job()]) == []


@pytest.mark.parametrize("field, value", [
    ("window", W("10 days")), ("schedule_interval", W("02:00:00")), ("max_runtime", W("01:00:00")),
    ("max_retries", 5), ("retry_period", W("02:00:00")), ("scheduled", False), ("paused", True),
    ("fixed_schedule", True), ("timezone", "Europe/Paris"),
    ("initial_start", datetime(2026, 1, 1, tzinfo=timezone.utc)),
])
def test_jobs_plan_alters_in_place_keeping_the_job(field: str, value: object) -> None:
    declared = job(job_id=None, **{field: value})
    ops = jobs.plan(jobs.COMPRESSION, declared, [job(job_id=1234)])
    assert len(ops) == 1 and isinstance(ops[0], jobs.AlterJob)
    assert ops[0].job_id == 1234
    assert ops[0].describe().endswith(f": {field}")


def test_jobs_plan_month_window_is_not_thirty_days() -> None:
    # Both were 2592000 s through extract(epoch): '30 days' -> '1 month' was silently never applied.
    ops = jobs.plan(jobs.COMPRESSION, job(window=W("1 mon"), job_id=None), [job(window=W("30 days"))])
    assert [type(o) for o in ops] == [jobs.AlterJob] and ops[0].describe().endswith(": window")


@pytest.mark.parametrize("actual", ["7 days", "168:00:00"])
@pytest.mark.parametrize("declared", ["7 days", "168:00:00"])
def test_jobs_plan_week_spellings_are_one_window(declared: str, actual: str) -> None:
    assert jobs.plan(jobs.COMPRESSION, job(window=W(declared), job_id=None), [job(window=W(actual))]) == []


def test_jobs_plan_a_paused_job_is_drift() -> None:
    ops = jobs.plan(jobs.RETENTION, job(job_id=None), [job(paused=True)])
    assert [type(o) for o in ops] == [jobs.AlterJob] and ops[0].describe().endswith(": paused")


def test_jobs_plan_undeclared_timezone_and_start_are_left_alone() -> None:
    actual = job(timezone="Europe/Paris", initial_start=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert jobs.plan(jobs.RETENTION, job(job_id=None), [actual]) == []


def test_jobs_plan_removes_duplicates_added_by_hand() -> None:
    ops = jobs.plan(jobs.RETENTION, job(job_id=None), [job(job_id=1001), job(job_id=1007)])
    assert ops == [jobs.DeleteJob(jobs.RETENTION, 1007, T)]


def test_jobs_plan_alters_a_job_using_another_window_key() -> None:
    ops = jobs.plan(jobs.COMPRESSION, job(job_id=None), [job(window=None)])
    assert [type(o) for o in ops] == [jobs.AlterJob]


def test_window_conflict_drop_before_compress_is_a_warning() -> None:
    shorter = window_conflict("r", W("5 days"), W("7 days"))
    assert isinstance(shorter, jobs.Notice) and shorter.describe().startswith("WARNING: r: drop_after (5 days)")
    assert window_conflict("r", W("7 days"), W("168:00:00")) is not None  # equal: TimescaleDB accepts it too
    assert window_conflict("r", W("30 days"), W("7 days")) is None
    assert window_conflict("r", W("1 mon"), W("29 days")) is None


# -- compression settings --------------------------------------------------------------------------

@pytest.mark.parametrize("text, rendered", [
    ("ts", "ts ASC NULLS LAST"),
    ("ts ASC", "ts ASC NULLS LAST"),
    ("ts desc", "ts DESC NULLS FIRST"),
    ("price DESC NULLS LAST", "price DESC NULLS LAST"),
    ("price NULLS FIRST", "price ASC NULLS FIRST"),
    ('"Weird Col" DESC', "Weird Col DESC NULLS FIRST"),
    ('"a""b"', 'a"b ASC NULLS LAST'),
])
def test_order_item_normalises_every_spelling(text: str, rendered: str) -> None:
    assert OrderItem.parse(text).render() == rendered


@pytest.mark.parametrize("text", ["price sideways", "price DESC NULLS", "", "a b c", "price ASC DESC"])
def test_order_item_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        OrderItem.parse(text)


def test_split_list_respects_quotes() -> None:
    assert split_list('sym,"a,b" DESC,ts DESC') == ["sym", '"a,b" DESC', "ts DESC"]
    assert split_list("") == [] and split_list(None) == []
    assert unquote('"Weird Col"') == "Weird Col"


def args(**over: object) -> CompressionSettingsArgs:
    return CompressionSettingsArgs.model_validate({"hypertable": "public.stream_data", "resource_name": "cs",
                                                   **over})


def test_compression_declared_appends_time_column_as_timescaledb_does() -> None:
    state = declared_state(args(segment_by=["symbol"], order_by=["price"]), TARGET, COLUMNS)
    assert state.order_by == ("price ASC NULLS LAST", "ts DESC NULLS FIRST")
    assert state.segment_by == ("symbol",)


def test_compression_declared_matches_catalog_form() -> None:
    # What hypertable_compression_settings prints for compress_orderby = 'price' (seen on 2.23).
    catalog_form = tuple(OrderItem.parse(o).render() for o in split_list("price,ts DESC"))
    assert declared_state(args(order_by=["price"]), TARGET, COLUMNS).order_by == catalog_form


def test_compression_declared_default_order_is_time_desc() -> None:
    assert declared_state(args(), TARGET, COLUMNS).order_by == ("ts DESC NULLS FIRST",)


@pytest.mark.parametrize("over, field, fragment", [
    ({"segment_by": ["symbl"]}, "segment_by", "no such column"),
    ({"segment_by": ["symbol", "symbol"]}, "segment_by", "listed twice"),
    ({"segment_by": ["ts"]}, "segment_by", "time column"),
    ({"order_by": ["prise DESC"]}, "order_by", "no such column"),
    ({"order_by": ["price upwards"]}, "order_by", "not an ordering"),
    ({"segment_by": ["symbol"], "order_by": ["symbol"]}, "order_by", "segment-by column"),
    ({"order_by": ["price", "price DESC"]}, "order_by", "twice"),
])
def test_compression_declared_refuses(over: dict, field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        declared_state(args(**over), TARGET, COLUMNS)
    assert err.value.field == field and fragment in str(err.value) and "cs:" in str(err.value)


def test_server_info_qualifies_functions_with_extension_schema() -> None:
    info = ServerInfo(timescaledb_version="2.23.0", license="timescale", extension_schema="ts ext")
    assert info.fn("alter_job").as_string(None) == '"ts ext"."alter_job"'


# -- TimescaleDB's own jobs (ids below 1000) -------------------------------------------------------

@pytest.mark.integration
def test_jobs_below_first_user_job_are_never_read_adopted_or_deleted(tsdb_dsn: str, schema: str) -> None:
    """A retention job with an id below 1000 on the managed table is TimescaleDB's, not ours: a policy
    resource neither reads it, adopts it, alters it nor deletes it."""
    from lifecycle_resources import RetentionPolicyProvider
    from lifecycle_resources.db.connection import connect
    from tests.conftest import sql_run

    t = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"CREATE TABLE {t} (ts timestamptz NOT NULL, v int)")
    sql_run(tsdb_dsn, f"SELECT create_hypertable('{t}'::regclass, by_range('ts', interval '1 day'))")
    own = sql_run(tsdb_dsn, f"SELECT add_retention_policy('{t}'::regclass, interval '90 days')")[0][0]
    low = sql_run(tsdb_dsn, "SELECT coalesce(max(id), 0) + 1 FROM _timescaledb_config.bgw_job WHERE id < 1000")[0][0]
    sql_run(tsdb_dsn, "UPDATE _timescaledb_config.bgw_job SET id = %s WHERE id = %s", (low, own))

    def low_job() -> list[tuple]:
        return sql_run(tsdb_dsn, "SELECT job_id, config->>'drop_after', schedule_interval::text "
                                 "FROM timescaledb_information.jobs WHERE job_id = %s", (low,))
    before = low_job()
    assert before == [(low, "90 days", "1 day")]
    with connect(tsdb_dsn) as conn:
        assert jobs.read_jobs(conn, jobs.RETENTION, TableName(schema, "ticks")) == []

    p = RetentionPolicyProvider()
    p._config_dsn = tsdb_dsn
    news = p.check({}, {"hypertable": f"{schema}.ticks", "drop_after": "30 days", "schedule_interval": "2 hours",
                        "resource_name": "rp"}).inputs
    # TimescaleDB allows one retention job per hypertable: creating refuses, and does not adopt job `low`.
    with pytest.raises(LifecycleError, match="already exists"):
        p.create(news)
    outs = {**news, "job_id": low, "adopted": True, "window_value": 90 * DAY}
    assert p.read(str(low), outs).id is None  # not ours to read: reads as gone
    p.delete(str(low), outs)
    assert low_job() == before


def test_jobs_new_fields_show_no_change_on_states_written_before_them() -> None:
    from lifecycle_resources import RetentionPolicyProvider

    old_state = {"hypertable": "public.stream_data", "window_value": 30 * DAY, "schedule_interval_value": DAY,
                 "max_runtime_value": 0, "retry_period_value": H, "max_retries": -1, "scheduled": True,
                 "duplicate_job_ids": []}
    news = {**old_state, "paused": False, "fixed_schedule": False, "timezone": None, "initial_start_value": None}
    p = RetentionPolicyProvider()
    assert p.diff("1000", old_state, news).changes is False
    assert p.diff("1000", {**old_state, "paused": False}, {**news, "paused": True}).changes is True
