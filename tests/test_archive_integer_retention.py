"""RetentionPolicy(archive=...) on an integer-time hypertable, and holds on integer time: the planner's words
(pure), the provider's check (accepted, or refused at preview), and `lifecycle run` against a real TimescaleDB
with a local directory store: the integer window counted back from the table's integer_now."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.reconcile import archive_retention, jobs
from lifecycle_resources.reconcile.intervals import Window
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import chunks, lifecycle, rows_text
from tests.conftest import sql_run
from tests.test_archive_integer_time import BASE, NOW, make_int_ticks
from tests.test_archive_retention import declare

DAY = 86_400_000_000
WINDOW = 5_000  # expires the chunks ending at or before NOW - 5000 = BASE + 5000: the first five


def int_state(job_id: int | None = None) -> jobs.JobState:
    return jobs.JobState(hypertable="public.history", window=Window.of_integer(2_592_000),
                         schedule_interval=Window(0, DAY, "1 day"), max_runtime=Window(0, 0, "0"), max_retries=-1,
                         retry_period=Window(0, 3_600_000_000, "1 hour"), scheduled=True, job_id=job_id)


def test_plan_archive_integer_window_says_it_counts_from_integer_now() -> None:
    [new] = archive_retention.plan(int_state(), [], "cold", None)
    assert new.describe() == (
        "no TimescaleDB retention job: chunks of public.history older than 2592000 (counted back from integer_now) "
        "are dropped only by `lifecycle run`, after "
        "archiving to cold")
    [removed] = archive_retention.plan(int_state(), [int_state(1007)], "cold", None)
    assert removed.describe().startswith("remove TimescaleDB retention job 1007: chunks of public.history older "
                                         "than 2592000 (counted back from integer_now) are then dropped")
    [added] = archive_retention.plan(int_state(), [], None, "cold")
    assert added.describe().startswith("add TimescaleDB retention job on public.history (drop_after 2592000): ")


def declare_int(dsn: str, schema: str, *, store_url: str | None) -> str:
    return declare(dsn, schema, store_url=store_url, drop_after=str(WINDOW), name=f"{schema}-int-retention",
                   table="int_ticks")


@pytest.mark.integration
def test_runner_archived_policy_integer_time_archives_then_drops_from_integer_now(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, tmp_path: Path) -> None:
    rel = make_int_ticks(tsdb_dsn, schema)
    cutoff = NOW - WINDOW
    original, kept = rows_text(tsdb_dsn, rel, f"t < {cutoff}"), rows_text(tsdb_dsn, rel, f"t >= {cutoff}")
    before = chunks(tsdb_dsn, schema)
    policy = declare_int(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    manager = DataLifecycleManager(tsdb_dsn)

    [dry] = manager.run(policy=policy, stack=f"proj/{schema}", dry_run=True)
    assert (dry.status, dry.chunks_affected) == ("dry_run", 5) and chunks(tsdb_dsn, schema) == before, dry
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert (run.status, run.error, run.chunks_affected) == ("succeeded", None, 5), run
    assert run.describe().startswith("5 chunks archived to cold, verified and dropped"), run.describe()
    assert chunks(tsdb_dsn, schema) == before[5:] and rows_text(tsdb_dsn, rel) == kept
    listed = manager.archives(f"{schema}.int_ticks")
    assert [(e["range_start"], e["state"]) for e in listed] == [(BASE + i * 1000, "dropped") for i in range(5)]
    [again] = manager.run(policy=policy, stack=f"proj/{schema}")  # nothing more expires: nothing archived twice
    assert (again.status, again.chunks_affected) == ("succeeded", 0), again
    manager.restore(f"{schema}.int_ticks", BASE, cutoff, into=f"{schema}.replay")
    assert rows_text(tsdb_dsn, f'"{schema}".replay') == original


@pytest.mark.integration
def test_provider_archive_integer_time_accepted_or_refused_at_check(tsdb_dsn: str, lifecycle_schema: None,
                                                                    schema: str) -> None:
    from lifecycle_resources import RetentionPolicyProvider

    make_int_ticks(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".no_now (t bigint NOT NULL, v int)')
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('t', 1000))", (f'"{schema}".no_now',))
    sql_run(tsdb_dsn, "INSERT INTO lifecycle.archive_stores (project, stack, store_name, url) VALUES "
                      "('proj', 'st', 'cold', 'file:///tmp/x') ON CONFLICT DO NOTHING")
    provider = RetentionPolicyProvider()
    provider._config_dsn = tsdb_dsn

    def check(table: str, drop_after: object) -> tuple[dict, list[tuple[str, str]]]:
        news = {"hypertable": f"{schema}.{table}", "drop_after": drop_after, "resource_name": "pol",
                "archive": "cold", "registration": {"project": "proj", "stack": "st", "environment": "st"}}
        result = provider.check({}, news)
        return result.inputs, [(f.property, f.reason) for f in result.failures]

    inputs, failures = check("int_ticks", WINDOW)
    assert failures == []
    assert (f"no TimescaleDB retention job: chunks of {schema}.int_ticks older than {WINDOW} (counted back from "
            "integer_now) are dropped only by `lifecycle run`") in " ".join(inputs["planned_operations"]), inputs
    _, failures = check("int_ticks", "10 days")
    assert [f for f, _ in failures] == ["drop_after"] and "integer time" in failures[0][1], failures
    _, failures = check("no_now", WINDOW)
    assert [f for f, _ in failures] == ["drop_after"] and "no integer_now function" in failures[0][1], failures
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                   (schema,)) == [(0,)]


@pytest.mark.integration
@pytest.mark.parametrize("archived", [True, False], ids=["archived", "plain"])
def test_hold_integer_time_runner_skips_held_chunk_until_released(tsdb_dsn: str, lifecycle_schema: None,
                                                                  schema: str, tmp_path: Path,
                                                                  archived: bool) -> None:
    make_int_ticks(tsdb_dsn, schema)
    before = chunks(tsdb_dsn, schema)
    table = f"{schema}.int_ticks"
    policy = declare_int(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold" if archived else None)
    added = lifecycle(tsdb_dsn, "hold", "add", "--table", table, "--from", str(BASE + 2100), "--to",
                      str(BASE + 2200), "--reason", "audit 7")
    assert added.returncode == 0 and f"[{BASE + 2100}, {BASE + 2200}) (audit 7): active" in added.stdout, added
    listed = lifecycle(tsdb_dsn, "hold", "list", "--table", table)
    assert listed.returncode == 0 and str(BASE + 2100) in listed.stdout, listed
    manager = DataLifecycleManager(tsdb_dsn)
    [hold] = manager.holds(table)
    assert (hold.range_from, hold.range_to) == (BASE + 2100, BASE + 2200)

    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "succeeded" and run.chunks_affected == 4, run
    assert chunks(tsdb_dsn, schema) == [before[2], *before[5:]]  # the held chunk stays
    assert len(manager.archives(table)) == (4 if archived else 0)
    if archived:
        assert (run.details or {}).get("held_chunks") == [before[2]]

    manager.release_hold(hold.hold_id)
    [again] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert again.status == "succeeded" and again.chunks_affected == 1 and chunks(tsdb_dsn, schema) == before[5:]


@pytest.mark.integration
def test_restore_integer_time_into_hypertable_under_a_hold(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                           tmp_path: Path) -> None:
    rel = make_int_ticks(tsdb_dsn, schema)
    table = f"{schema}.int_ticks"
    lo, hi = BASE + 1000, BASE + 3000
    original = rows_text(tsdb_dsn, rel, f"t >= {lo} AND t < {hi}")
    policy = declare_int(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    manager = DataLifecycleManager(tsdb_dsn)
    manager.run(policy=policy, stack=f"proj/{schema}")
    assert rows_text(tsdb_dsn, rel, f"t < {NOW - WINDOW}") == []

    with pytest.raises(LifecycleError, match="refused without an active hold covering the range"):
        manager.restore(table, lo, hi, into=table)
    narrow = manager.hold(table, lo, hi - 1)
    with pytest.raises(LifecycleError, match="refused without an active hold covering the range"):
        manager.restore(table, lo, hi, into=table)
    manager.release_hold(narrow.hold_id)
    with pytest.raises(LifecycleError, match=r"--from.*'2026-01-01'.*expected integers"):
        manager.hold(table, "2026-01-01", "2026-01-02")
    hold = manager.hold(table, lo, hi, reason="replay")
    done = manager.restore(table, lo, hi, into=table)
    assert sum(r.rows_loaded for r in done) == len(original) and rows_text(tsdb_dsn, rel, f"t < {hi}") == original
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")  # held: not archived again
    assert run.status == "succeeded" and run.chunks_affected == 0 and rows_text(tsdb_dsn, rel, f"t < {hi}") == original
    manager.release_hold(hold.hold_id)
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")  # released: expires again, archived under new keys
    assert run.status == "succeeded" and run.chunks_affected == 2 and rows_text(tsdb_dsn, rel, f"t < {hi}") == []


@pytest.mark.integration
@pytest.mark.parametrize("archived", [True, False], ids=["archived", "plain"])
def test_runner_reports_the_rows_of_the_chunks_it_dropped_not_of_those_it_planned(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, tmp_path: Path, archived: bool) -> None:
    """A held chunk is planned but not dropped: the run's rows (and its `~N rows` line) count only what went.
    They counted every planned chunk: `0 chunks ... dropped, ~1700 rows` under a hold covering them all."""
    rel = make_int_ticks(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f"ANALYZE {rel}")
    before = chunks(tsdb_dsn, schema)
    table = f"{schema}.int_ticks"
    policy = declare_int(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold" if archived else None)
    manager = DataLifecycleManager(tsdb_dsn)
    every = manager.hold(table, BASE, BASE + 6000)

    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "succeeded" and run.chunks_affected == 0 and chunks(tsdb_dsn, schema) == before, run
    assert run.rows_before == run.rows_after and "0 chunks" in run.describe() and ", ~0 rows" in run.describe()

    manager.release_hold(every.hold_id)
    manager.hold(table, BASE + 2100, BASE + 2200)
    dropped = [c for c in before[:5] if c != before[2]]
    counted = sum(sql_run(tsdb_dsn, "SELECT lifecycle._estimated_rows(%s::regclass)", (c,))[0][0] for c in dropped)
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "succeeded" and run.chunks_affected == 4, run
    assert run.rows_before - run.rows_after == counted, (run.rows_before, run.rows_after, counted)
