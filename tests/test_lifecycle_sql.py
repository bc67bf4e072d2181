"""The lifecycle schema (lifecycle_resources/db/migrations_sql/00*.sql) against a real TimescaleDB: tables,
views, functions.

Every test builds its own hypertable (~40 days of rows every 10 minutes, 1-day chunks) in the schema of its
own; policy names include that schema, since the lifecycle schema is shared by the whole session.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.conftest import sql_run

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parent.parent / "lifecycle_resources" / "db" / "migrations_sql"
# Every migration, in order: re-applying only some of them would put back an older body of a function a later
# one replaced (005's _drop_chunks without 009's and 013's refusals) for every test after this module.
MIGRATION_FILES = tuple(sorted(p.name for p in MIGRATIONS.glob("[0-9][0-9][0-9]_*.sql")))

ROWS = 40 * 24 * 6 + 1  # every 10 minutes over 40 days, both ends included


def apply_migrations(dsn: str) -> None:
    """Each file as ONE multi-statement string, in order (as a migration runner would)."""
    for name in MIGRATION_FILES:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute((MIGRATIONS / name).read_text())


@pytest.fixture(scope="module")
def dsn(tsdb_dsn: str, lifecycle_schema: None) -> str:
    """The session's TimescaleDB with the lifecycle schema, migrated by the project's migration runner."""
    return tsdb_dsn


def rows(dsn: str, statement: str | sql.Composable, params: tuple | None = None) -> list[dict[str, Any]]:
    """One statement on a short-lived connection, rows as dicts."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def one(dsn: str, statement: str | sql.Composable, params: tuple | None = None) -> dict[str, Any]:
    result = rows(dsn, statement, params)
    assert len(result) == 1, result
    return result[0]


def value(dsn: str, statement: str | sql.Composable, params: tuple | None = None) -> Any:
    return next(iter(one(dsn, statement, params).values()))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def refused(dsn: str, statement: str, params: tuple | None = None) -> str:
    """Runs a statement that must fail; returns the error message."""
    with pytest.raises(psycopg.Error) as info:
        sql_run(dsn, statement, params)
    return str(info.value)


class Hypertable:
    """A hypertable of a test's own: `rel` is its quoted name (for ::regclass), `label` 'schema.table'."""

    def __init__(self, dsn: str, schema: str, table: str = "readings", time_col: str = "ts",
                 compress: bool = False, analyze: bool = True) -> None:
        self.dsn, self.schema, self.table, self.time_col = dsn, schema, table, time_col
        self.ident = sql.Identifier(schema, table)
        self.rel = f"{quote_ident(schema)}.{quote_ident(table)}"
        self.label = f"{schema}.{table}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} ({} timestamptz NOT NULL, device integer NOT NULL, "
                                 "value double precision NOT NULL)").format(self.ident, sql.Identifier(time_col)))
            conn.execute("SELECT create_hypertable(%s::regclass, by_range(%s, interval '1 day'))",
                         (self.rel, time_col))
            conn.execute(sql.SQL("INSERT INTO {} SELECT t, (extract(epoch FROM t)::bigint / 600) % 5, random() "
                                 "FROM generate_series(now() - interval '40 days', now(), interval '10 minutes') t")
                         .format(self.ident))
            if compress:
                conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress)").format(self.ident))
            if analyze:  # runs report estimated rows: with fresh statistics they are these small tables' counts
                conn.execute(sql.SQL("ANALYZE {}").format(self.ident))

    def count(self) -> int:
        return value(self.dsn, sql.SQL("SELECT count(*) FROM {}").format(self.ident))

    def chunks(self, older_than: str | None = None) -> list[str]:
        if older_than is None:
            return [r["c"] for r in rows(self.dsn, "SELECT c::text AS c FROM show_chunks(%s::regclass) c",
                                         (self.rel,))]
        return [r["c"] for r in rows(self.dsn, "SELECT c::text AS c FROM show_chunks(%s::regclass, "
                                               "older_than => %s::interval) c", (self.rel, older_than))]

    def rows_in(self, chunks: list[str]) -> int:
        return sum(value(self.dsn, sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(c))) for c in chunks)

    def compressed(self) -> dict[str, bool]:
        return {f"{r['chunk_schema']}.{r['chunk_name']}": r["is_compressed"] for r in rows(
            self.dsn, "SELECT chunk_schema, chunk_name, is_compressed FROM timescaledb_information.chunks "
                      "WHERE hypertable_schema = %s AND hypertable_name = %s", (self.schema, self.table))}

    def size(self) -> int:
        return value(self.dsn, "SELECT hypertable_size(%s::regclass)", (self.rel,))

    def jobs(self, proc: str) -> list[dict[str, Any]]:
        return rows(self.dsn, "SELECT job_id, schedule_interval, config FROM timescaledb_information.jobs "
                              "WHERE proc_name = %s AND hypertable_schema = %s AND hypertable_name = %s",
                    (proc, self.schema, self.table))

    def registrations(self, policy_name: str) -> list[dict[str, Any]]:
        return rows(self.dsn, "SELECT * FROM lifecycle.lifecycle_policies WHERE policy_name = %s "
                              "ORDER BY registered_at", (policy_name,))

    def executions(self, policy_name: str) -> list[dict[str, Any]]:
        return rows(self.dsn, "SELECT * FROM lifecycle.lifecycle_executions WHERE policy_name = %s "
                              "ORDER BY started_at", (policy_name,))

    def metrics(self) -> list[dict[str, Any]]:
        return rows(self.dsn, "SELECT * FROM lifecycle.compression_metrics WHERE hypertable = %s "
                              "ORDER BY captured_at", (self.label,))

    def retention(self, window: str, *args: Any, **named: Any) -> int:
        return self._create("retention", window, *args, **named)

    def compression(self, window: str, *args: Any, **named: Any) -> int:
        return self._create("compression", window, *args, **named)

    def _create(self, kind: str, window: str, schedule: str | None = None, **named: Any) -> int:
        extra = "".join(f", p_{k} => %s" for k in named)
        return value(self.dsn, f"SELECT lifecycle.create_lifecycle_{kind}_policy(%s::regclass, %s, "
                               f"%s::interval{extra})", (self.rel, window, schedule, *named.values()))

    def declare(self, policy_name: str, kind: str, parameters: str, stack: str = "", job_id: int | None = None,
                enabled: bool = True) -> bool:
        """A declaration recorded by hand (register_lifecycle_policy touches no job)."""
        return value(self.dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, %s, %s::jsonb, %s, %s, %s, "
                               "%s, %s)", (policy_name, self.label, kind, parameters, job_id,
                                           *(stack.split("/", 1) if "/" in stack else ("", stack)), None, enabled))

    def execute(self, policy_name: str, dry_run: bool = False) -> dict[str, Any]:
        return one(self.dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s, %s)", (policy_name, dry_run))


