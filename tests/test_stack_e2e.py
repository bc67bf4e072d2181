"""The project's own program (__main__.py) with the dev stack's config, on a fresh embedded TimescaleDB:
schema, tables, views, functions and default policies from one `pulumi up`; a config change updates exactly
one policy in place; config errors fail at preview naming the key; `lifecycle run` executes and records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]

from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import embedded_server, sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent


# Databases of the test's own, even when TSDB_DSN is set: the program creates the `lifecycle` schema and
# the trading tables in `public`, which must not exist yet and must not touch a shared database.
@pytest.fixture
def fresh_dsn(tmp_path: Path) -> Iterator[str]:
    with embedded_server(tmp_path / "db") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def tables_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The trading tables, empty, in a database of this module's own."""
    with embedded_server(tmp_path_factory.mktemp("db")) as dsn:
        statements = (REPO / "sql" / "demo" / "trading_tables.sql").read_text().split("-- 45 days")[0]
        sql_run(dsn, statements)
        yield dsn


def dev_config() -> dict:
    config = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    return {k: v for k, v in config.items() if k != "lifecycle:dsn"}


def project(stack: PulumiStack, config: dict) -> None:
    stack.program((REPO / "__main__.py").read_text())
    (stack.workdir / f"Pulumi.{stack.stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    stack.init()


def test_stack_e2e_dev_program_on_fresh_database(tmp_path: Path, pulumi_home: Path, fresh_dsn: str) -> None:
    from lifecycle_resources.errors import LifecycleError

    with pytest.raises(LifecycleError, match="declare LifecycleSchema"):
        DataLifecycleManager(fresh_dsn).status()  # no schema yet: the runner says how to get one
    sql_run(fresh_dsn, (REPO / "sql" / "demo" / "trading_tables.sql").read_text())
    stack = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn=fresh_dsn, stack="dev")
    try:
        project(stack, dev_config())
        preview = stack.preview()
        assert preview.code == 0, preview
        assert "LifecycleSchema: (create)" in preview.out
        assert "001_lifecycle_tables.sql" in preview.out  # the migrations it would apply
        # The raw ticks are archived before they are dropped: no TimescaleDB job, `lifecycle run` drops them.
        assert ("no TimescaleDB retention job: chunks of public.stream_data older than 30 days are dropped only by "
                "`lifecycle run`, after archiving to cold") in preview.out, preview
        assert "register archive store cold (file://" in preview.out, preview
        for internal in ("config_source", "peers", "registration", "resource_name", "_value", "__lifecycle"):
            assert internal not in preview.out, (internal, preview)
        stack.up()

        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            hypertables = {r[0] for r in conn.execute(
                "SELECT hypertable_schema || '.' || hypertable_name FROM timescaledb_information.hypertables")}
            assert {"lifecycle.lifecycle_policies", "lifecycle.lifecycle_executions", "lifecycle.compression_metrics",
                    "lifecycle.archive_metadata", "lifecycle.cleanup_operations",
                    "public.stream_data", "public.signals"} <= hypertables
            jobs = {(r[0], r[1]): r[2] for r in conn.execute(
                "SELECT hypertable_schema || '.' || hypertable_name, proc_name, "
                "coalesce(config->>'drop_after', config->>'compress_after') FROM timescaledb_information.jobs "
                "WHERE job_id >= 1000")}
            assert ("public.stream_data", "policy_retention") not in jobs
            assert conn.execute("SELECT parameters ->> 'archive_store', parameters ->> 'drop_after' FROM "
                                "lifecycle.policy_declarations WHERE policy_name = 'stream_data-retention'"
                                ).fetchall() == [("cold", "30 days")]
            assert jobs[("public.signals", "policy_compression")] == "30 days"
            assert jobs[("lifecycle.lifecycle_executions", "policy_retention")] == "90 days"
            registered = conn.execute("SELECT count(DISTINCT policy_name) FROM lifecycle.lifecycle_policy_status "
                                      "WHERE environment = 'dev'").fetchone()[0]
            # 4 tables, 5 bookkeeping tables and the OHLCV aggregate: compression and retention each
            assert registered == 20
            assert jobs[("public.stream_data_ohlcv_1m", "policy_retention")] == "365 days"  # kept longer than the ticks
            assert ("public.stream_data_ohlcv_1m", "policy_refresh_continuous_aggregate") in jobs
            views = {r[0] for r in conn.execute(
                "SELECT viewname FROM pg_views WHERE schemaname = 'lifecycle'")}
            assert {"lifecycle_policy_status", "compression_statistics", "cleanup_statistics"} <= views

        assert stack.preview("--expect-no-changes").code == 0
        # A refresh of an unchanged database rewrites no resource's inputs: what it cannot read back (the plan,
        # what the program sent) is carried over. Inputs differing from the checked ones cost the engine a
        # reserialisation of the whole snapshot per resource in the drift check.
        # Not LifecycleSchema: its inputs hold the library's migrations (their SQL), which no read sees; and the
        # migrations `pending` when it was created. One resource, rewritten by the next `up`.
        assert {(name, key) for name, key in stack.refresh_rewrites() if name != "lifecycle-schema"} == set()
        before = {r[0]: r[1] for r in sql_run(fresh_dsn, "SELECT policy_name, job_id "
                                                           "FROM lifecycle.lifecycle_policy_status")}

        # One default changed in the stack's config: exactly that policy, in place.
        stack.run("config", "set", "--path", "lifecycle:tables.stream_data.retention.drop_after", "--", "40 days")
        change = stack.preview()
        assert "1 to update" in change.out and "stream_data-retention" in change.out, change
        assert "replace" not in change.out, change
        stack.up()
        after = {r[0]: r[1] for r in sql_run(fresh_dsn, "SELECT policy_name, job_id "
                                                          "FROM lifecycle.lifecycle_policy_status")}
        assert after == before and before["stream_data-retention"] is None
        assert sql_run(fresh_dsn, "SELECT parameters ->> 'drop_after' FROM lifecycle.policy_declarations "
                                  "WHERE policy_name = 'stream_data-retention'") == [("40 days",)]

        # The runner executes what is due and records it.
        manager = DataLifecycleManager(fresh_dsn)
        results = manager.run(stack="dev")
        assert {r.status for r in results} == {"succeeded"}
        dropped = next(r for r in results if r.policy_name == "stream_data-retention")
        assert dropped.chunks_affected > 0 and dropped.rows_after < dropped.rows_before
        assert sql_run(fresh_dsn, "SELECT count(*), min(state), max(state) FROM lifecycle.archives WHERE "
                                  "hypertable = 'public.stream_data'") == [(dropped.chunks_affected, "dropped",
                                                                            "dropped")]
        compressed = next(r for r in results if r.policy_name == "stream_data-compress")
        assert compressed.chunks_affected > 0
        stats = {c.hypertable: c for c in manager.compression()}
        assert stats["public.stream_data"].compressed_chunks == compressed.chunks_affected
        assert manager.due("dev") == []  # everything just ran
        assert stack.preview("--refresh", "--expect-no-changes").code == 0
    finally:
        stack.cleanup()

    # The same program with prod's config on the dev stack's database: every object there is the dev stack's,
    # so the preview refuses, naming the owner, and changes nothing.
    prod_config = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())["config"]
    prod = PulumiStack(tmp_path / "prod", pulumi_home=pulumi_home, dsn=fresh_dsn, stack="prod")
    try:
        project(prod, prod_config)
        preview = prod.preview()
        assert preview.code != 0, preview
        assert "of stack lifecycle-test/dev" in preview.out and "adopt=True" in preview.out, preview
        assert sql_run(fresh_dsn, "SELECT parameters ->> 'drop_after' FROM lifecycle.policy_declarations "
                                  "WHERE policy_name = 'stream_data-retention'") == [("40 days",)]
    finally:
        prod.cleanup()


@pytest.mark.parametrize("key, value, fragment", [
    ("lifecycle:tables.stream_data.retention.drop_afer", "30 days",
     "lifecycle:tables.stream_data.retention.drop_afer"),
    ("lifecycle:tables.signals.compression.after", "soon",
     "(stack config lifecycle:tables.signals.compression.after)"),
    ("lifecycle:tables.no_such_table.time_column", "ts", "(stack config lifecycle:tables.no_such_table)"),
    ("lifecycle:bookkeeping.drop_after", "3 dayz", "(stack config lifecycle:bookkeeping.drop_after)"),
])
def test_stack_e2e_config_errors_name_the_key(tmp_path: Path, pulumi_home: Path, tables_dsn: str, key: str,
                                              value: str, fragment: str) -> None:
    stack = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn=tables_dsn, stack="dev")
    try:
        project(stack, dev_config())
        stack.run("config", "set", "--path", key, "--", value)
        preview = stack.preview()
        assert preview.code != 0 and fragment in preview.out, preview
    finally:
        stack.cleanup()
