"""Cleanup rules against a real TimescaleDB: lifecycle.register_cleanup_rule / execute_cleanup_operation /
restore_cleanup_quarantine (010_cleanup_rules.sql), the runner (DataLifecycleManager.cleanup, `lifecycle
cleanup`), compressed chunks included, and the preview's count (Python) agreeing with the runner's (SQL)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.reconcile import catalog, cleanup
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import server_under_test, sql_run
from tests.test_manager import lifecycle

pytestmark = pytest.mark.integration

HOURS = 10 * 24  # one row an hour over 10 days, 1-day chunks


def rows(dsn: str, statement: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def one(dsn: str, statement: str | sql.Composable, params: Any = None) -> dict[str, Any]:
    found = rows(dsn, statement, params)
    assert len(found) == 1, found
    return found[0]


class Tables:
    """signals (parent) and ticks (a hypertable, compressed up to 3 days ago), with bad rows of every kind."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema
        self.ticks, self.signals = f"{schema}.ticks", f"{schema}.signals"
        sql_run(dsn, f'CREATE TABLE "{schema}".signals (signal_id bigint, label text)')
        sql_run(dsn, f'INSERT INTO "{schema}".signals SELECT g, \'s\' FROM generate_series(0, 99) g')
        sql_run(dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, signal_id bigint, symbol text, '
                     "price double precision, qty integer, side text)")
        sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))",
                (f'"{schema}".ticks',))
        # g % 150 >= 100: a signal that does not exist; every 13th price NaN, 17th -1, 19th Infinity; every
        # 23rd symbol NULL; qty 0..49; side 'x' every 29th.
        sql_run(dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', g % 150, '
                     "CASE WHEN g % 23 = 0 THEN NULL ELSE 'S' || (g % 3) END, "
                     "CASE WHEN g % 13 = 0 THEN 'NaN'::float8 WHEN g % 17 = 0 THEN -1 WHEN g % 19 = 0 "
                     "THEN 'Infinity'::float8 ELSE g END, g % 50, CASE WHEN g % 29 = 0 THEN 'x' "
                     f"ELSE 'buy' END FROM generate_series(1, {HOURS}) g")
        sql_run(dsn, f'ALTER TABLE "{schema}".ticks SET (timescaledb.compress, '
                     "timescaledb.compress_segmentby = 'symbol')")
        sql_run(dsn, "SELECT compress_chunk(c) FROM show_chunks(%s::regclass, older_than => interval '3 days') c",
                (f'"{schema}".ticks',))

    def register(self, name: str, kind: str, spec: dict[str, Any], action: str = "quarantine",
                 stack: str = "") -> bool:
        return one(self.dsn, "SELECT lifecycle.register_cleanup_rule(%s, %s, %s, %s::jsonb, %s, '', %s) AS r",
                   (name, self.ticks, kind, json.dumps(spec), action, stack))["r"]

    def count(self, where: str = "true") -> int:
        return one(self.dsn, f'SELECT count(*) AS n FROM "{self.schema}".ticks WHERE {where}')["n"]

    def all_rows(self) -> list[str]:
        """Every row as PostgreSQL prints it (NaN equals NaN there, unlike in Python)."""
        return [r["r"] for r in rows(self.dsn, f'SELECT t::text AS r FROM "{self.schema}".ticks t ORDER BY t::text')]

    def compressed_chunks(self) -> int:
        return one(self.dsn, "SELECT count(*) AS n FROM timescaledb_information.chunks WHERE hypertable_schema = %s "
                             "AND is_compressed", (self.schema,))["n"]

    def execute(self, name: str, dry_run: bool) -> dict[str, Any]:
        return one(self.dsn, "SELECT * FROM lifecycle.execute_cleanup_operation(%s, %s)", (name, dry_run))