@pytest.fixture
def ht(dsn: str, schema: str) -> Hypertable:
    return Hypertable(dsn, schema)


@pytest.fixture
def cht(dsn: str, schema: str) -> Hypertable:
    """A hypertable with compression enabled."""
    return Hypertable(dsn, schema, compress=True)


# --------------------------------------------------------------------------------------------
# The migrations


def test_migrations_create_the_schema_and_rerun_cleanly(dsn: str) -> None:
    for name in MIGRATION_FILES:
        text = (MIGRATIONS / name).read_text()
        assert not any(line.lstrip().startswith("\\") for line in text.splitlines()), f"psql meta-command in {name}"
    apply_migrations(dsn)  # a second run over the existing schema changes nothing and fails nothing

    tables = {r["relname"] for r in rows(dsn, "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                                              "ON n.oid = c.relnamespace WHERE n.nspname = 'lifecycle' "
                                              "AND c.relkind IN ('r', 'v')")}
    assert {"lifecycle_policies", "lifecycle_executions", "compression_metrics", "archive_metadata",
            "cleanup_operations", "lifecycle_policy_status", "compression_statistics",
            "cleanup_statistics", "cleanup_rules", "cleanup_quarantine", "cleanup_rule_status"} <= tables
    # Plain tables: making them hypertables is the stack's job. Each starts with its timestamptz column.
    for table, time_col in (("lifecycle_policies", "registered_at"), ("lifecycle_executions", "started_at"),
                            ("compression_metrics", "captured_at"), ("archive_metadata", "archived_at"),
                            ("cleanup_operations", "executed_at")):
        first = one(dsn, "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull "
                         "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum = 1",
                    (f"lifecycle.{table}",))
        assert first == {"attname": time_col, "type": "timestamp with time zone", "attnotnull": True}
        assert value(dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                          "WHERE hypertable_schema = 'lifecycle' AND hypertable_name = %s", (table,)) == 0
        assert value(dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass "
                          "AND contype IN ('u', 'p')", (f"lifecycle.{table}",)) == 0

    signatures = {r["sig"]: r["result"] for r in rows(
        dsn, "SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ')' AS sig, "
             "pg_get_function_result(p.oid) AS result FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
             "WHERE n.nspname = 'lifecycle' AND p.proname NOT LIKE '\\_%'")}
    assert signatures == {
        "create_lifecycle_retention_policy(p_hypertable regclass, p_drop_after text, "
        "p_schedule_interval interval DEFAULT NULL::interval, p_stack text DEFAULT NULL::text, "
        "p_environment text DEFAULT NULL::text, p_policy_name text DEFAULT NULL::text)": "integer",
        "create_lifecycle_compression_policy(p_hypertable regclass, p_compress_after text, "
        "p_schedule_interval interval DEFAULT NULL::interval, p_stack text DEFAULT NULL::text, "
        "p_environment text DEFAULT NULL::text, p_policy_name text DEFAULT NULL::text)": "integer",
        "execute_lifecycle_policy(p_policy_name text, p_dry_run boolean DEFAULT false)":
            "lifecycle.lifecycle_executions",
        "execute_cleanup_operation(p_rule_name text, p_dry_run boolean DEFAULT true)": "lifecycle.cleanup_operations",
        "count_cleanup_matches(p_rule_name text, p_from text DEFAULT NULL::text, p_to text DEFAULT NULL::text)":
            "bigint",
        "register_cleanup_rule(p_rule_name text, p_hypertable text, p_kind text, p_spec jsonb, "
        "p_action text DEFAULT 'quarantine'::text, p_project text DEFAULT ''::text, p_stack text DEFAULT ''::text)":
            "boolean",
        "unregister_cleanup_rule(p_rule_name text, p_project text DEFAULT ''::text, p_stack text DEFAULT ''::text)":
            "boolean",
        "restore_cleanup_quarantine(p_rule_name text)": "lifecycle.cleanup_operations",
        "execute_lifecycle_policy(p_policy_name text, p_dry_run boolean, p_stack text)":
            "lifecycle.lifecycle_executions",
        "register_lifecycle_policy(p_policy_name text, p_hypertable text, p_kind text, p_parameters jsonb, "
        "p_job_id integer, p_project text DEFAULT ''::text, p_stack text DEFAULT ''::text, "
        "p_environment text DEFAULT NULL::text, p_enabled boolean DEFAULT true)": "boolean",
        "unregister_lifecycle_policy(p_policy_name text, p_project text DEFAULT ''::text, "
        "p_stack text DEFAULT ''::text)": "boolean",
        "get_lifecycle_statistics(p_hypertable regclass DEFAULT NULL::regclass)":
            "TABLE(hypertable text, total_chunks integer, compressed_chunks integer, before_bytes bigint, "
            "after_bytes bigint, compression_ratio numeric, policies integer, executions integer, "
            "failed_executions integer, last_execution_at timestamp with time zone, chunks_dropped bigint, "
            "chunks_compressed bigint)",
    }


