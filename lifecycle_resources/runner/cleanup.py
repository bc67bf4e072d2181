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


# TimescaleDB's error for a DELETE on a partially compressed chunk whose rows an earlier DML decompressed into
# its uncompressed part: seen on the embedded server's 2.23.0-dev with a DELETE .. RETURNING (the quarantine
# needs it) of two or more rows within the chunk's time range, not on 2.26. Recompressing the chunk clears it.
INVISIBLE_TUPLE = "attempted to delete invisible tuple"
# The partially compressed chunks (status bit 8) of the rule's table within one slice's range.
PARTIAL_CHUNKS = """
SELECT format('%%I.%%I', c.chunk_schema, c.chunk_name) AS chunk
  FROM timescaledb_information.chunks c
  JOIN _timescaledb_catalog.chunk k ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
 WHERE format('%%I.%%I', c.hypertable_schema, c.hypertable_name)::regclass
       = to_regclass((lifecycle._cleanup_rule(%s)).hypertable)
   AND k.status & 8 = 8
   AND coalesce(c.range_start::text, c.range_start_integer::text) IS NOT DISTINCT FROM %s
   AND coalesce(c.range_end::text, c.range_end_integer::text) IS NOT DISTINCT FROM %s
 ORDER BY 1"""


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
        if self.status == "failed":
            return f"FAILED after {text}: {self.error}"
        return f"{text} ({self.error})" if self.error else text

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
    status, error, notes = "dry_run" if dry_run else "succeeded", None, []
    slices = cur.execute("SELECT range_from, range_to FROM lifecycle._cleanup_slices(%s)", (rule,)).fetchall()
    for piece in slices:
        try:
            try:
                _slice(conn, cur, rule, op, piece, figures, dry_run)
            except psycopg.Error as exc:
                merged = _recompress_after(conn, cur, rule, piece, exc) if not dry_run else []
                if not merged:
                    raise
                notes.append(f"recompressed the partially compressed chunk {', '.join(merged)} after "
                             f"'{INVISIBLE_TUPLE}' and retried it")
                _slice(conn, cur, rule, op, piece, figures, dry_run)
        except psycopg.Error as exc:
            status, error = "failed", (exc.diag.message_primary or str(exc)).strip()
            break
        figures["chunks"] += 1
    if not dry_run:
        figures["matched"] = figures["removed"]
    # A run that recovered says so in its record (error stays NULL only for a run that needed nothing).
    error = "; ".join([*notes, *([error] if error else [])]) or None
    return _one(cur.execute(
        "SELECT * FROM lifecycle._record_cleanup(lifecycle._cleanup_rule(%(rule)s), %(op)s, %(action)s, %(status)s, "
        "%(error)s, %(matched)s, %(removed)s, %(quarantined)s, 0, %(chunks)s, %(dry)s)",
        {"rule": rule, "op": op, "action": action, "dry": dry_run, "status": status, "error": error, **figures}))


def _slice(conn: psycopg.Connection, cur: psycopg.Cursor[dict[str, Any]], rule: str, op: uuid.UUID,
           piece: dict[str, Any], figures: dict[str, int], dry_run: bool) -> None:
    """One chunk's work in a short transaction of its own (what is done stays done); adds to figures."""
    with conn.transaction():
        if dry_run:
            figures["matched"] += _one(cur.execute(
                "SELECT lifecycle.count_cleanup_matches(%s, %s, %s) AS n",
                (rule, piece["range_from"], piece["range_to"])))["n"]
        else:
            done = _one(cur.execute("SELECT * FROM lifecycle._cleanup_slice(%s, %s, %s, %s)",
                                    (rule, op, piece["range_from"], piece["range_to"])))
            figures["removed"] += done["removed"]
            figures["quarantined"] += done["quarantined"]


def _recompress_after(conn: psycopg.Connection, cur: psycopg.Cursor[dict[str, Any]], rule: str,
                      piece: dict[str, Any], exc: psycopg.Error) -> list[str]:
    """After TimescaleDB's 'attempted to delete invisible tuple' (its DML on a partially compressed chunk
    whose rows an earlier DELETE decompressed), merges the slice's partially compressed chunks as the
    compression policy would (compress_chunk on a partial chunk recompresses it, every row kept); their
    names, empty when the error is another one or no such chunk is in the slice (nothing done then)."""
    if (exc.diag.message_primary or "").strip() != INVISIBLE_TUPLE:
        return []
    with conn.transaction():
        partial = [r["chunk"] for r in cur.execute(PARTIAL_CHUNKS, (rule, piece["range_from"], piece["range_to"]))]
        for chunk in partial:
            # 005's helper: the extension's own schema, under the table's lock (this session holds it already).
            cur.execute("SELECT lifecycle._compress_chunk(to_regclass((lifecycle._cleanup_rule(%s)).hypertable), "
                        "%s::regclass)", (rule, chunk))
    return partial


def restore(conn: psycopg.Connection, rule: str) -> dict[str, Any]:
    """Move every quarantined row of the rule back into its table, in one transaction; the record of it."""
    cur = conn.cursor(row_factory=dict_row)
    try:
        with conn.transaction():
            return _one(cur.execute("SELECT * FROM lifecycle.restore_cleanup_quarantine(%s)", (rule,)))
    except psycopg.Error as exc:
        raise LifecycleError((exc.diag.message_primary or str(exc)).removeprefix("lifecycle: ")) from None

