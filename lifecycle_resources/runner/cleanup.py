"""Running a declared cleanup rule for `lifecycle cleanup`: chunk by chunk, each chunk's rows removed in a short
transaction of its own (the DELETE re-evaluates the rule's condition as it runs), into the quarantine unless the
rule deletes, all under the table's lifecycle lock (the one `pulumi up` and `lifecycle run` take). Every run is
recorded in lifecycle.cleanup_operations, a failed one with the chunks done before the failure.

The SQL helpers are 010_cleanup_rules.sql's; lifecycle.execute_cleanup_operation runs the same steps in one
transaction, for SQL users."""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Any

from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from ..errors import LifecycleError
from ..reconcile.cleanup import has_registry
from .execute import _one


class CleanupRun(BaseModel):
    """One lifecycle.cleanup_operations row: a run (or dry run) of a rule, or a restore of its quarantine."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule_name: str
    hypertable: str
    condition: str
    executed_at: datetime
    status: str
    dry_run: bool
    action: str | None = None
    error: str | None = None
    rows_matched: int = 0
    rows_deleted: int = 0
    rows_quarantined: int | None = 0
    rows_restored: int | None = 0
    chunks: int | None = None

    def describe(self) -> str:
        if self.action == "restore":
            return f"{self.rows_restored} rows restored from quarantine into {self.hypertable}"
        chunks = f" in {self.chunks} chunks" if self.chunks is not None else ""
        if self.dry_run:
            text = f"{self.rows_matched} rows match{chunks} (dry run: nothing changed)"
        elif self.action == "delete":
            text = f"{self.rows_deleted} rows deleted{chunks}"
        else:
            text = f"{self.rows_quarantined} rows moved to quarantine{chunks}"
        return f"FAILED after {text}: {self.error}" if self.status == "failed" else text

def rule_names(conn: psycopg.Connection) -> list[str]:
    if not has_registry(conn):
        raise LifecycleError("this database has no lifecycle.cleanup_rules (migration 010): declare LifecycleSchema "
                             "in the stack and run `pulumi up`")
    return [r[0] for r in conn.execute("SELECT rule_name FROM lifecycle.cleanup_rules ORDER BY hypertable, "
                                       "rule_name").fetchall()]


def run(conn: psycopg.Connection, rule: str, dry_run: bool) -> dict[str, Any]:
    """Apply the rule (count only, when dry_run) on an autocommit connection; the cleanup_operations row."""
    cur = conn.cursor(row_factory=dict_row)
    try:
        # Refused before anything runs (and not recorded): an unknown rule, or one that cannot be composed.
        found = _one(cur.execute("SELECT (r).hypertable, (r).action, lifecycle._cleanup_condition(r) AS condition "
                                 "FROM lifecycle._cleanup_rule(%s) r", (rule,)))
    except psycopg.Error as exc:
        raise LifecycleError((exc.diag.message_primary or str(exc)).removeprefix("lifecycle: ")) from None
    lock = f"lifecycle:{found['hypertable']}"
    cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
    try:
        return _run(conn, cur, rule, None if dry_run else found["action"])
    finally:
        with suppress(psycopg.Error):  # a broken connection has released it already
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))


def _run(conn: psycopg.Connection, cur: psycopg.Cursor[dict[str, Any]], rule: str,
         action: str | None) -> dict[str, Any]:
    dry_run = action is None
    op = uuid.uuid4()
    figures = {"matched": 0, "removed": 0, "quarantined": 0, "chunks": 0}
    status, error = "dry_run" if dry_run else "succeeded", None
    slices = cur.execute("SELECT range_from, range_to FROM lifecycle._cleanup_slices(%s)", (rule,)).fetchall()
    for piece in slices:
        try:
            with conn.transaction():  # one short transaction per chunk: what is done stays done
                if dry_run:
                    figures["matched"] += _one(cur.execute(
                        "SELECT lifecycle.count_cleanup_matches(%s, %s, %s) AS n",
                        (rule, piece["range_from"], piece["range_to"])))["n"]
                else:
                    done = _one(cur.execute("SELECT * FROM lifecycle._cleanup_slice(%s, %s, %s, %s)",
                                            (rule, op, piece["range_from"], piece["range_to"])))
                    figures["removed"] += done["removed"]
                    figures["quarantined"] += done["quarantined"]
        except psycopg.Error as exc:
            status, error = "failed", (exc.diag.message_primary or str(exc)).strip()
            break
        figures["chunks"] += 1
    if not dry_run:
        figures["matched"] = figures["removed"]
    return _one(cur.execute(
        "SELECT * FROM lifecycle._record_cleanup(lifecycle._cleanup_rule(%(rule)s), %(op)s, %(action)s, %(status)s, "
        "%(error)s, %(matched)s, %(removed)s, %(quarantined)s, 0, %(chunks)s, %(dry)s)",
        {"rule": rule, "op": op, "action": action, "dry": dry_run, "status": status, "error": error, **figures}))


def restore(conn: psycopg.Connection, rule: str) -> dict[str, Any]:
    """Move every quarantined row of the rule back into its table, in one transaction; the record of it."""
    cur = conn.cursor(row_factory=dict_row)
    try:
        with conn.transaction():
            return _one(cur.execute("SELECT * FROM lifecycle.restore_cleanup_quarantine(%s)", (rule,)))
    except psycopg.Error as exc:
        raise LifecycleError((exc.diag.message_primary or str(exc)).removeprefix("lifecycle: ")) from None