def test_views_do_not_depend_on_timescaledb_objects(dsn: str) -> None:
    """A user view depending on timescaledb_information.* blocks ALTER EXTENSION timescaledb UPDATE."""
    deps = rows(dsn, """
        SELECT DISTINCT v.relname AS view, coalesce(dn.nspname, pn.nspname) AS dep_schema
        FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_class v ON v.oid = r.ev_class
        JOIN pg_namespace vn ON vn.oid = v.relnamespace AND vn.nspname = 'lifecycle'
        LEFT JOIN pg_class dc ON d.refclassid = 'pg_class'::regclass AND dc.oid = d.refobjid
        LEFT JOIN pg_namespace dn ON dn.oid = dc.relnamespace
        LEFT JOIN pg_proc dp ON d.refclassid = 'pg_proc'::regclass AND dp.oid = d.refobjid
        LEFT JOIN pg_namespace pn ON pn.oid = dp.pronamespace
        WHERE coalesce(dn.nspname, pn.nspname) IS NOT NULL""")
    schemas = {r["dep_schema"] for r in deps}
    assert schemas <= {"lifecycle", "pg_catalog"}, deps


# --------------------------------------------------------------------------------------------
# create_lifecycle_retention_policy / create_lifecycle_compression_policy


def test_create_retention_policy_adds_then_alters_the_same_job(ht: Hypertable) -> None:
    name = f"retention:{ht.label}"
    job_id = ht.retention("30 days", stack="dev-stack", environment="dev")
    assert job_id >= 1000
    [job] = ht.jobs("policy_retention")
    assert job["job_id"] == job_id and job["config"]["drop_after"] == "30 days"
    [reg] = ht.registrations(name)
    assert (reg["hypertable"], reg["kind"], reg["job_id"], reg["stack"], reg["environment"], reg["enabled"]) == (
        ht.label, "retention", job_id, "dev-stack", "dev", True)
    assert reg["parameters"] == {"drop_after": "30 days", "schedule_interval": "1 day", "scheduled": True}

    # A new window and schedule: the same job, altered in place.
    assert ht.retention("20 days", "6 hours") == job_id
    [job] = ht.jobs("policy_retention")
    assert job["config"]["drop_after"] == "20 days"
    assert job["schedule_interval"] == dt.timedelta(hours=6)
    assert ht.registrations(name)[-1]["parameters"] == {"drop_after": "20 days", "schedule_interval": "06:00:00",
                                                         "scheduled": True}

    # The same window spelt differently is no change: the job's config keeps its spelling.
    assert ht.retention("480 hours") == job_id
    [job] = ht.jobs("policy_retention")
    assert job["config"]["drop_after"] == "20 days" and job["schedule_interval"] == dt.timedelta(hours=6)
    regs = ht.registrations(name)
    assert len(regs) == 3
    # The registration records the declaration, as the database prints it.
    assert regs[-1]["parameters"] == {"drop_after": "480:00:00", "schedule_interval": "06:00:00", "scheduled": True}
    assert regs[0]["registered_at"] < regs[1]["registered_at"] < regs[2]["registered_at"]


def test_create_compression_policy_adds_then_alters_the_same_job(cht: Hypertable) -> None:
    name = f"compress-{cht.schema}"
    job_id = cht.compression("7 days", policy_name=name)
    [job] = cht.jobs("policy_compression")
    assert job["job_id"] == job_id and job["config"]["compress_after"] == "7 days"
    assert cht.registrations(name)[0]["parameters"] == {"compress_after": "7 days",
                                                         "schedule_interval": "12:00:00", "scheduled": True}
    assert cht.registrations(name)[0]["kind"] == "compression"

    assert cht.compression("P14D", "1 day", policy_name=name) == job_id
    [job] = cht.jobs("policy_compression")
    assert job["config"]["compress_after"] == "14 days" and job["schedule_interval"] == dt.timedelta(days=1)
    regs = cht.registrations(name)
    assert len(regs) == 2 and regs[-1]["parameters"] == {"compress_after": "14 days", "schedule_interval": "1 day",
                                                         "scheduled": True}
    assert cht.registrations(f"compression:{cht.label}") == []


def test_create_adopts_a_job_made_outside_lifecycle(ht: Hypertable) -> None:
    existing = value(ht.dsn, "SELECT add_retention_policy(%s::regclass, drop_after => interval '60 days')",
                     (ht.rel,))
    assert ht.retention("45 days") == existing
    [job] = ht.jobs("policy_retention")
    assert job["job_id"] == existing and job["config"]["drop_after"] == "45 days"


