"""Running one declared policy for `lifecycle run`: plan from TimescaleDB's statistics (never a count of the
table), act in short transactions (one per compressed chunk; one drop_chunks for retention), all under the
table's lifecycle lock (the one `pulumi up` takes), then record what happened. A failure is recorded, with
the chunks already done.

The SQL function lifecycle.execute_lifecycle_policy runs the same steps (the same SQL helpers of 005_runner.sql)
in one transaction, for SQL users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..errors import LifecycleError
from .archive import retention as archive_retention

# The declaration as the SQL helpers take it (a lifecycle.policy_declarations row), by its key.
_DECLARATION = ("(SELECT d FROM lifecycle.policy_declarations d "
                "WHERE d.project = %(project)s AND d.stack = %(stack)s AND d.policy_name = %(policy_name)s)")


class _Failure(Exception):
    def __init__(self, exc: psycopg.Error) -> None:
        super().__init__(str(exc))
        diag = exc.diag
        self.error = (diag.message_primary or str(exc)).strip()
        self.details = {"sqlstate": diag.sqlstate, "context": diag.context}


@contextmanager
def _step() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise _Failure(exc) from exc


def execute(conn: psycopg.Connection, name: str, stack: str | None, dry_run: bool,
            dsn: str | None = None) -> dict[str, Any]:
    """Run the live declaration `name` (of `stack`, when several stacks declare it) on an autocommit
    connection; return the lifecycle_executions row recorded. Unknown, removed or ambiguous names raise.
    `dsn`: an archiving retention exports its chunks through a second connection of its own (ADBC)."""
    cur = conn.cursor(row_factory=dict_row)
    key = _one(cur.execute("SELECT project, stack, policy_name, kind, parameters, registered_at, hypertable "
                           "FROM lifecycle._declaration(%s, %s)", (name, stack)))
    # The session holds the table's lifecycle lock for the whole run (each step's transaction takes it again):
    # an apply on the table waits for the run to end, and the run for the apply.
    lock = f"lifecycle:{key['hypertable']}"
    cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
    try:
        return _run(conn, cur, key, dry_run, dsn)
    finally:
        with suppress(psycopg.Error):  # a broken connection has released it already
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))


def _run(conn: psycopg.Connection, cur: psycopg.Cursor[dict[str, Any]], key: dict[str, Any],
         dry_run: bool, dsn: str | None) -> dict[str, Any]:
    started = _one(cur.execute("SELECT clock_timestamp() AS t"))["t"]
    window_key = "drop_after" if key["kind"] == "retention" else "compress_after"
    details: dict[str, Any] = {"registered_at": key["registered_at"].isoformat(),
                               window_key: key["parameters"].get(window_key)}
    figures: dict[str, Any] = {"rows_before": None, "rows_after": None, "bytes_before": None, "bytes_after": None}
    done: list[str] = []
    status, error = "dry_run" if dry_run else "succeeded", None
    store = key["parameters"].get("archive_store") if key["kind"] == "retention" else None
    try:
        with _step():
            plan = _one(cur.execute(
                "SELECT hypertable::oid AS oid, window_text, cutoff, cutoff_type::text AS cutoff_type, "
                "chunks::oid[] AS chunk_oids, chunks::text[] AS chunks, chunk_rows, chunk_bytes, rows_before, "
                f"bytes_before FROM lifecycle._execution_plan({_DECLARATION})", key))
        details.update({window_key: plan["window_text"], "older_than": plan["cutoff"], "chunks": plan["chunks"],
                        "chunk_rows": plan["chunk_rows"], "chunk_bytes": plan["chunk_bytes"]})
        figures["rows_before"], figures["bytes_before"] = plan["rows_before"], plan["bytes_before"]
        if store is not None:  # archive, verify, then drop: never TimescaleDB's drop_chunks
            with _step():
                # The window, not the cutoff: on integer time the cutoff is already integer_now - window, and
                # the archiver counts its own window back from integer_now (on timestamps both are the interval).
                archived = archive_retention.run(conn, key, plan["window_text"], dry_run, dsn)
            done = archived.dropped
            details.update({"chunks": done, **archived.details(store)})
            if archived.error:
                status, error = "failed", archived.error
        elif dry_run:
            done = list(plan["chunks"])
        elif key["kind"] == "retention":
            # _drop_chunks (013) refuses a drop inside a continuous aggregate's refresh window, as the archiver does.
            with _step(), conn.transaction():
                done = _one(cur.execute("SELECT lifecycle._drop_chunks(%s::oid::regclass, %s, %s::regtype) AS d",
                                        (plan["oid"], plan["cutoff"], plan["cutoff_type"])))["d"]
            details["chunks"] = done
        else:
            for oid, chunk in zip(plan["chunk_oids"], plan["chunks"]):
                with _step(), conn.transaction():  # one short transaction per chunk: commit what is done
                    cur.execute("SELECT lifecycle._compress_chunk(%s::oid::regclass, %s::oid::regclass)",
                                (plan["oid"], oid))
                done.append(chunk)
        figures.update(_after(cur, key["kind"], plan, dry_run))
    except LifecycleError as exc:  # the archive store is missing or unreachable: nothing dropped
        status, error = "failed", str(exc)
        details["planned_chunks"] = details.pop("chunks", [])
    except _Failure as failure:
        status, error = "failed", failure.error
        planned = [c for c in details.pop("chunks", []) if c not in done]
        if done:
            details["chunks"] = done
        if planned:
            details["planned_chunks"] = planned
        details.update(failure.details)
    return _one(cur.execute(
        f"SELECT * FROM lifecycle._record_execution({_DECLARATION}, %(started)s, %(status)s, %(error)s, "
        "%(affected)s, %(rows_before)s, %(rows_after)s, %(bytes_before)s, %(bytes_after)s, %(dry_run)s, "
        "%(details)s)",
        {**key, **figures, "started": started, "status": status, "error": error, "affected": len(done),
         "dry_run": dry_run, "details": Jsonb(details)}))


def _one(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    row = cur.fetchone()
    if row is None:
        raise LifecycleError("the lifecycle schema returned no row where it always returns one: "
                             "is 005_runner.sql applied?")
    return row


def _after(cur: psycopg.Cursor[dict[str, Any]], kind: str, plan: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    """Rows and bytes after the run. Compression keeps every row. A retention that ran re-estimates what is left:
    a chunk under a hold (or in an aggregate's refresh window) is planned but not dropped, so the plan's figure
    would count rows still there; a dry run removes its plan's chunks."""
    if kind != "retention":
        rows_after = plan["rows_before"]
    elif dry_run:
        rows_after = max(plan["rows_before"] - plan["chunk_rows"], 0)
    else:
        ext = _one(cur.execute("SELECT lifecycle._extension_schema() AS s"))["s"]
        rows_after = _one(cur.execute(
            sql.SQL("SELECT coalesce(sum(lifecycle._estimated_rows(c)), 0)::bigint AS r "
                    "FROM {}.show_chunks(%s::oid::regclass) c").format(sql.Identifier(ext)), (plan["oid"],)))["r"]
    if not dry_run:
        size = _one(cur.execute("SELECT lifecycle._hypertable_size(%s::oid::regclass) AS s", (plan["oid"],)))
        return {"rows_after": rows_after, "bytes_after": size["s"]}
    bytes_after = plan["bytes_before"] - plan["chunk_bytes"] if kind == "retention" else None
    return {"rows_after": rows_after, "bytes_after": bytes_after}
