"""RetentionPolicy(archive=...) run by `lifecycle run`, and holds: planning (pure), then the runner against a real
TimescaleDB with a local directory store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from lifecycle_resources.errors import InputError, LifecycleError
from lifecycle_resources.reconcile import archive_retention, jobs
from lifecycle_resources.reconcile.archive_stores import check_endpoint, check_url
from lifecycle_resources.reconcile.intervals import Window
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import before_expiring_end, lifecycle, make_ticks, rows_text
from tests.conftest import sql_run

DAY = 86_400_000_000


def job_state(job_id: int | None = None) -> jobs.JobState:
    return jobs.JobState(hypertable="public.ticks", window=Window(0, 30 * DAY, "30 days"),
                         schedule_interval=Window(0, DAY, "1 day"), max_runtime=Window(0, 0, "0"), max_retries=-1,
                         retry_period=Window(0, 3_600_000_000, "1 hour"), scheduled=True, job_id=job_id)


def test_plan_archive_on_removes_the_job_and_says_who_drops() -> None:
    ops = archive_retention.plan(job_state(), [job_state(1004)], "cold", None)
    assert [op.describe() for op in ops] == [
        "remove TimescaleDB retention job 1004: chunks of public.ticks older than 30 days are then dropped only by "
        "`lifecycle run`, after archiving to cold"]


def test_plan_archive_off_adds_the_job_back_and_says_so() -> None:
    [op] = archive_retention.plan(job_state(), [], None, "cold")
    assert isinstance(op, jobs.AddJob)
    assert op.describe() == ("add TimescaleDB retention job on public.ticks (drop_after 30 days): chunks are then "
                             "dropped by TimescaleDB without archiving (no longer archived to cold by `lifecycle run`)")


def test_plan_archive_new_policy_and_unchanged() -> None:
    [op] = archive_retention.plan(job_state(), [], "cold", None)
    assert op.describe().startswith("no TimescaleDB retention job: chunks of public.ticks older than 30 days are "
                                    "dropped only by `lifecycle run`")
    assert archive_retention.plan(job_state(), [], "cold", "cold") == []
    # A store switched: said again; a job added by hand while archiving: removed.
    assert len(archive_retention.plan(job_state(), [], "warm", "cold")) == 1
    assert [type(o) for o in archive_retention.plan(job_state(), [job_state(1009)], "cold", "cold")] == [
        archive_retention.RemoveJobForArchive]
    # Without an archive, before and after: the plain planner's operations.
    assert archive_retention.plan(job_state(), [job_state(1004)], None, None) == []
    assert [type(o) for o in archive_retention.plan(job_state(), [], None, None)] == [jobs.AddJob]


@pytest.mark.parametrize("url, expected", [
    ("file:///var/lib/archive/", "file:///var/lib/archive"),
    ("s3://ticks/prod/", "s3://ticks/prod"),
    ("s3://ticks", "s3://ticks"),
])
def test_store_url_normalised(url: str, expected: str) -> None:
    assert check_url("cold", "url", url) == expected


@pytest.mark.parametrize("url", ["http://x/y", "file://host/p", "file:relative", "s3://", "", "s3://b/p?x=1"])
def test_store_url_refused_names_what_is_accepted(url: str) -> None:
    with pytest.raises(InputError, match="accepted: file:///absolute/path or s3://bucket/prefix"):
        check_url("cold", "url", url)


def test_store_url_with_credentials_refused_without_echo() -> None:
    with pytest.raises(InputError) as exc:
        check_url("cold", "url", "s3://AKIAXX:pw_secret@bucket/p")
    assert "pw_secret" not in str(exc.value) and "AKIAXX" not in str(exc.value)
    with pytest.raises(InputError) as exc:
        check_endpoint("cold", "http://user:pw_secret@127.0.0.1:9000")
    assert "pw_secret" not in str(exc.value)
    assert check_endpoint("cold", "http://127.0.0.1:9000/") == "http://127.0.0.1:9000"


# --------------------------------------------------------------------------------------------------
# The runner, against a real TimescaleDB


def declare(dsn: str, schema: str, *, store_url: str | None, drop_after: str = "10 days",
            name: str | None = None, table: str = "ticks") -> str:
    """A retention declaration of stack proj/<schema> (archiving to store 'cold' at `store_url` when given)."""
    policy = name or f"{schema}-retention"
    params = {"drop_after": drop_after, "schedule_interval": "1 day", "scheduled": True}
    if store_url is not None:
        sql_run(dsn, "INSERT INTO lifecycle.archive_stores (project, stack, store_name, url) VALUES "
                     "('proj', %s, 'cold', %s)", (schema, store_url))
        params["archive_store"] = "cold"
    sql_run(dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, 'retention', %s, NULL, 'proj', %s)",
            (policy, f"{schema}.{table}", Jsonb(params), schema))
    return policy


def expiring(dsn: str, schema: str) -> list[str]:
    return [r[0] for r in sql_run(dsn, "SELECT s::text FROM show_chunks(%s::regclass, older_than => interval "
                                       "'10 days') s ORDER BY 1", (f'"{schema}".ticks',))]


def chunk_ranges(dsn: str, schema: str) -> dict[str, tuple]:
    rows = sql_run(dsn, "SELECT chunk_schema || '.' || chunk_name, range_start, range_end FROM "
                        "timescaledb_information.chunks WHERE hypertable_schema = %s", (schema,))
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.integration
def test_runner_archived_policy_archives_then_drops_and_rows_restore(tsdb_dsn: str, lifecycle_schema: None,
                                                                     schema: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle_resources.runner.archive import export

    # The run's exporter is given the DSN: where the server takes a second connection, rows come through ADBC.
    exporters: list[str | None] = []
    real_init = export.Exporter.__init__
    monkeypatch.setattr(export.Exporter, "__init__",
                        lambda self, dsn=None: (exporters.append(dsn), real_init(self, dsn))[1])
    rel = make_ticks(tsdb_dsn, schema)
    where = before_expiring_end(tsdb_dsn, schema, "10 days")
    original = rows_text(tsdb_dsn, rel, where)
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    manager = DataLifecycleManager(tsdb_dsn)

    [dry] = manager.run(policy=policy, stack=f"proj/{schema}", dry_run=True)
    assert (dry.status, dry.chunks_affected) == ("dry_run", len(old)) and expiring(tsdb_dsn, schema) == old

    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert (run.status, run.error, run.chunks_affected) == ("succeeded", None, len(old))
    assert run.describe().startswith(f"{len(old)} chunks archived to cold, verified and dropped"), run.describe()
    assert exporters == [tsdb_dsn]
    assert expiring(tsdb_dsn, schema) == []
    [(details,)] = sql_run(tsdb_dsn, "SELECT details FROM lifecycle.lifecycle_executions WHERE policy_name = %s "
                                     "AND NOT dry_run", (policy,))
    assert details["archive_store"] == "cold" and len(details["archived"]) == len(old)
    assert {a["state"] for a in details["archived"]} == {"dropped"}
    states = sql_run(tsdb_dsn, "SELECT state, store_url FROM lifecycle.archives WHERE hypertable = %s",
                     (f"{schema}.ticks",))
    assert sorted(states) == [("dropped", f"file://{tmp_path}/cold")] * len(old)

    manager.restore(f"{schema}.ticks", "2000-01-01", "2100-01-01", into=f"{schema}.replay")
    assert rows_text(tsdb_dsn, f'"{schema}".replay') == original


@pytest.mark.integration
def test_runner_archived_policy_unreachable_store_drops_nothing(tsdb_dsn: str, lifecycle_schema: None,
                                                                 schema: str, tmp_path: Path) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    (tmp_path / "afile").write_text("not a directory")
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/afile/cold")
    proc = lifecycle(tsdb_dsn, "run", "--policy", policy, "--stack", f"proj/{schema}")
    assert proc.returncode != 0, proc
    [(status, error)] = sql_run(tsdb_dsn, "SELECT status, error FROM lifecycle.lifecycle_executions "
                                          "WHERE policy_name = %s", (policy,))
    assert status == "failed" and "is not reachable" in error and "nothing archived or dropped" in error
    assert expiring(tsdb_dsn, schema) == old


@pytest.mark.integration
def test_runner_archived_policy_store_removed_drops_nothing(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                            tmp_path: Path) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    sql_run(tsdb_dsn, "UPDATE lifecycle.archive_stores SET enabled = false WHERE stack = %s", (schema,))
    [run] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "failed" and "archive store 'cold' is not registered" in (run.error or "")
    assert expiring(tsdb_dsn, schema) == old


@pytest.mark.integration
def test_sql_execute_refuses_a_table_that_archives_first(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                          tmp_path: Path) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    [(status, error)] = sql_run(tsdb_dsn, "SELECT status, error FROM lifecycle.execute_lifecycle_policy(%s, false, "
                                          "%s)", (policy, f"proj/{schema}"))
    assert status == "failed" and "archives each chunk to store 'cold' before dropping it" in error
    assert expiring(tsdb_dsn, schema) == old


@pytest.mark.integration
@pytest.mark.parametrize("archived", [True, False], ids=["archived", "plain"])
def test_hold_runner_skips_held_chunks_until_released(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                      tmp_path: Path, archived: bool) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    old = expiring(tsdb_dsn, schema)
    ranges = chunk_ranges(tsdb_dsn, schema)
    kept = old[3]
    start, end = ranges[kept]
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold" if archived else None)
    manager = DataLifecycleManager(tsdb_dsn)
    hold = manager.hold(f"{schema}.ticks", start, end, reason="audit 42")
    assert hold.active and [h.hold_id for h in manager.holds(f"{schema}.ticks")] == [hold.hold_id]

    [run] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert run.status == "succeeded" and run.chunks_affected == len(old) - 1, run
    assert expiring(tsdb_dsn, schema) == [kept]
    archived_chunks = sql_run(tsdb_dsn, "SELECT chunk_name FROM lifecycle.archives WHERE hypertable = %s",
                              (f"{schema}.ticks",))
    assert kept not in [c for (c,) in archived_chunks]
    assert len(archived_chunks) == (len(old) - 1 if archived else 0)

    manager.release_hold(hold.hold_id)
    assert manager.holds(f"{schema}.ticks") == []
    with pytest.raises(LifecycleError, match="already released"):
        manager.release_hold(hold.hold_id)
    [again] = manager.run(policy=policy, stack=f"proj/{schema}")
    assert again.status == "succeeded" and again.chunks_affected == 1 and expiring(tsdb_dsn, schema) == []


@pytest.mark.integration
def test_restore_into_hypertable_needs_a_hold_and_is_kept(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                          tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=1)
    old = expiring(tsdb_dsn, schema)
    start, end = chunk_ranges(tsdb_dsn, schema)[old[2]]
    day = f"ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}'"
    original = rows_text(tsdb_dsn, rel, day)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    manager = DataLifecycleManager(tsdb_dsn)
    manager.run(policy=policy, stack=f"proj/{schema}")
    assert rows_text(tsdb_dsn, rel, day) == []

    with pytest.raises(LifecycleError, match="refused without an active hold covering the range"):
        manager.restore(f"{schema}.ticks", start, end, into=f"{schema}.ticks")
    hold = manager.hold(f"{schema}.ticks", start, end)
    sql_run(tsdb_dsn, "SELECT add_retention_policy(%s::regclass, interval '10 days')", (rel,))
    with pytest.raises(LifecycleError, match="TimescaleDB retention job .* ignores holds"):
        manager.restore(f"{schema}.ticks", start, end, into=f"{schema}.ticks")
    sql_run(tsdb_dsn, "SELECT remove_retention_policy(%s::regclass)", (rel,))

    done = manager.restore(f"{schema}.ticks", start, end, into=f"{schema}.ticks")
    assert sum(r.rows_loaded for r in done) == len(original)
    assert rows_text(tsdb_dsn, rel, day) == original
    assert sum(r.rows_loaded for r in manager.restore(f"{schema}.ticks", start, end, into=f"{schema}.ticks")) == 0
    archived_before = sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.archives WHERE hypertable = %s",
                              (f"{schema}.ticks",))
    [run] = manager.run(policy=policy, stack=f"proj/{schema}")  # the restored day is held: not archived again
    assert run.status == "succeeded" and rows_text(tsdb_dsn, rel, day) == original
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.archives WHERE hypertable = %s",
                   (f"{schema}.ticks",)) == archived_before
    manager.release_hold(hold.hold_id)


@pytest.mark.integration
def test_cli_hold_add_list_release(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    make_ticks(tsdb_dsn, schema, compress=0)
    table = f"{schema}.ticks"
    added = lifecycle(tsdb_dsn, "hold", "add", "--table", table, "--from", "2026-01-01", "--to", "2026-01-02",
                      "--reason", "backtest")
    assert added.returncode == 0 and "active" in added.stdout and "(backtest)" in added.stdout, added
    hold_id = added.stdout.split()[1]
    listed = lifecycle(tsdb_dsn, "hold", "list", "--table", table)
    assert listed.returncode == 0 and "backtest" in listed.stdout, listed
    bad = lifecycle(tsdb_dsn, "hold", "add", "--table", table, "--from", "2026-01-02", "--to", "2026-01-01")
    assert bad.returncode == 1 and "--from must be before --to" in bad.stderr, bad
    released = lifecycle(tsdb_dsn, "hold", "release", hold_id)
    assert released.returncode == 0 and "released" in released.stdout, released
    assert "backtest" not in lifecycle(tsdb_dsn, "hold", "list", "--table", table).stdout
    assert "backtest" in lifecycle(tsdb_dsn, "hold", "list", "--table", table, "--all").stdout
    unknown = lifecycle(tsdb_dsn, "hold", "release", "987654321")
    assert unknown.returncode == 1 and "no hold 987654321" in unknown.stderr, unknown
    assert json.dumps(sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.archive_holds WHERE hypertable = %s "
                                        "AND released_at IS NULL", (table,))) == "[[0]]"


@pytest.mark.integration
@pytest.mark.parametrize("table_sql, archive, fragment", [  # integer time: test_archive_integer_retention.py
    ("CREATE TABLE {t} (ts timestamptz NOT NULL, v int); SELECT create_hypertable('{t}', by_range('ts'))",
     "nowhere", "no archive store 'nowhere' is registered by stack proj/st"),
])
def test_provider_archive_refused_at_check(tsdb_dsn: str, lifecycle_schema: None, schema: str, table_sql: str,
                                           archive: str, fragment: str) -> None:
    from lifecycle_resources import RetentionPolicyProvider

    table = f'"{schema}".ticks'
    for statement in table_sql.format(t=table, s=f'"{schema}"').split("; "):
        sql_run(tsdb_dsn, statement)
    sql_run(tsdb_dsn, "INSERT INTO lifecycle.archive_stores (project, stack, store_name, url) VALUES "
                      "('proj', 'st', 'cold', 'file:///tmp/x') ON CONFLICT DO NOTHING")
    provider = RetentionPolicyProvider()
    provider._config_dsn = tsdb_dsn
    news = {"hypertable": f"{schema}.ticks", "drop_after": 100 if "bigint" in table_sql else "30 days",
            "resource_name": "pol", "archive": archive,
            "registration": {"project": "proj", "stack": "st", "environment": "st"}}
    found = [(f.property, f.reason) for f in provider.check({}, news).failures]
    assert [f for f, _ in found] == ["archive"] and fragment in found[0][1] and "pol:" in found[0][1], found
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                   (schema,)) == [(0,)]


def store_check(olds: dict, news: dict) -> tuple[dict, list[tuple[str, str]]]:
    from lifecycle_resources.resources.archive_store import ArchiveStoreProvider

    result = ArchiveStoreProvider().check(olds, {"resource_name": "cold", "store_name": "cold", **news})
    return result.inputs, [(f.property, f.reason) for f in result.failures]


def test_store_check_plans_register_change_and_warns_unreachable(tmp_path: Path) -> None:
    inputs, failures = store_check({}, {"url": f"file://{tmp_path}/a/"})
    assert failures == [] and inputs["url"] == f"file://{tmp_path}/a"
    assert inputs["planned_operations"] == [f"register archive store cold (file://{tmp_path}/a) in "
                                            "lifecycle.archive_stores"]
    changed, failures = store_check({"url": f"file://{tmp_path}/a", "store_name": "cold"},
                                    {"url": f"file://{tmp_path}/b"})
    assert failures == [] and changed["planned_operations"][0].startswith(
        f"change archive store cold: url file://{tmp_path}/a -> file://{tmp_path}/b")
    (tmp_path / "afile").write_text("x")
    warned = store_check({}, {"url": f"file://{tmp_path}/afile/store"})[0]["planned_operations"]
    assert warned[-1].startswith(f"WARNING: archive store cold (file://{tmp_path}/afile/store) is not reachable "
                                 f"now: {tmp_path}/afile is not a directory"), warned


@pytest.mark.parametrize("news, field, fragment", [
    ({"url": "file:///x", "endpoint_url": "http://127.0.0.1:9000"}, "endpoint_url", "is a local directory"),
    ({"url": "s3://b/p", "access_key_id": "AKIApw_marker"}, "access_key_id", "go together"),
    ({"url": "s3://b/p", "endpoint_url": "ftp://x"}, "endpoint_url", "not an endpoint URL"),
    ({"url": "s3://AKIApw_marker:pw_marker@b/p"}, "url", "credentials never go in the URL"),
])
def test_store_check_refuses_naming_the_field(news: dict, field: str, fragment: str) -> None:
    _, failures = store_check({}, news)
    assert [f for f, _ in failures] == [field] and fragment in failures[0][1], failures
    assert "cold:" in failures[0][1] and "pw_marker" not in failures[0][1]


@pytest.mark.integration
@pytest.mark.parametrize("step", ["uploaded", "dropping"])
def test_runner_archived_policy_killed_then_rerun_converges(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                            tmp_path: Path, step: str) -> None:
    """`lifecycle run` SIGKILLed inside the archive (mid-publish, inside the drop's transaction), run again: every
    chunk archived once, dropped once, every row restorable."""
    import signal

    from lifecycle_resources.runner.archive.archiver import FAULT_ENV
    from lifecycle_resources.runner.archive.store import LocalStore

    rel = make_ticks(tsdb_dsn, schema, compress=1)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "10 days"))
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"file://{tmp_path}/cold")
    args = ("run", "--policy", policy, "--stack", f"proj/{schema}")
    tmp = tmp_path / "tmp"  # the runs' own temp dir: the killed run's export is seen there, and must go
    tmp.mkdir()
    crashed = lifecycle(tsdb_dsn, *args, env={FAULT_ENV: step, "TMPDIR": str(tmp)})
    assert crashed.returncode == -signal.SIGKILL, crashed
    assert expiring(tsdb_dsn, schema) == old  # the first chunk's drop never committed
    left = [p.name.startswith("lifecycle-archive-") for p in tmp.iterdir()]
    assert left in ([True], [True, True]), left  # the next chunk's export too, when it overlapped the kill
    again = lifecycle(tsdb_dsn, *args, env={"TMPDIR": str(tmp)})
    assert again.returncode == 0, again
    assert list(tmp.iterdir()) == []
    assert expiring(tsdb_dsn, schema) == []
    keys = LocalStore(tmp_path / "cold").keys()
    assert len([k for k in keys if k.endswith(".parquet")]) == len(old)
    assert len([k for k in keys if k.endswith(".manifest.json")]) == len(old)
    DataLifecycleManager(tsdb_dsn).restore(f"{schema}.ticks", "2000-01-01", "2100-01-01")
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original