@pytest.mark.parametrize("window", ["banana", "-1 day", "0 seconds", "1 day -25 hours", ""])
def test_create_refuses_bad_windows(ht: Hypertable, window: str) -> None:
    message = refused(ht.dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, %s)",
                      (ht.rel, window))
    assert ht.label in message
    if window:
        assert repr(window) in message  # quoted as SQL quotes it, e.g. 'banana'
    assert ht.jobs("policy_retention") == []
    assert ht.registrations(f"retention:{ht.label}") == []


def test_create_refuses_plain_tables_and_compression_without_compress(dsn: str, schema: str,
                                                                       ht: Hypertable) -> None:
    sql_run(dsn, sql.SQL("CREATE TABLE {} (ts timestamptz NOT NULL)").format(sql.Identifier(schema, "plain")))
    message = refused(dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '30 days')",
                      (f'"{schema}".plain',))
    assert f"{schema}.plain is not a hypertable" in message

    message = refused(dsn, "SELECT lifecycle.create_lifecycle_compression_policy(%s::regclass, '7 days')",
                      (ht.rel,))
    assert f"compression is not enabled on hypertable {ht.label}" in message
    assert ht.jobs("policy_compression") == []


def test_integer_time_hypertables_take_integer_windows(dsn: str, schema: str) -> None:
    ident = sql.Identifier(schema, "events")
    rel = f'"{schema}".events'
    sql_run(dsn, sql.SQL("CREATE TABLE {} (seq bigint NOT NULL, v int)").format(ident))
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('seq', 100))", (rel,))
    sql_run(dsn, sql.SQL("INSERT INTO {} SELECT g, 1 FROM generate_series(0, 999) g").format(ident))
    sql_run(dsn, sql.SQL("ANALYZE {}").format(ident))

    message = refused(dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '300')", (rel,))
    assert f"{schema}.events" in message and "integer_now" in message

    sql_run(dsn, sql.SQL("CREATE FUNCTION {}() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT 1000::bigint'")
            .format(sql.Identifier(schema, "now_seq")))
    sql_run(dsn, "SELECT set_integer_now_func(%s::regclass, %s::regproc)", (rel, f'"{schema}".now_seq'))
    message = refused(dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '3 days')", (rel,))
    assert f"{schema}.events" in message and "'3 days'" in message

    job_id = value(dsn, "SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '300')", (rel,))
    assert value(dsn, "SELECT config -> 'drop_after' FROM timescaledb_information.jobs WHERE job_id = %s",
                 (job_id,)) == 300
    name = f"retention:{schema}.events"
    assert one(dsn, "SELECT parameters FROM lifecycle.lifecycle_policies WHERE policy_name = %s",
               (name,))["parameters"]["drop_after"] == "300"

    # integer_now() = 1000, drop_after 300: the chunks entirely below 700 go (7 chunks of 100 rows).
    result = one(dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s)", (name,))
    assert result["status"] == "succeeded", result["error"]
    assert (result["chunks_affected"], result["rows_before"], result["rows_after"]) == (7, 1000, 300)
    assert result["details"]["older_than"] == "700"
    assert value(dsn, sql.SQL("SELECT min(seq) FROM {}").format(ident)) == 700


# --------------------------------------------------------------------------------------------
# execute_lifecycle_policy


def test_execute_retention_drops_the_old_chunks(ht: Hypertable) -> None:
    name = f"retention:{ht.label}"
    job_id = ht.retention("30 days")
    old = ht.chunks("30 days")
    assert 8 <= len(old) <= 12
    old_rows, total, size = ht.rows_in(old), ht.count(), ht.size()
    assert total == ROWS

    result = ht.execute(name)
    assert result["status"] == "succeeded", result["error"]
    assert (result["policy_name"], result["hypertable"], result["kind"], result["job_id"]) == (
        name, ht.label, "retention", job_id)
    assert result["dry_run"] is False and result["error"] is None
    assert result["chunks_affected"] == len(old)
    assert sorted(result["details"]["chunks"]) == sorted(old)
    assert result["rows_before"] == total and result["rows_after"] == ht.count()
    assert result["rows_before"] - result["rows_after"] == old_rows
    assert result["bytes_before"] == size and result["bytes_after"] == ht.size() < size
    assert result["started_at"] <= result["finished_at"]
    assert ht.chunks("30 days") == []
    assert ht.executions(name) == [result]

    again = ht.execute(name)
    assert again["status"] == "succeeded" and again["chunks_affected"] == 0
    assert again["rows_before"] == again["rows_after"] == result["rows_after"]


def test_execute_retention_on_quoted_names(dsn: str, schema: str) -> None:
    odd = Hypertable(dsn, schema, table="Sensor Data", time_col="time")
    name = f"retention:{schema}.Sensor Data"
    odd.retention("35 days")
    assert odd.registrations(name)[0]["hypertable"] == f"{schema}.Sensor Data"
    old = odd.chunks("35 days")
    result = odd.execute(name)
    assert result["status"] == "succeeded", result["error"]
    assert result["chunks_affected"] == len(old) > 0
    assert odd.chunks("35 days") == []