@pytest.fixture
def tables(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> Tables:
    return Tables(tsdb_dsn, schema)


BAD_PRICE = "price::text IN ('NaN', 'Infinity', '-Infinity') OR price <= 0"


def test_cleanup_sql_dry_run_quarantine_restore_round_trip(tables: Tables) -> None:
    rule = f"bad-{tables.schema}"
    before = tables.all_rows()
    compressed = tables.compressed_chunks()
    assert compressed >= 5
    bad = tables.count(f"{BAD_PRICE} OR symbol IS NULL")
    in_compressed = one(tables.dsn, "SELECT count(*) AS n FROM (SELECT * FROM \"%s\".ticks WHERE ts < now() - "
                        "interval '4 days') t WHERE price::text IN ('NaN', 'Infinity') OR price <= 0"
                        % tables.schema)["n"]
    assert bad > 0 and in_compressed > 0
    assert tables.register(rule, "invalid", {"checks": [{"column": "price", "check": "finite_positive"},
                                                        {"column": "symbol", "check": "not_null"}]})

    dry = tables.execute(rule, True)
    assert (dry["status"], dry["dry_run"], dry["rows_matched"], dry["rows_deleted"], dry["action"]) == (
        "dry_run", True, bad, 0, None)
    assert dry["condition"] == "price finite_positive, symbol not_null -> quarantine"
    assert dry["chunks"] >= 10 and tables.all_rows() == before

    real = tables.execute(rule, False)
    assert (real["status"], real["rows_matched"], real["rows_deleted"], real["rows_quarantined"],
            real["action"]) == ("succeeded", bad, bad, bad, "quarantine"), real["error"]
    assert tables.count() == HOURS - bad and tables.count(f"{BAD_PRICE} OR symbol IS NULL") == 0
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == bad

    back = one(tables.dsn, "SELECT * FROM lifecycle.restore_cleanup_quarantine(%s)", (rule,))
    assert (back["action"], back["rows_restored"], back["status"]) == ("restore", bad, "succeeded")
    assert tables.all_rows() == before  # every row, NaN and Infinity included, exactly as it was
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == 0

    stats = one(tables.dsn, "SELECT * FROM lifecycle.cleanup_statistics WHERE rule_name = %s", (rule,))
    assert (stats["runs"], stats["dry_runs"], stats["failures"], stats["rows_matched_total"],
            stats["rows_deleted_total"], stats["last_status"]) == (3, 1, 0, 2 * bad, bad, "succeeded")
    status = one(tables.dsn, "SELECT * FROM lifecycle.cleanup_rule_status WHERE rule_name = %s", (rule,))
    assert (status["hypertable"], status["kind"], status["action"], status["runs"], status["rows_quarantined_total"],
            status["rows_restored_total"], status["rows_in_quarantine"]) == (
        tables.ticks, "invalid", "quarantine", 3, bad, bad, 0)


def test_cleanup_sql_delete_action_keeps_no_copy(tables: Tables) -> None:
    rule = f"side-{tables.schema}"
    tables.register(rule, "invalid", {"checks": [{"column": "side", "check": "allowed", "values": ["buy", "sell"]}]},
                    action="delete")
    bad = tables.count("side NOT IN ('buy', 'sell')")
    real = tables.execute(rule, False)
    assert (real["rows_deleted"], real["rows_quarantined"], real["action"]) == (bad, 0, "delete")
    assert tables.count() == HOURS - bad
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == 0


@pytest.mark.parametrize("kind, spec, where", [
    ("invalid", {"checks": [{"column": "symbol", "check": "not_null"}]}, "symbol IS NULL"),
    ("invalid", {"checks": [{"column": "price", "check": "finite"}]}, "price IN ('NaN', 'Infinity', '-Infinity')"),
    ("invalid", {"checks": [{"column": "price", "check": "finite_positive"}]}, BAD_PRICE),
    # PostgreSQL orders NaN above every number: it is out of any range with a max.
    ("invalid", {"checks": [{"column": "qty", "check": "range", "min": 5, "max": 40}]}, "qty < 5 OR qty > 40"),
    ("invalid", {"checks": [{"column": "price", "check": "range", "max": 100}]}, "price > 100"),
    ("invalid", {"checks": [{"column": "side", "check": "allowed", "values": ["buy"]}]}, "side <> 'buy'"),
    ("orphans", {"parent": "{s}.signals", "keys": ["signal_id"], "parent_keys": ["signal_id"], "time_column": "ts",
                 "grace": "2 days"},
     "ts < now() - interval '2 days' AND NOT EXISTS (SELECT 1 FROM \"{s}\".signals p "
     "WHERE p.signal_id = ticks.signal_id)"),
    ("orphans", {"parent": "{s}.signals", "keys": ["signal_id"], "parent_keys": ["signal_id"], "time_column": "ts",
                 "grace": "00:00:00"},
     "NOT EXISTS (SELECT 1 FROM \"{s}\".signals p WHERE p.signal_id = ticks.signal_id)"),
])
def test_cleanup_sql_checks_match_what_they_name(tables: Tables, kind: str, spec: dict[str, Any], where: str) -> None:
    """The SQL runner's count, the preview's count (Python) and a hand-written query agree, chunk by chunk."""
    rule = f"check-{tables.schema}"
    spec = json.loads(json.dumps(spec).replace("{s}", tables.schema))
    expected = tables.count(where.replace("{s}", tables.schema))
    assert expected > 0
    tables.register(rule, kind, spec)
    assert tables.execute(rule, True)["rows_matched"] == expected
    declared = cleanup.Rule.from_record(rule, tables.ticks, kind, spec, "quarantine")
    with psycopg.connect(tables.dsn, autocommit=True) as conn:
        assert cleanup.count_matches(conn, declared) == expected
    # The whole table at once (as the preview counts) and chunk by chunk (the runner) see the same rows.
    assert one(tables.dsn, "SELECT lifecycle.count_cleanup_matches(%s) AS n", (rule,))["n"] == expected


def test_cleanup_sql_orphans_keep_rows_with_a_parent_or_null_key(tables: Tables) -> None:
    rule = f"orphans-{tables.schema}"
    sql_run(tables.dsn, f'UPDATE "{tables.schema}".ticks SET signal_id = NULL WHERE signal_id = 120')
    tables.register(rule, "orphans", {"parent": tables.signals, "keys": ["signal_id"], "time_column": "ts",
                                      "grace": "0"})
    orphans = tables.count("signal_id >= 100")
    assert orphans > 0
    done = tables.execute(rule, False)
    assert done["rows_quarantined"] == orphans and done["condition"] == (
        f"orphans of {tables.signals} (signal_id) older than 0 -> quarantine")
    assert tables.count("signal_id IS NULL") > 0 and tables.count("signal_id < 100") == tables.count() - tables.count(
        "signal_id IS NULL")


@pytest.mark.parametrize("kind, spec, fragment", [
    ("invalid", {"checks": [{"column": "nope", "check": "not_null"}]}, "has no column 'nope'"),
    ("invalid", {"checks": [{"column": "price", "check": "drop_everything"}]}, "unknown check 'drop_everything'"),
    ("invalid", {"checks": [{"column": "price", "check": "range"}]}, "needs min, max or both"),
    ("invalid", {"checks": [{"column": "symbol", "check": "finite"}]}, "does not apply to column symbol"),
    ("invalid", {"checks": [{"column": "side", "check": "allowed", "values": []}]}, "would match every row"),
    ("invalid", {"checks": []}, "needs a non-empty checks list"),
    ("orphans", {"parent": "nowhere.nothing", "keys": ["signal_id"]}, "parent table 'nowhere.nothing' does not"),
    ("orphans", {"parent": "{s}.signals", "keys": ["signal_id"], "parent_keys": ["label", "x"]}, "as many parent_keys"),
    ("orphans", {"parent": "{s}.signals", "keys": ["signal_id"], "time_column": "symbol", "grace": "1 day"},
     "grace needs a timestamptz"),
    ("drop", {}, "unknown kind 'drop'"),
])
def test_cleanup_sql_refuses_rules_it_cannot_compose(tables: Tables, kind: str, spec: dict[str, Any],
                                                     fragment: str) -> None:
    rule = f"bad-{tables.schema}"
    spec = json.loads(json.dumps(spec).replace("{s}", tables.schema))
    with pytest.raises(psycopg.Error) as refused:
        tables.register(rule, kind, spec)
    assert fragment in str(refused.value) and f"'{rule}'" in str(refused.value)
    # Recorded by hand past the check (drift): the run refuses it too, before anything is done or logged.
    if kind in ("invalid", "orphans"):
        sql_run(tables.dsn, "INSERT INTO lifecycle.cleanup_rules (rule_name, hypertable, kind, spec) "
                            "VALUES (%s, %s, %s, %s::jsonb)", (rule, tables.ticks, kind, json.dumps(spec)))
        with pytest.raises(psycopg.Error, match=fragment.replace("(", r"\(")):
            tables.execute(rule, False)
        with pytest.raises(LifecycleError, match=f"cleanup rule '{rule}'"):
            DataLifecycleManager(tables.dsn).cleanup(rule)
    assert tables.count() == HOURS
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_operations WHERE rule_name = %s",
               (rule,))["n"] == 0


