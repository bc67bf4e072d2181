"""Pure planners of compression settings and policy jobs: every case, no database."""

from __future__ import annotations

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
from lifecycle_resources.errors import InputError
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.resources.policy import window_conflict

H = 3_600_000_000
DAY = 24 * H
T = TableName("public", "stream_data")
TARGET = Target(table=T, time_column="ts", column_type="timestamptz", compression_enabled=True)
COLUMNS = ["ts", "symbol", "price", "volume", "Weird Col"]


def job(window: int = 7 * DAY, schedule: int = 12 * H, job_id: int | None = 1000, **over: object) -> jobs.JobState:
    fields = dict(hypertable="public.stream_data", window=window, schedule_interval=schedule, max_runtime=0,
                  max_retries=-1, retry_period=H, scheduled=True, job_id=job_id)
    fields.update(over)
    return jobs.JobState(**fields)  # type: ignore[arg-type]


# -- jobs ------------------------------------------------------------------------------------------

def test_jobs_plan_adds_when_absent() -> None:
    declared = job(job_id=None)
    assert jobs.plan(jobs.COMPRESSION, declared, "7 days", []) == [
        jobs.AddJob(jobs.COMPRESSION, T, declared, "7 days")]


def test_jobs_plan_nothing_when_equal() -> None:
    assert jobs.plan(jobs.RETENTION, job(job_id=None), "7 days", [job()]) == []


@pytest.mark.parametrize("field, value", [
    ("window", 10 * DAY), ("schedule_interval", 2 * H), ("max_runtime", H), ("max_retries", 5),
    ("retry_period", 2 * H), ("scheduled", False),
])
def test_jobs_plan_alters_in_place_keeping_the_job(field: str, value: object) -> None:
    declared = job(job_id=None, **{field: value}) if field not in ("window",) else job(window=value, job_id=None)
    ops = jobs.plan(jobs.COMPRESSION, declared, "x", [job(job_id=1234)])
    assert len(ops) == 1 and isinstance(ops[0], jobs.AlterJob)
    assert ops[0].job_id == 1234
    assert field in ops[0].describe()


def test_jobs_plan_removes_duplicates_added_by_hand() -> None:
    ops = jobs.plan(jobs.RETENTION, job(job_id=None), "7 days", [job(job_id=1001), job(job_id=1007)])
    assert ops == [jobs.DeleteJob(jobs.RETENTION, 1007, T)]


def test_jobs_plan_alters_a_job_using_another_window_key() -> None:
    ops = jobs.plan(jobs.COMPRESSION, job(job_id=None), "7 days", [job(window=None)])
    assert [type(o) for o in ops] == [jobs.AlterJob]


def test_jobs_never_touch_timescaledb_own_jobs() -> None:
    assert jobs.FIRST_USER_JOB == 1000


def test_window_conflict_drop_before_compress() -> None:
    assert window_conflict("r", "drop_after", "5 days", 5 * DAY, 7 * DAY, "5 days", "7 days") is not None
    assert window_conflict("r", "drop_after", "7 days", 7 * DAY, 7 * DAY, "7 days", "7 days") is not None
    assert window_conflict("r", "drop_after", "30 days", 30 * DAY, 7 * DAY, "30 days", "7 days") is None


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