def test_execute_compression_compresses_the_old_chunks(cht: Hypertable) -> None:
    name = f"compression:{cht.label}"
    cht.compression("7 days")
    old = cht.chunks("7 days")
    # Two of them are compressed already: they are not candidates.
    for chunk in old[:2]:
        sql_run(cht.dsn, "SELECT compress_chunk(%s::regclass)", (chunk,))
    candidates = old[2:]
    total = cht.count()

    result = cht.execute(name)
    assert result["status"] == "succeeded", result["error"]
    assert result["chunks_affected"] == len(candidates)
    assert sorted(result["details"]["chunks"]) == sorted(candidates)
    # Estimates, flagged as such; the two chunks compressed just now (their compressed relations never
    # analyzed) count the rows they held when compressed, not 0: with fresh statistics that is the count.
    assert result["rows_before"] == result["rows_after"] == total
    assert result["rows_estimated"] is True and total == cht.count()
    state = cht.compressed()
    assert all(state[c] for c in old)
    assert not any(compressed for chunk, compressed in state.items() if chunk not in old)

    [metric] = cht.metrics()
    assert (metric["total_chunks"], metric["compressed_chunks"]) == (len(state), len(old))
    stats = one(cht.dsn, "SELECT * FROM hypertable_compression_stats(%s::regclass)", (cht.rel,))
    assert metric["before_bytes"] == stats["before_compression_total_bytes"]
    assert metric["after_bytes"] == stats["after_compression_total_bytes"]

    again = cht.execute(name)
    assert again["status"] == "succeeded" and again["chunks_affected"] == 0
    assert len(cht.metrics()) == 2


def test_dry_runs_change_nothing(cht: Hypertable) -> None:
    retention, compression = f"retention:{cht.label}", f"compression:{cht.label}"
    cht.retention("30 days")
    cht.compression("7 days")
    chunks, state, total, size = cht.chunks(), cht.compressed(), cht.count(), cht.size()
    to_drop = cht.chunks("30 days")
    drop_bytes = sum(r["total_bytes"] for r in rows(
        cht.dsn, "SELECT format('%%I.%%I', chunk_schema, chunk_name) AS c, total_bytes "
                 "FROM chunks_detailed_size(%s::regclass)", (cht.rel,)) if r["c"] in to_drop)

    result = cht.execute(retention, dry_run=True)
    assert (result["status"], result["dry_run"], result["error"]) == ("dry_run", True, None)
    assert result["chunks_affected"] == len(to_drop)
    assert sorted(result["details"]["chunks"]) == sorted(to_drop)
    assert result["rows_before"] == total and result["rows_after"] == total - cht.rows_in(to_drop)
    assert result["bytes_before"] == size and result["bytes_after"] == size - drop_bytes

    result = cht.execute(compression, dry_run=True)
    assert result["status"] == "dry_run"
    assert result["chunks_affected"] == len(cht.chunks("7 days"))
    assert result["rows_before"] == result["rows_after"] == total

    assert (cht.chunks(), cht.compressed(), cht.count(), cht.size()) == (chunks, state, total, size)
    assert cht.metrics() == []
    # A dry run is not a run: the policy is still due.
    for name in (retention, compression):
        assert value(cht.dsn, "SELECT next_due = now() FROM lifecycle.lifecycle_policy_status "
                              "WHERE policy_name = %s", (name,)) is True


def test_a_failure_is_logged_and_leaves_the_data_alone(ht: Hypertable) -> None:
    name = f"garbage-{ht.schema}"
    ht.declare(name, "retention", '{"drop_after": "banana"}')
    chunks, total = ht.chunks(), ht.count()

    result = ht.execute(name)  # logged, not raised
    assert result["status"] == "failed" and result["dry_run"] is False
    assert "banana" in result["error"] and ht.label in result["error"]
    assert result["chunks_affected"] == 0 and result["rows_after"] is None
    assert result["details"]["sqlstate"] == "22023"
    assert (ht.chunks(), ht.count()) == (chunks, total)
    assert ht.executions(name) == [result]
    status = one(ht.dsn, "SELECT * FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s", (name,))
    assert (status["last_status"], status["last_error"], status["job_exists"]) == ("failed", result["error"], False)


def test_a_failure_halfway_rolls_everything_back(cht: Hypertable) -> None:
    """Compression fails on the 4th chunk: the 3 compressed before it are rolled back too."""
    name = f"compression:{cht.label}"
    cht.compression("7 days")
    old = cht.chunks("7 days")
    assert len(old) > 4
    # A frozen chunk refuses compress_chunk (the mechanism tiered storage uses).
    assert value(cht.dsn, "SELECT _timescaledb_functions.freeze_chunk(%s::regclass)", (old[3],)) is True

    result = cht.execute(name)
    assert result["status"] == "failed"
    assert "frozen" in result["error"]
    assert result["chunks_affected"] == 0
    assert sorted(result["details"]["planned_chunks"]) == sorted(old) and "chunks" not in result["details"]
    assert not any(cht.compressed().values())
    assert cht.metrics() == []
    assert cht.count() == ROWS


def test_failure_when_the_hypertable_is_gone(ht: Hypertable) -> None:
    name = f"retention:{ht.label}"
    ht.retention("30 days")
    sql_run(ht.dsn, sql.SQL("DROP TABLE {}").format(ht.ident))
    result = ht.execute(name)
    assert result["status"] == "failed"
    assert f"hypertable {ht.label} does not exist" in result["error"]


def test_unknown_policy_names_are_refused(dsn: str, schema: str) -> None:
    message = refused(dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s)", (f"nope-{schema}",))
    assert f"no policy named 'nope-{schema}'" in message
    assert value(dsn, "SELECT count(*) FROM lifecycle.lifecycle_executions WHERE policy_name = %s",
                 (f"nope-{schema}",)) == 0