def test_cleanup_sql_injection_executes_nothing(tables: Tables) -> None:
    """Names and values of a rule are quoted, never spliced: each attack below is refused or matched as data."""
    victim = sql.Identifier(tables.schema, "victim")
    sql_run(tables.dsn, sql.SQL("CREATE TABLE {} (x integer)").format(victim))
    attack = f"x'); DROP TABLE {tables.schema}.victim; SELECT ('"
    rule = f"attack-{tables.schema}"
    for kind, spec in (("invalid", {"checks": [{"column": attack, "check": "not_null"}]}),
                       ("invalid", {"checks": [{"column": "qty", "check": "range", "min": attack}]}),
                       ("orphans", {"parent": attack, "keys": ["signal_id"]}),
                       ("orphans", {"parent": tables.signals, "keys": ["signal_id"], "time_column": "ts",
                                    "grace": attack})):
        with pytest.raises(psycopg.Error):
            tables.register(rule, kind, spec)
    tables.register(rule, "invalid", {"checks": [{"column": "side", "check": "allowed", "values": [attack]}]})
    assert tables.execute(rule, True)["rows_matched"] == HOURS
    assert one(tables.dsn, "SELECT to_regclass(%s) IS NOT NULL AS x", (f"{tables.schema}.victim",))["x"]
    assert one(tables.dsn, "SELECT to_regprocedure('lifecycle.execute_cleanup_operation(text, regclass, name, "
                           "text, numeric, numeric, text[], boolean)') IS NULL AS gone")["gone"], (
        "004's column/check signature is replaced by the declared rule's")


def test_cleanup_sql_dry_run_is_read_only_by_construction(tsdb_dsn: str, lifecycle_schema: None) -> None:
    """The dry run counts in a STABLE function: PostgreSQL refuses data-modifying statements there."""
    assert one(tsdb_dsn, "SELECT provolatile FROM pg_proc WHERE oid = 'lifecycle.count_cleanup_matches(text, text, "
                         "text)'::regprocedure")["provolatile"] == "s"


