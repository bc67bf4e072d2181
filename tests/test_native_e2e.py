"""The real `pulumi` engine against a native server, where only a real server makes the test meaningful:
two `up`s at once on one database, the runner beside `up`, and the connection cut in the middle of an `up`.
Concurrency is made certain, not hoped for: a test connection holds a lock on the table until the others
are seen waiting in pg_locks, then lets them all go at once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, native_cluster, sql_run
from tests.stack import PulumiStack, Result
from tests.test_policy_e2e import PROGRAM, jobs, make_table

pytestmark = pytest.mark.e2e
CONFIG = {"test:compress_after": "7 days", "test:drop_after": "30 days"}
LIFECYCLE = str(REPO / ".venv" / "bin" / "lifecycle")


def waiting_backends(dsn: str, holder: int) -> int:
    return sql_run(dsn, "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid <> %s", (holder,))[0][0]


@contextmanager
def table_held(dsn: str, table: str) -> Iterator[Callable[[int, float], int]]:
    """Holds an exclusive lock on `table`; yields wait(n, timeout): until n other backends wait on a lock."""
    conn = psycopg.connect(dsn)
    try:
        conn.execute(psycopg.sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            psycopg.sql.Identifier(*table.split("."))))
        holder = conn.info.backend_pid

        def wait(n: int, timeout: float) -> int:
            deadline = time.monotonic() + timeout
            while (seen := waiting_backends(dsn, holder)) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            return seen

        yield wait
    finally:
        with contextlib.suppress(psycopg.OperationalError):  # a test may have cut the connection itself
            conn.rollback()  # releases the lock: everyone waiting proceeds at once
        conn.close()


def stack_on(tmp_path: Path, pulumi_home: Path, dsn: str, name: str, table: str) -> PulumiStack:
    s = PulumiStack(tmp_path / name, pulumi_home=pulumi_home, dsn=dsn, stack=name)
    s.program(PROGRAM)
    s.init({"test:table": table, **CONFIG})
    return s


def test_native_two_ups_at_once_on_one_database(tmp_path: Path, pulumi_home: Path, tsdb_dsn: str,
                                                 schema: str) -> None:
    make_table(tsdb_dsn, schema)
    table = f"{schema}.ticks"
    stacks = [stack_on(tmp_path, pulumi_home, tsdb_dsn, name, table) for name in ("one", "two")]
    try:
        with ThreadPoolExecutor(2) as pool, table_held(tsdb_dsn, table) as wait:
            runs: list[Future[Result]] = [pool.submit(s.up, check=False) for s in stacks]
            seen = wait(2, 120)
            assert seen == 2, f"both `up`s should be waiting on the locked table, saw {seen}"
        results = [r.result() for r in runs]
        ok = [r for r in results if r.code == 0]
        assert ok, f"neither `up` succeeded: {results}"
        for failed in (r for r in results if r.code != 0):  # the loser says why, in our words
            assert "ticks" in failed.out and "Traceback" not in failed.out, failed
            assert "deadlock detected" not in failed.out and "duplicate key" not in failed.out, failed
        found = sql_run(tsdb_dsn, "SELECT proc_name, count(*) FROM timescaledb_information.jobs "
                                  "WHERE hypertable_schema = %s GROUP BY 1", (schema,))
        assert dict(found) == {"policy_compression": 1, "policy_retention": 1}, found
        winner = stacks[results.index(ok[0])]
        assert winner.preview("--refresh", "--expect-no-changes").code == 0
        assert {r[0] for r in sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                                                "WHERE hypertable_schema = %s", (schema,))} == {1}
    finally:
        for s in stacks:
            s.cleanup()


def test_native_runner_beside_up_on_one_table(tmp_path: Path, pulumi_home: Path, tsdb_dsn: str, schema: str,
                                              lifecycle_schema: None) -> None:
    make_table(tsdb_dsn, schema)
    table = f"{schema}.ticks"
    name = f"run{schema[2:]}"  # the runner selects policies by stack: this test's own
    s = PulumiStack(tmp_path / "run", pulumi_home=pulumi_home, dsn=tsdb_dsn, stack=name)
    try:
        s.program(PROGRAM)
        s.init({"test:table": table, "test:compress_after": "1 day", "test:drop_after": "20 days"})
        s.up()
        before = jobs(tsdb_dsn, schema)
        s.set("test:compress_after", "2 days")
        s.set("test:drop_after", "25 days")
        with ThreadPoolExecutor(2) as pool, table_held(tsdb_dsn, table) as wait:
            up = pool.submit(s.up, check=False)
            run = pool.submit(subprocess.run, [LIFECYCLE, "run", "--dsn", tsdb_dsn, "--stack", name],
                              capture_output=True, text=True, timeout=300)
            assert wait(1, 120) >= 1, "the runner should be waiting on the locked table"
            wait(2, 10)  # `up` too, when it touches the table itself
        result, ran = up.result(), run.result()
        after = jobs(tsdb_dsn, schema)

        def seen() -> str:
            """Everything both sides said, for whichever check fails: pulumi's whole output (its diagnostics carry
            the provider's errors), the stack's pending operations, the runner's output, every job on the table."""
            state = json.loads(s.run("stack", "export").out or "{}").get("deployment", {})
            every = sql_run(tsdb_dsn, "SELECT job_id, proc_name, config FROM timescaledb_information.jobs "
                                      "WHERE hypertable_schema = %s ORDER BY 1", (schema,))
            return (f"pulumi up: {result}\n--- pending operations: {state.get('pending_operations')}\n"
                    f"--- lifecycle run: exit {ran.returncode}\n{ran.stdout}{ran.stderr}\n"
                    f"--- jobs before: {before}\n--- jobs now: {every}")

        assert result.code == 0, seen()
        assert ran.returncode == 0, seen()
        assert "2 policies run" in ran.stdout and "0 failed" in ran.stdout, seen()
        assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}, seen()  # same jobs
        assert after["policy_compression"][2]["compress_after"] == "2 days"
        assert after["policy_retention"][2]["drop_after"] == "25 days"
        compressed = sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.chunks WHERE "
                                       "hypertable_schema = %s AND is_compressed", (schema,))[0][0]
        assert compressed > 0
        assert s.preview("--refresh", "--expect-no-changes").code == 0
    finally:
        s.cleanup()