def test_registry_declarations_outlive_the_history_retention(ht: Hypertable) -> None:
    """Retention on lifecycle_policies (the history) drops old rows: the current declaration stays."""
    name = f"retention:{ht.label}"
    ht.retention("30 days")
    sql_run(ht.dsn, "DELETE FROM lifecycle.lifecycle_policies WHERE policy_name = %s", (name,))  # as drop_chunks would
    assert value(ht.dsn, "SELECT enabled FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s", (name,))
    assert ht.execute(name)["status"] == "succeeded"
    assert ht.registrations(name) == []  # a run writes no heartbeat into the history


def test_registry_unchanged_declarations_append_no_history(ht: Hypertable) -> None:
    name = f"decl-{ht.schema}"
    assert ht.declare(name, "retention", '{"drop_after": "30 days"}') is True
    assert ht.declare(name, "retention", '{"drop_after": "30 days"}') is False
    assert ht.declare(name, "retention", '{"drop_after": "31 days"}') is True
    assert [r["parameters"]["drop_after"] for r in ht.registrations(name)] == ["30 days", "31 days"]


def test_execute_refuses_a_removed_policy(ht: Hypertable) -> None:
    name = f"retention:{ht.label}"
    ht.retention("30 days")
    assert value(ht.dsn, "SELECT lifecycle.unregister_lifecycle_policy(%s)", (name,)) is True
    chunks = ht.chunks()
    message = refused(ht.dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s)", (name,))
    assert f"policy '{name}' was removed" in message and "it is not run" in message
    assert ht.chunks() == chunks and ht.executions(name) == []
    status = one(ht.dsn, "SELECT enabled FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s", (name,))
    assert status["enabled"] is False
    assert [r["enabled"] for r in ht.registrations(name)] == [True, False]


def test_registry_scoped_by_project_and_stack(ht: Hypertable) -> None:
    """One policy name in two stacks (and a project): three declarations, never mixed up."""
    name = f"metrics-retention-{ht.schema}"
    for stack, window in (("proj/dev", "30 days"), ("proj/prod", "35 days"), ("other/dev", "39 days")):
        ht.declare(name, "retention", f'{{"drop_after": "{window}"}}', stack=stack)
    status = {r["stack"]: r["parameters"]["drop_after"] for r in rows(
        ht.dsn, "SELECT stack, parameters FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s", (name,))}
    assert status == {"proj/dev": "30 days", "proj/prod": "35 days", "other/dev": "39 days"}

    message = refused(ht.dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s)", (name,))
    assert "declared by several stacks" in message and "proj/dev" in message and "proj/prod" in message
    message = refused(ht.dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s, true, 'dev')", (name,))
    assert "several stacks (other/dev, proj/dev)" in message

    prod = one(ht.dsn, "SELECT * FROM lifecycle.execute_lifecycle_policy(%s, false, 'proj/prod')", (name,))
    assert (prod["status"], prod["stack"], prod["details"]["drop_after"]) == ("succeeded", "proj/prod", "35 days")
    last = {r["stack"]: r["last_status"] for r in rows(
        ht.dsn, "SELECT stack, last_status FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s", (name,))}
    assert last == {"proj/dev": None, "proj/prod": "succeeded", "other/dev": None}


def test_registry_unscheduled_jobs_stay_declared(ht: Hypertable) -> None:
    """scheduled => false hands the job to the runner: the declaration stays live (and due)."""
    name = f"retention:{ht.label}"
    job_id = ht.retention("30 days")
    sql_run(ht.dsn, "SELECT alter_job(%s, scheduled => false)", (job_id,))
    ht.retention("30 days")
    s = one(ht.dsn, "SELECT enabled, parameters, next_due <= now() AS due FROM lifecycle.lifecycle_policy_status "
                    "WHERE policy_name = %s", (name,))
    assert (s["enabled"], s["parameters"]["scheduled"], s["due"]) == (True, False, True)


def test_execute_reports_estimates_without_scanning_the_table(ht: Hypertable) -> None:
    """No count of the table: the chunks a retention run keeps are not scanned at all."""
    name = f"retention:{ht.label}"
    ht.retention("30 days")
    kept = [c for c in ht.chunks() if c not in ht.chunks("30 days")]
    scans = sql.SQL("SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) AS n FROM pg_stat_user_tables "
                    "WHERE relid = ANY ({}::regclass[])").format(sql.Literal(kept))
    before = value(ht.dsn, scans)
    result = ht.execute(name)
    assert result["status"] == "succeeded", result["error"]
    assert result["rows_estimated"] is True and result["rows_before"] == ROWS
    assert value(ht.dsn, scans) == before


def test_execute_estimates_rows_of_tables_never_analyzed(dsn: str, schema: str) -> None:
    """Without statistics (approximate_row_count says 0) the planner's estimate stands in: not 0, not a count."""
    fresh = Hypertable(dsn, schema, analyze=False)
    name = f"retention:{fresh.label}"
    fresh.retention("30 days")
    result = fresh.execute(name, dry_run=True)
    assert result["rows_estimated"] is True
    assert ROWS / 3 < result["rows_before"] < ROWS * 3, result
    assert 0 < result["rows_before"] - result["rows_after"] < result["rows_before"]