def test_cleanup_sql_failure_is_logged_and_removes_nothing(tables: Tables) -> None:
    """execute_cleanup_operation is one transaction: a failure part-way brings every removed row back."""
    rule = f"guarded-{tables.schema}"
    protect(tables)
    tables.register(rule, "invalid", {"checks": [{"column": "price", "check": "finite_positive"}]})
    failed = tables.execute(rule, False)
    assert failed["status"] == "failed" and "price -1 is protected" in failed["error"]
    assert (failed["rows_deleted"], failed["rows_quarantined"]) == (0, 0)
    assert tables.count() == HOURS
    assert one(tables.dsn, "SELECT * FROM lifecycle.cleanup_statistics WHERE rule_name = %s",
               (rule,))["failures"] == 1


def protect(tables: Tables, newer_than: str = "1000 years") -> None:
    """A trigger that refuses to delete price -1 rows (newer than `newer_than`)."""
    guard = sql.Identifier(tables.schema, "guard")
    sql_run(tables.dsn, sql.SQL("CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF OLD.price = -1 "
                                "AND OLD.ts > now() - {}::interval THEN RAISE EXCEPTION 'price -1 is protected'; "
                                "END IF; RETURN OLD; END $$").format(guard, sql.Literal(newer_than)))
    sql_run(tables.dsn, sql.SQL("CREATE TRIGGER guard BEFORE DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()")
            .format(sql.Identifier(tables.schema, "ticks"), guard))


def test_cleanup_sql_register_update_unregister(tables: Tables) -> None:
    rule = f"reg-{tables.schema}"
    spec = {"checks": [{"column": "symbol", "check": "not_null"}]}
    assert tables.register(rule, "invalid", spec, stack="a")
    assert not tables.register(rule, "invalid", spec, stack="a")  # unchanged
    assert tables.register(rule, "invalid", spec, action="delete", stack="a")
    with pytest.raises(psycopg.Error, match="is declared by stack a, not b"):
        tables.register(rule, "invalid", spec, stack="b")
    tables.execute(rule, False)
    tables.register(rule, "invalid", spec, stack="a")
    assert tables.execute(rule, False)["rows_deleted"] == 0  # nothing left to match
    assert not one(tables.dsn, "SELECT lifecycle.unregister_cleanup_rule(%s, '', 'b') AS r", (rule,))["r"]
    assert one(tables.dsn, "SELECT lifecycle.unregister_cleanup_rule(%s, '', 'a') AS r", (rule,))["r"]
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_rules WHERE rule_name = %s",
               (rule,))["n"] == 0


@pytest.mark.native_only("two sessions at once: the embedded server serves one connection at a time")
def test_cleanup_sql_register_refuses_a_name_another_stack_registers_at_once(tsdb_dsn: str, lifecycle_schema: None,
                                                                              schema: str) -> None:
    """Rule names are unique per database. Stack b registers a name while stack a's registration of it is not yet
    committed (two tables, so two table locks: nothing else orders them): b waits for a, then is refused naming
    a, and a's rule stays as a declared it (010 rewrote it with b's rule, under a's stack: one shared record)."""
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".a (ts timestamptz NOT NULL, price float8)')
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".b (ts timestamptz NOT NULL, price float8)')
    rule, spec = f"race-{schema}", json.dumps({"checks": [{"column": "price", "check": "finite"}]})
    register = "SELECT lifecycle.register_cleanup_rule(%s, %s, 'invalid', %s::jsonb, 'quarantine', '', %s) AS r"
    with psycopg.connect(tsdb_dsn) as first, ThreadPoolExecutor(1) as pool:
        first.execute(register, (rule, f"{schema}.a", spec, "a"))
        second = pool.submit(one, tsdb_dsn, register, (rule, f"{schema}.b", spec, "b"))
        waiting = 0
        for _ in range(300):
            waiting = one(tsdb_dsn, "SELECT count(*) AS n FROM pg_locks WHERE NOT granted")["n"]
            if waiting:
                break
            time.sleep(0.1)
        assert waiting, "stack b's registration should wait for stack a's"
        first.commit()
        with pytest.raises(psycopg.Error, match=f"cleanup rule '{rule}' is declared by stack a, not b"):
            second.result(timeout=60)
    assert one(tsdb_dsn, "SELECT hypertable, stack FROM lifecycle.cleanup_rules WHERE rule_name = %s",
               (rule,)) == {"hypertable": f"{schema}.a", "stack": "a"}


# --------------------------------------------------------------------------------------------
# The runner: DataLifecycleManager.cleanup and `lifecycle cleanup`