def test_native_connection_cut_mid_up_converges(tmp_path: Path, pulumi_home: Path) -> None:
    from lifecycle_resources.db import native

    with native_cluster() as (state, dsn):
        sql_run(dsn, "CREATE SCHEMA cut")
        make_table(dsn, "cut")
        s = stack_on(tmp_path, pulumi_home, dsn, "cut", "cut.ticks")
        try:
            with ThreadPoolExecutor(1) as pool:
                with table_held(dsn, "cut.ticks") as wait:
                    up = pool.submit(s.up, check=False)
                    assert wait(1, 120) >= 1, "`up` should be waiting on the locked table"
                    stopper = threading.Thread(target=native.stop, args=(state,))
                    stopper.start()  # a fast shutdown: every connection, the holder's too, is cut
                    stopper.join(90)
                cut = up.result()
            assert cut.code != 0, cut
            assert native.start(state_dir=state).dsn == dsn
            again = s.up(check=False)
            assert again.code == 0, again
            assert s.preview("--refresh", "--expect-no-changes").code == 0
            found = jobs(dsn, "cut")
            assert set(found) == {"policy_compression", "policy_retention"}, found
            assert sql_run(dsn, "SELECT count(*) FROM cut.ticks") == [(4000,)]
        finally:
            s.cleanup()


def test_native_up_while_a_run_drops_the_chunks_it_measures(tmp_path: Path, pulumi_home: Path, tsdb_dsn: str,
                                                             schema: str, lifecycle_schema: None) -> None:
    """What made test_native_runner_beside_up_on_one_table flaky, in order for certain: `lifecycle run`'s retention
    drops chunks while `up` measures, at check, what the changed drop_after will drop. The drop is made and held
    uncommitted, `up` starts and its measure waits for the dropper's lock, the drop commits. The measure found the
    chunks it listed gone ('relation .. does not exist'): the RetentionPolicy errored, its job unchanged."""
    make_table(tsdb_dsn, schema)
    table = f"{schema}.ticks"
    s = stack_on(tmp_path, pulumi_home, tsdb_dsn, "drops", table)
    try:
        s.up()
        before = jobs(tsdb_dsn, schema)
        s.set("test:drop_after", "25 days")
        dropper = psycopg.connect(tsdb_dsn)
        try:
            dropped = dropper.execute("SELECT count(*) FROM drop_chunks(%s::regclass, older_than => interval '22 days')",
                                      (table,)).fetchone()
            assert dropped and dropped[0] > 0
            with ThreadPoolExecutor(1) as pool:
                up = pool.submit(s.up, check=False)
                deadline = time.monotonic() + 120
                while waiting_backends(tsdb_dsn, dropper.info.backend_pid) < 1 and not up.done():
                    assert time.monotonic() < deadline, "`up` should wait for the dropper's lock"
                    time.sleep(0.2)
                dropper.commit()
                result = up.result()
        finally:
            dropper.close()
        assert result.code == 0, str(result)
        after = jobs(tsdb_dsn, schema)
        assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}, (before, after)
        assert after["policy_retention"][2]["drop_after"] == "25 days"
        assert s.preview("--refresh", "--expect-no-changes").code == 0
    finally:
        s.cleanup()