def test_execute_steps_take_the_providers_table_lock(cht: Hypertable) -> None:
    """Dropping and compressing chunks take the advisory lock reconcile/locks.py takes for `pulumi up`."""
    from lifecycle_resources.identifiers import TableName
    from lifecycle_resources.reconcile.locks import lock_table
    from lifecycle_resources.runner.archive import archiver

    # pid is NULL in the embedded (single-process) server
    held = ("SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' "
            "AND coalesce(pid, pg_backend_pid()) = pg_backend_pid()")
    first = cht.chunks()[0]  # the embedded server serves one connection at a time: read it before
    with psycopg.connect(cht.dsn) as conn:  # not autocommit: each block below is one transaction
        lock_table(conn, TableName(schema=cht.schema, name=cht.table))
        provider = conn.execute(held).fetchall()
        conn.rollback()
        conn.execute("SELECT lifecycle._compress_chunk(%s::regclass, %s::regclass)", (cht.rel, first))
        compressing = conn.execute(held).fetchall()
        conn.rollback()
        conn.execute("SELECT lifecycle._drop_chunks(%s::regclass, '30 days', 'interval')", (cht.rel,))
        dropping = conn.execute(held).fetchall()
        conn.rollback()
        archiver.lock_holds(conn, TableName(schema=cht.schema, name=cht.table), exclusive=False)
        holds_lock = conn.execute(held).fetchall()
        conn.rollback()
    # and a drop, the holds' lock too (014: a hold being added and a drop exclude each other)
    assert len(provider) == 1 and compressing == provider and sorted(dropping) == sorted(provider + holds_lock)


def test_lifecycle_functions_all_set_search_path(dsn: str) -> None:
    """A function resolving names through the caller's search_path can be hijacked by the caller's objects."""
    loose = rows(dsn, "SELECT p.oid::regprocedure::text AS fn, p.proconfig FROM pg_proc p "
                      "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'lifecycle' "
                      "AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)")
    assert loose == []


# --------------------------------------------------------------------------------------------
# The views and get_lifecycle_statistics


def test_compression_statistics_match_timescaledb(dsn: str, schema: str) -> None:
    cht = Hypertable(dsn, schema, table="compressed", compress=True)
    plain = Hypertable(dsn, schema, table="uncompressed")
    for chunk in cht.chunks("20 days"):
        sql_run(dsn, "SELECT compress_chunk(%s::regclass)", (chunk,))

    stats = one(dsn, "SELECT * FROM lifecycle.compression_statistics WHERE hypertable = %s", (cht.label,))
    ts = one(dsn, "SELECT * FROM hypertable_compression_stats(%s::regclass)", (cht.rel,))
    counts = one(dsn, "SELECT count(*) AS total, count(*) FILTER (WHERE is_compressed) AS compressed "
                      "FROM timescaledb_information.chunks WHERE hypertable_schema = %s AND hypertable_name = %s",
                 (schema, "compressed"))
    assert (stats["total_chunks"], stats["compressed_chunks"]) == (counts["total"], counts["compressed"])
    assert stats["compressed_chunks"] == len(cht.chunks("20 days")) > 0
    assert stats["before_bytes"] == ts["before_compression_total_bytes"] > 0
    assert stats["after_bytes"] == ts["after_compression_total_bytes"] > 0
    before, after = stats["before_bytes"], stats["after_bytes"]
    cents = Decimal("0.01")
    assert stats["compression_ratio"] == (Decimal(before) / after).quantize(cents, ROUND_HALF_UP)
    assert stats["space_saved_pct"] == (100 * (1 - Decimal(after) / before)).quantize(cents, ROUND_HALF_UP)

    other = one(dsn, "SELECT * FROM lifecycle.compression_statistics WHERE hypertable = %s", (plain.label,))
    assert (other["total_chunks"], other["compressed_chunks"], other["before_bytes"], other["after_bytes"],
            other["compression_ratio"], other["space_saved_pct"]) == (len(plain.chunks()), 0, 0, 0, None, None)

    every = {r["hypertable"] for r in rows(dsn, "SELECT hypertable FROM lifecycle.compression_statistics")}
    known = {f"{r['s']}.{r['n']}" for r in rows(dsn, "SELECT hypertable_schema AS s, hypertable_name AS n "
                                                     "FROM timescaledb_information.hypertables")}
    assert every == known


def test_policy_status_and_next_due(ht: Hypertable) -> None:
    name = f"retention:{ht.label}"
    job_id = ht.retention("30 days", "4 hours", stack="prod", environment="production")

    def status() -> dict[str, Any]:
        return one(ht.dsn, "SELECT *, next_due = now() AS due_now FROM lifecycle.lifecycle_policy_status "
                           "WHERE policy_name = %s", (name,))

    s = status()
    assert (s["hypertable"], s["kind"], s["job_id"], s["job_exists"], s["enabled"]) == (
        ht.label, "retention", job_id, True, True)
    assert (s["stack"], s["environment"]) == ("prod", "production")
    assert s["schedule_interval"] == dt.timedelta(hours=4)
    assert s["last_status"] is None and s["last_started_at"] is None and s["due_now"] is True

    ht.execute(name, dry_run=True)
    s = status()
    assert s["last_status"] == "dry_run" and s["due_now"] is True

    done = ht.execute(name)
    s = status()
    assert (s["last_status"], s["last_started_at"], s["last_finished_at"], s["last_error"]) == (
        "succeeded", done["started_at"], done["finished_at"], None)
    assert s["next_due"] == done["finished_at"] + dt.timedelta(hours=4)

    # A failure later does not move next_due: it still counts from the last success.
    sql_run(ht.dsn, "INSERT INTO lifecycle.lifecycle_executions (started_at, policy_name, hypertable, kind, "
                    "finished_at, status, error) VALUES (clock_timestamp(), %s, %s, 'retention', "
                    "clock_timestamp(), 'failed', 'boom')", (name, ht.label))
    s = status()
    assert (s["last_status"], s["last_error"]) == ("failed", "boom")
    assert s["next_due"] == done["finished_at"] + dt.timedelta(hours=4)

    # The job is gone: the registered schedule_interval ("04:00:00") takes over.
    sql_run(ht.dsn, "SELECT remove_retention_policy(%s::regclass)", (ht.rel,))
    s = status()
    assert (s["job_exists"], s["schedule_interval"]) == (False, None)
    assert s["next_due"] == done["finished_at"] + dt.timedelta(hours=4)

    # Neither a job nor a registered schedule: one day.
    ht.declare(name, "retention", '{"drop_after": "30 days", "schedule_interval": "not an interval"}', stack="prod")
    s = status()
    assert s["job_id"] is None and s["parameters"]["schedule_interval"] == "not an interval"
    assert s["next_due"] == done["finished_at"] + dt.timedelta(days=1)
    assert value(ht.dsn, "SELECT count(*) FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s",
                 (name,)) == 1