def test_cleanup_runner_commits_chunk_by_chunk(tables: Tables) -> None:
    """A failure in one chunk stops the run: the chunks before it stay cleaned (and quarantined), the run is
    recorded as failed with them, and the rest of the table is untouched."""
    rule = f"chunks-{tables.schema}"
    protect(tables, "5 days")
    tables.register(rule, "invalid", {"checks": [{"column": "price", "check": "finite_positive"}]})
    first_protected = one(tables.dsn, f'SELECT min(ts) AS t FROM "{tables.schema}".ticks WHERE price = -1 '
                                      "AND ts > now() - interval '5 days'")["t"]
    before_it = tables.count(f"({BAD_PRICE}) AND ts < date_trunc('day', '{first_protected}'::timestamptz)")
    assert before_it > 0
    run = DataLifecycleManager(tables.dsn).cleanup(rule)[0]
    assert run.status == "failed" and "price -1 is protected" in (run.error or "")
    assert run.rows_quarantined == before_it and run.describe().startswith(f"FAILED after {before_it} rows moved")
    assert tables.count() == HOURS - before_it
    assert one(tables.dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == before_it


def test_cleanup_runner_manager_and_cli(tables: Tables) -> None:
    rule = f"cli-{tables.schema}"
    before = tables.all_rows()
    tables.register(rule, "invalid", {"checks": [{"column": "price", "check": "finite"}]})
    bad = tables.count("price IN ('NaN', 'Infinity')")
    manager = DataLifecycleManager(tables.dsn)
    dry = manager.cleanup(rule, dry_run=True)[0]
    assert (dry.status, dry.rows_matched, dry.rows_deleted) == ("dry_run", bad, 0)

    out = lifecycle(tables.dsn, "cleanup", "--rule", rule, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert f"{rule} ({tables.ticks}: price finite -> quarantine): {bad} rows match" in out.stdout
    assert "dry run: nothing changed" in out.stdout and tables.all_rows() == before

    out = lifecycle(tables.dsn, "cleanup", "--rule", rule)
    assert out.returncode == 0, out.stderr
    assert f"{bad} rows moved to quarantine" in out.stdout and tables.count() == HOURS - bad

    out = lifecycle(tables.dsn, "cleanup", "restore", "--rule", rule)
    assert out.returncode == 0, out.stderr
    assert f"{rule}: {bad} rows restored from quarantine into {tables.ticks}" in out.stdout
    assert tables.all_rows() == before

    status = lifecycle(tables.dsn, "status")
    assert status.returncode == 0, status.stderr
    [line] = [x for x in status.stdout.splitlines() if x.startswith(rule + " ")]
    assert line.split() == [rule, tables.ticks, "invalid", "quarantine", "succeeded", *line.split()[5:7],
                            str(bad), str(bad), "0"]

    missing = lifecycle(tables.dsn, "cleanup", "--rule", "no-such-rule")
    assert missing.returncode == 1 and "no cleanup rule named 'no-such-rule'" in missing.stderr


def test_cleanup_sql_slice_takes_the_providers_table_lock(tables: Tables) -> None:
    """Each chunk's cleanup takes the advisory lock reconcile/locks.py takes for `pulumi up` (and the runner
    holds it for the whole run): an apply on the table and a cleanup never interleave."""
    from lifecycle_resources.reconcile.locks import lock_table

    rule = f"lock-{tables.schema}"
    tables.register(rule, "invalid", {"checks": [{"column": "symbol", "check": "not_null"}]})
    held = ("SELECT classid, objid FROM pg_locks WHERE locktype = 'advisory' "
            "AND coalesce(pid, pg_backend_pid()) = pg_backend_pid()")  # pid is NULL in the embedded server
    with psycopg.connect(tables.dsn) as conn:  # not autocommit: each block below is one transaction
        lock_table(conn, TableName.parse(tables.ticks))
        provider = conn.execute(held).fetchall()
        conn.rollback()
        conn.execute("SELECT * FROM lifecycle._cleanup_slice(%s, gen_random_uuid(), NULL, NULL)", (rule,))
        cleaning = conn.execute(held).fetchall()
        conn.rollback()
    assert len(provider) == 1 and cleaning == provider


def test_cleanup_catalog_reads_the_rule_back(tables: Tables) -> None:
    """What the provider records reads back as the same rule (refresh compares them)."""
    declared = cleanup.declared(f"rb-{tables.schema}", tables.ticks, orphans_of=(tables.signals, ["signal_id"]),
                                grace="36 hours")
    with psycopg.connect(tables.dsn, autocommit=True) as conn:
        rule = cleanup.resolved(declared, catalog.table_snapshot(conn, TableName.parse(tables.ticks)),
                                catalog.table_snapshot(conn, TableName.parse(tables.signals)))
        rule = cleanup.normalise_grace(conn, rule)
        assert rule.grace == "36:00:00"  # as PostgreSQL prints it
        with conn.transaction():
            for op in cleanup.plan(rule, None):
                cleanup.execute(op, conn, "proj", "stack")
        recorded = cleanup.read_rule(conn, rule.name)
    assert recorded is not None and (recorded.rule, recorded.project, recorded.stack) == (rule, "proj", "stack")


def test_cleanup_sql_migration_010_upgrades_a_compressed_cleanup_operations_hypertable(tmp_path: Any) -> None:
    """Stacks already running have cleanup_operations as a compressed hypertable (their bookkeeping ages it): 010
    must apply there, keep its rows, and record runs with the new columns."""
    from lifecycle_resources.db import migrations
    from tests.conftest import fresh_server

    every = migrations.load()
    with fresh_server(tmp_path) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            migrations.apply(conn, [m for m in every if m.version < 10])
        sql_run(dsn, "SELECT create_hypertable('lifecycle.cleanup_operations', by_range('executed_at', "
                     "interval '1 day'))")
        sql_run(dsn, "INSERT INTO lifecycle.cleanup_operations (executed_at, rule_name, hypertable, condition, "
                     "rows_matched, rows_deleted, dry_run, status) VALUES (now() - interval '3 days', 'old', 'a.b', "
                     "'v null', 4, 4, false, 'succeeded')")
        sql_run(dsn, "ALTER TABLE lifecycle.cleanup_operations SET (timescaledb.compress)")
        sql_run(dsn, "SELECT compress_chunk(c) FROM show_chunks('lifecycle.cleanup_operations') c")
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            planned = migrations.plan(every, migrations.applied(conn))
            assert [m.version for m in planned.pending] == [m.version for m in every if m.version >= 10]
            assert not planned.problems
            migrations.apply(conn, planned.pending)
        sql_run(dsn, "CREATE TABLE public.t (ts timestamptz NOT NULL, v int)")
        sql_run(dsn, "INSERT INTO public.t VALUES (now(), NULL), (now(), 1)")
        sql_run(dsn, "SELECT lifecycle.register_cleanup_rule('new', 'public.t', 'invalid', "
                     "'{\"checks\": [{\"column\": \"v\", \"check\": \"not_null\"}]}')")
        done = one(dsn, "SELECT * FROM lifecycle.execute_cleanup_operation('new', false)")
        assert (done["rows_quarantined"], done["chunks"]) == (1, 1)
        assert [(r["rule_name"], r["rows_deleted_total"]) for r in rows(
            dsn, "SELECT * FROM lifecycle.cleanup_statistics ORDER BY rule_name")] == [("new", 1), ("old", 4)]


def test_cleanup_sql_restore_of_an_unknown_rule_is_refused(tsdb_dsn: str, lifecycle_schema: None) -> None:
    with pytest.raises(LifecycleError, match="no cleanup rule named 'never-declared' and no rows quarantined"):
        DataLifecycleManager(tsdb_dsn).restore_quarantine("never-declared")
    assert rows(tsdb_dsn, "SELECT * FROM lifecycle.cleanup_operations WHERE rule_name = 'never-declared'") == []


def test_cleanup_sql_preview_count_leaves_the_statement_timeout(tables: Tables) -> None:
    """The preview's count limits itself to COUNT_TIMEOUT; inside an apply's transaction that limit must not
    outlive the count."""
    rule = cleanup.Rule.from_record("t", tables.ticks, "invalid", {"checks": [{"column": "symbol", "check": "not_null"}]},
                                    "quarantine")
    with psycopg.connect(tables.dsn) as conn:  # not autocommit: as the provider's apply
        conn.execute("SET LOCAL statement_timeout = '123s'")
        assert cleanup.count_matches(conn, rule) == tables_count_null_symbols(conn, tables)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("123s",)
        conn.rollback()


def tables_count_null_symbols(conn: psycopg.Connection, tables: Tables) -> int:
    return conn.execute(f'SELECT count(*) FROM "{tables.schema}".ticks WHERE symbol IS NULL').fetchone()[0]


def test_cleanup_sql_rows_fixed_after_the_dry_run_are_kept(tables: Tables) -> None:
    """The real run removes what the condition matches when each chunk's DELETE runs, not what a dry run (or the
    preview) counted before: a row fixed in between stays."""
    rule = f"recheck-{tables.schema}"
    tables.register(rule, "invalid", {"checks": [{"column": "symbol", "check": "not_null"}]})
    counted = DataLifecycleManager(tables.dsn).cleanup(rule, dry_run=True)[0].rows_matched
    sql_run(tables.dsn, f'UPDATE "{tables.schema}".ticks SET symbol = \'FIXED\' WHERE ts = (SELECT max(ts) '
                        f'FROM "{tables.schema}".ticks WHERE symbol IS NULL)')
    done = DataLifecycleManager(tables.dsn).cleanup(rule)[0]
    assert done.rows_quarantined == counted - 1 and tables.count("symbol = 'FIXED'") == 1


def test_cleanup_sql_run_removes_every_match_of_compressed_chunks_after_an_update(tsdb_dsn: str,
                                                                                 lifecycle_schema: None,
                                                                                 schema: str) -> None:
    """The data of `tables` at a fixed time, a dry run, then a row fixed: the run removes every row still matched.
    TimescaleDB 2.23 (the embedded server) left one of two matching rows of a compressed batch in place (its
    DELETE .. RETURNING removed and reported one), the run's counts one short; 015 repeats the slice's DELETE."""
    table = f'"{schema}".ticks'
    sql_run(tsdb_dsn, f"CREATE TABLE {table} (ts timestamptz NOT NULL, signal_id bigint, symbol text, "
                      "price double precision, qty integer, side text)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (table,))
    sql_run(tsdb_dsn, f"INSERT INTO {table} SELECT '2026-01-10 14:00+00'::timestamptz - g * interval '1 hour', "
                      "g % 150, CASE WHEN g % 23 = 0 THEN NULL ELSE 'S' || (g % 3) END, g, g % 50, 'buy' "
                      f"FROM generate_series(1, {HOURS}) g")
    sql_run(tsdb_dsn, f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')")
    sql_run(tsdb_dsn, "SELECT compress_chunk(c) FROM show_chunks(%s::regclass, "
                      "older_than => '2026-01-07 14:00+00'::timestamptz) c", (table,))
    rule = f"nulls-{schema}"
    one(tsdb_dsn, "SELECT lifecycle.register_cleanup_rule(%s, %s, 'invalid', %s::jsonb, 'quarantine', '', '') AS r",
        (rule, f"{schema}.ticks", json.dumps({"checks": [{"column": "symbol", "check": "not_null"}]})))
    manager = DataLifecycleManager(tsdb_dsn)
    assert manager.cleanup(rule, dry_run=True)[0].rows_matched == 10
    sql_run(tsdb_dsn, f"UPDATE {table} SET symbol = 'FIXED' WHERE ts = (SELECT max(ts) FROM {table} "
                      "WHERE symbol IS NULL)")
    done = manager.cleanup(rule)[0]
    assert (done.status, done.rows_quarantined, done.rows_deleted) == ("succeeded", 9, 9), done
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {table} WHERE symbol IS NULL") == [(0,)]
    assert one(tsdb_dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == 9


def compressed_ticks_with_a_rule(dsn: str, schema: str) -> tuple[str, str, str]:
    """A compressed hypertable, a quarantining rule over price and volume (no batch can be skipped, so a run's
    DELETE decompresses a whole chunk), and the INSERT of two bad rows into one chunk: (table, rule, insert)."""
    table, rule = f'"{schema}".ticks', f"{schema}-bad-ticks"
    sql_run(dsn, f"CREATE TABLE {table} (ts timestamptz NOT NULL, symbol text NOT NULL, "
                 "price double precision NOT NULL, volume double precision NOT NULL)")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (table,))
    sql_run(dsn, f"INSERT INTO {table} SELECT '2026-01-01'::timestamptz + g * interval '30 seconds', "
                 "'S' || (g % 12), 100 + g % 7, 100 FROM generate_series(1, 3000) g")
    sql_run(dsn, f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol', "
                 "timescaledb.compress_orderby = 'ts DESC')")
    sql_run(dsn, "SELECT compress_chunk(c) FROM show_chunks(%s::regclass) c", (table,))
    one(dsn, "SELECT lifecycle.register_cleanup_rule(%s, %s, 'invalid', %s::jsonb, 'quarantine', '', '') AS r",
        (rule, f"{schema}.ticks", json.dumps({"checks": [{"column": "price", "check": "finite_positive"},
                                                         {"column": "volume", "check": "range", "min": 0}]})))
    return table, rule, (f"INSERT INTO {table} VALUES ('2026-01-01 12:00', 'S1', 'NaN', 100), "
                         "('2026-01-01 12:00', 'S2', -1, 100)")


def test_cleanup_runner_second_run_over_a_chunk_its_first_run_decompressed(tsdb_dsn: str, lifecycle_schema: None,
                                                                           schema: str) -> None:
    """The demo run twice: a first run's DELETE decompresses a whole compressed chunk (no batch can be skipped
    for a rule over price and volume) into its uncompressed part; new bad rows land there. TimescaleDB then
    tuple'), on the embedded server's TimescaleDB 2.23.0-dev; the native one (2.26) deletes them. Either way the
    run succeeds and quarantines exactly what it removed; where TimescaleDB refused, the runner recompressed the
    partial chunk, retried, and says so."""
    table, rule, bad = compressed_ticks_with_a_rule(tsdb_dsn, schema)
    manager = DataLifecycleManager(tsdb_dsn)

    def table_rows() -> list[str]:
        return [r["r"] for r in rows(tsdb_dsn, f"SELECT t::text AS r FROM {table} t ORDER BY 1")]

    sql_run(tsdb_dsn, bad)
    first = manager.cleanup(rule)[0]
    assert (first.status, first.rows_quarantined, first.error) == ("succeeded", 2, None), first.describe()
    sql_run(tsdb_dsn, bad)
    before = table_rows()

    second = manager.cleanup(rule)[0]

    assert (second.status, second.rows_deleted, second.rows_quarantined) == ("succeeded", 2, 2), second.describe()
    if server_under_test() == "embedded":
        assert second.error is not None and "recompressed the partially compressed chunk" in second.error
        assert second.describe().startswith("2 rows moved to quarantine in 2 chunks (recompressed ")
    else:
        assert second.describe() == "2 rows moved to quarantine in 2 chunks"
    after = table_rows()
    removed = sorted(set(before) - set(after))
    assert len(after) == len(before) - 2 and set(after) <= set(before)
    quarantined = [r["r"] for r in rows(
        tsdb_dsn, sql.SQL("SELECT jsonb_populate_record(NULL::{}.ticks, q.row_data)::text AS r "
                          "FROM lifecycle.cleanup_quarantine q JOIN lifecycle.cleanup_operations o "
                          "ON o.operation_id = q.operation_id WHERE q.rule_name = %s AND o.executed_at = "
                          "(SELECT max(executed_at) FROM lifecycle.cleanup_operations WHERE rule_name = %s) "
                          "ORDER BY 1").format(sql.Identifier(schema)), (rule, rule))]
    assert quarantined == removed and len(removed) == 2
    assert manager.cleanup(rule)[0].describe() == "0 rows moved to quarantine in 2 chunks"


def test_cleanup_sql_second_run_over_a_chunk_its_first_run_decompressed(tsdb_dsn: str, lifecycle_schema: None,
                                                                        schema: str) -> None:
    """The same, through the SQL function execute_cleanup_operation (one transaction): where the embedded
    server's TimescaleDB 2.23 refuses the second run's DELETE ('attempted to delete invisible tuple'), it
    recompresses the partial chunk and retries, as the runner does (011), instead of recording a failed run."""
    table, rule, bad = compressed_ticks_with_a_rule(tsdb_dsn, schema)
    run = "SELECT * FROM lifecycle.execute_cleanup_operation(%s, false)"
    sql_run(tsdb_dsn, bad)
    first = one(tsdb_dsn, run, (rule,))
    assert (first["status"], first["rows_quarantined"], first["error"]) == ("succeeded", 2, None), first
    sql_run(tsdb_dsn, bad)

    second = one(tsdb_dsn, run, (rule,))

    assert (second["status"], second["rows_deleted"], second["rows_quarantined"]) == ("succeeded", 2, 2), second
    if server_under_test() == "embedded":
        assert second["error"].startswith("recompressed the partially compressed chunk "), second
        assert second["error"].endswith(" after 'attempted to delete invisible tuple' and retried it"), second
    else:
        assert second["error"] is None, second
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {table} WHERE price <= 0 OR price = 'NaN'") == [(0,)]
    assert sql_run(tsdb_dsn, f"SELECT count(*) FROM {table}") == [(3000,)]
    assert one(tsdb_dsn, "SELECT count(*) AS n FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
               (rule,))["n"] == 4
    again = one(tsdb_dsn, run, (rule,))
    assert (again["status"], again["rows_quarantined"], again["error"]) == ("succeeded", 0, None), again


def test_cleanup_timescaledb_delete_returning_after_dml_decompression(tsdb_dsn: str, schema: str) -> None:
    """What the runner works around, in TimescaleDB's own SQL: a DELETE that decompressed every batch of a
    chunk, then a DELETE .. RETURNING of two rows within that chunk's range. The embedded 2.23.0-dev refuses
    it (once it accepts it, the runner's recompress-and-retry is no longer needed there); native 2.26 deletes
    them. Recompressing the partial chunk clears it on both."""
    table, day = f'"{schema}".t', "ts >= '2026-01-01' AND ts < '2026-01-02'"
    sql_run(tsdb_dsn, f"CREATE TABLE {table} (ts timestamptz NOT NULL, sym text NOT NULL, price float8 NOT NULL)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (table,))
    sql_run(tsdb_dsn, f"INSERT INTO {table} SELECT '2026-01-01'::timestamptz + g * interval '1 minute', "
                      "'S' || (g % 4), 100 FROM generate_series(1, 1000) g")
    sql_run(tsdb_dsn, f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'sym')")
    sql_run(tsdb_dsn, "SELECT compress_chunk(c) FROM show_chunks(%s::regclass) c", (table,))
    assert sql_run(tsdb_dsn, f"DELETE FROM {table} WHERE price <= 0 AND {day} RETURNING *") == []
    sql_run(tsdb_dsn, f"INSERT INTO {table} VALUES ('2026-01-01 12:00', 'S1', -1), ('2026-01-01 12:00', 'S2', -2)")
    delete = f"DELETE FROM {table} WHERE price <= 0 AND {day} RETURNING price"

    def attempt() -> list[tuple] | str:
        with psycopg.connect(tsdb_dsn) as conn:
            try:
                return sorted(conn.execute(delete).fetchall())
            except psycopg.Error as exc:
                return exc.diag.message_primary or str(exc)
            finally:
                conn.rollback()

    assert attempt() == ("attempted to delete invisible tuple" if server_under_test() == "embedded"
                         else [(-2.0,), (-1.0,)])
    sql_run(tsdb_dsn, "SELECT compress_chunk(c) FROM show_chunks(%s::regclass) c", (table,))
    assert attempt() == [(-2.0,), (-1.0,)]