def test_get_lifecycle_statistics(dsn: str, schema: str) -> None:
    cht = Hypertable(dsn, schema, compress=True)
    other = Hypertable(dsn, schema, table="other")
    retention, compression = f"retention:{cht.label}", f"compression:{cht.label}"
    cht.retention("30 days")
    cht.compression("7 days")
    dropped = len(cht.chunks("30 days"))
    to_compress = len(cht.chunks("7 days")) - dropped
    cht.execute(retention, dry_run=True)
    cht.execute(retention)
    cht.execute(compression)
    cht.declare(f"bad-{schema}", "retention", '{"drop_after": "x"}')
    failed = cht.execute(f"bad-{schema}")
    assert failed["status"] == "failed"

    stats = one(dsn, "SELECT * FROM lifecycle.get_lifecycle_statistics(%s::regclass)", (cht.rel,))
    view = one(dsn, "SELECT * FROM lifecycle.compression_statistics WHERE hypertable = %s", (cht.label,))
    assert stats["hypertable"] == cht.label
    assert {k: stats[k] for k in ("total_chunks", "compressed_chunks", "before_bytes", "after_bytes",
                                  "compression_ratio")} == {
        k: view[k] for k in ("total_chunks", "compressed_chunks", "before_bytes", "after_bytes",
                             "compression_ratio")}
    assert stats["compressed_chunks"] == to_compress
    assert (stats["policies"], stats["executions"], stats["failed_executions"]) == (3, 4, 1)
    assert (stats["chunks_dropped"], stats["chunks_compressed"]) == (dropped, to_compress)
    assert stats["last_execution_at"] == failed["started_at"]

    quiet = one(dsn, "SELECT * FROM lifecycle.get_lifecycle_statistics(%s::regclass)", (other.rel,))
    assert (quiet["policies"], quiet["executions"], quiet["failed_executions"], quiet["last_execution_at"],
            quiet["chunks_dropped"], quiet["chunks_compressed"]) == (0, 0, 0, None, 0, 0)

    everything = {r["hypertable"]: r for r in rows(dsn, "SELECT * FROM lifecycle.get_lifecycle_statistics()")}
    assert everything[cht.label] == stats and everything[other.label] == quiet


def test_nothing_relies_on_the_sessions_search_path(ht: Hypertable) -> None:
    """The functions and views find TimescaleDB through its extension schema, not through search_path."""
    name = f"retention:{ht.label}"
    with psycopg.connect(ht.dsn, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET search_path = pg_catalog")
        assert conn.execute("SELECT lifecycle.create_lifecycle_retention_policy(%s::regclass, '30 days') AS j",
                            (ht.rel,)).fetchone()["j"] >= 1000
        result = conn.execute("SELECT * FROM lifecycle.execute_lifecycle_policy(%s)", (name,)).fetchone()
        assert result["status"] == "succeeded", result["error"]
        assert result["chunks_affected"] > 0
        assert conn.execute("SELECT job_exists FROM lifecycle.lifecycle_policy_status WHERE policy_name = %s",
                            (name,)).fetchone()["job_exists"] is True
        assert conn.execute("SELECT total_chunks FROM lifecycle.compression_statistics WHERE hypertable = %s",
                            (ht.label,)).fetchone()["total_chunks"] > 0
        assert conn.execute("SELECT executions FROM lifecycle.get_lifecycle_statistics(%s::regclass)",
                            (ht.rel,)).fetchone()["executions"] == 1
        rule = f"r-{ht.schema}"
        conn.execute("SELECT lifecycle.register_cleanup_rule(%s, %s, 'invalid', "
                     "'{\"checks\": [{\"column\": \"device\", \"check\": \"allowed\", \"values\": [\"0\", \"1\"]}]}')",
                     (rule, ht.label))
        cleaned = conn.execute("SELECT * FROM lifecycle.execute_cleanup_operation(%s, false)", (rule,)).fetchone()
        assert cleaned["status"] == "succeeded" and cleaned["rows_deleted"] > 0
        assert conn.execute("SELECT * FROM lifecycle.restore_cleanup_quarantine(%s)",
                            (rule,)).fetchone()["rows_restored"] == cleaned["rows_deleted"]
