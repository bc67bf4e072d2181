"""DataLifecycleManager: the operator's API over the lifecycle schema (run, status, statistics).

The `lifecycle` command line is a thin layer over it. Each policy runs through runner/execute.py: planned from
TimescaleDB's statistics, acted on in short transactions under the table's lifecycle lock, and recorded (with its
error, if it fails) whatever happens. Only live declarations run: a policy removed from its stack is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from ..db.connection import connect
from ..errors import LifecycleError
from . import advisor, execute


class PolicyStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    policy_name: str
    hypertable: str
    kind: str
    parameters: dict[str, Any]
    stack: str | None
    environment: str | None
    job_id: int | None
    enabled: bool
    registered_at: datetime
    last_started_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    next_due: datetime | None = None


class Execution(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    policy_name: str
    hypertable: str
    kind: str
    status: str
    error: str | None
    chunks_affected: int
    rows_before: int | None
    rows_after: int | None
    bytes_before: int | None
    bytes_after: int | None
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    rows_estimated: bool | None = None
    details: dict[str, Any] | None = None

    @property
    def bytes_saved(self) -> int:
        if self.bytes_before is None or self.bytes_after is None:
            return 0
        return self.bytes_before - self.bytes_after

    def describe(self) -> str:
        if self.status == "failed":
            return f"FAILED: {self.error}"
        verb = {"compression": "compressed", "retention": "dropped"}.get(self.kind, "affected")
        store = (self.details or {}).get("archive_store")
        if store:
            verb = f"archived to {store}, verified and dropped"
        would = "would be " if self.dry_run else ""
        text = f"{self.chunks_affected} chunks {would}{verb}"
        if self.kind == "retention" and self.rows_before is not None and self.rows_after is not None:
            text += f", {'~' if self.rows_estimated else ''}{self.rows_before - self.rows_after} rows"
        if self.bytes_before is not None and self.bytes_after is not None:
            text += f", {human_bytes(self.bytes_before)} -> {human_bytes(self.bytes_after)}"
        return text


class CompressionStat(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    hypertable: str
    total_chunks: int
    compressed_chunks: int
    before_bytes: int
    after_bytes: int
    compression_ratio: float | None
    space_saved_pct: float | None


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


Progress = Callable[[int, int, PolicyStatus, Execution | None], None]


class DataLifecycleManager:
    """Run, inspect and measure the lifecycle policies a stack declared in the database."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def _rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with connect(self._dsn) as conn:
            self._require_schema(conn)
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(query, params)
                return cur.fetchall()

    @staticmethod
    def _require_schema(conn: psycopg.Connection) -> None:
        row = conn.execute("SELECT to_regprocedure('lifecycle.execute_lifecycle_policy(text,boolean)') IS NOT NULL, "
                           "to_regclass('lifecycle.policy_declarations') IS NOT NULL").fetchone()
        if not row or not row[0]:
            raise LifecycleError("the lifecycle schema is not installed in this database: declare LifecycleSchema "
                                 "in the stack and run `pulumi up`")
        if not row[1]:
            raise LifecycleError("the lifecycle schema in this database predates 005_runner.sql: run `pulumi up` "
                                 "to migrate it (LifecycleSchema) before using the runner")

    def policies(self, stack: str | None = None, *, due_only: bool = False) -> list[PolicyStatus]:
        rows = self._rows("SELECT * FROM lifecycle.lifecycle_policy_status "
                          "WHERE (%(env)s::text IS NULL OR environment = %(env)s OR stack = %(env)s "
                          "       OR split_part(stack, '/', 2) = %(env)s) "
                          "AND (NOT %(due)s OR (enabled AND coalesce(next_due <= now(), true))) "
                          # Retention before compression: never compress what is about to be dropped.
                          "ORDER BY hypertable, kind = 'compression', policy_name",
                          {"env": stack, "due": due_only})
        return [PolicyStatus.model_validate(r) for r in rows]

    def due(self, stack: str | None = None) -> list[PolicyStatus]:
        """Enabled policies whose next run is due now (or that never ran)."""
        return self.policies(stack, due_only=True)

    def run(self, *, stack: str | None = None, policy: str | None = None, dry_run: bool = False,
            progress: Progress | None = None) -> list[Execution]:
        """Execute the due policies (or the one named), chunk by chunk; return what each did."""
        chosen = self._named(policy, stack) if policy is not None else self.due(stack)
        results = []
        for i, status in enumerate(chosen, 1):
            if progress:
                progress(i, len(chosen), status, None)
            with connect(self._dsn) as conn:
                row = execute.execute(conn, status.policy_name, status.stack or "", dry_run, dsn=self._dsn)
            execution = Execution.model_validate(row)
            results.append(execution)
            if progress:
                progress(i, len(chosen), status, execution)
        return results

    def _named(self, policy: str, stack: str | None) -> list[PolicyStatus]:
        """The one live declaration named `policy`: refuses an unknown, removed or ambiguous name."""
        declared = self.policies(stack)
        named = [p for p in declared if p.policy_name == policy]
        live = [p for p in named if p.enabled]
        where = f" in stack {stack!r}" if stack else ""
        if not named:
            known = ", ".join(sorted({p.policy_name for p in declared if p.enabled})) or "none"
            raise LifecycleError(f"no lifecycle policy named {policy!r}{where}; declared: {known}")
        if not live:
            gone = named[0]
            raise LifecycleError(f"lifecycle policy {policy!r} was removed from stack {gone.stack or '(none)'} "
                                 f"at {gone.registered_at:%Y-%m-%d %H:%M}: it is not run (declare it again to run it)")
        if len(live) > 1:
            stacks = ", ".join(sorted(p.stack or "(none)" for p in live))
            raise LifecycleError(f"lifecycle policy {policy!r} is declared by several stacks ({stacks}): "
                                 "name one with --stack")
        return live

    def advise(self, table: str, progress: advisor.Progress | None = None) -> advisor.Advice:
        """Compression settings measured on a copy of a sample chunk of `table` (runner/advisor.py)."""
        return advisor.advise(self._dsn, table, progress=progress)

    def status(self, stack: str | None = None) -> list[PolicyStatus]:
        return self.policies(stack)

    def compression(self) -> list[CompressionStat]:
        return [CompressionStat.model_validate(r) for r in
                self._rows("SELECT * FROM lifecycle.compression_statistics ORDER BY hypertable")]

    def statistics(self, hypertable: str | None = None) -> list[dict[str, Any]]:
        if hypertable is None:
            return self._rows("SELECT * FROM lifecycle.get_lifecycle_statistics() ORDER BY hypertable")
        return self._rows("SELECT * FROM lifecycle.get_lifecycle_statistics(%s::regclass) ORDER BY hypertable",
                          (hypertable,))

    def cleanup(self, rule: str | None = None, *, dry_run: bool = False) -> list[Any]:
        """Apply the declared cleanup rules (or the one named), chunk by chunk; one CleanupRun each
        (runner/cleanup.py)."""
        from . import cleanup

        with connect(self._dsn) as conn:
            names = [rule] if rule is not None else cleanup.rule_names(conn)
            return [cleanup.CleanupRun.model_validate(cleanup.run(conn, name, dry_run)) for name in names]

    def restore_quarantine(self, rule: str) -> Any:
        """Move the rows the rule quarantined back into their table; the CleanupRun recording it."""
        from . import cleanup

        with connect(self._dsn) as conn:
            return cleanup.CleanupRun.model_validate(cleanup.restore(conn, rule))

    def archive(self, table: str, older_than: str, to: str, *, read_back: bool = False,
                **store_options: Any) -> list[Any]:
        """Archive then drop the chunks of `table` older than `older_than` into the store at `to` (file:// or
        s3://); one result per chunk (see runner/archive/archiver.py)."""
        from .archive.archiver import archive
        from .archive.store import open_store

        return archive(self._dsn, table, older_than, open_store(to, **store_options), read_back=read_back)

    def archives(self, table: str | None = None) -> list[dict[str, Any]]:
        """The archive catalog (lifecycle.archives): one row per archived chunk with its state and object."""
        from .archive.catalog import entries

        with connect(self._dsn) as conn:
            return entries(conn, table)

    def verify_archive(self, table: str | None = None, **store_options: Any) -> list[tuple[dict[str, Any], list[str]]]:
        """Every published object re-checked against its record: (catalog row, problems) each; no problems: ok."""
        from .archive.catalog import verify_all

        return verify_all(self._dsn, table, **store_options)

    def archive_gc(self, table: str | None = None, *, grace: str | timedelta = "1h", dry_run: bool = False,
                   **store_options: Any) -> Any:
        """Remove the archive stores' garbage older than `grace`: objects no lifecycle.archives row refers to and
        incomplete uploads (see runner/archive/gc.py); a GcReport."""
        from .archive.gc import collect

        return collect(self._dsn, table, grace=grace, dry_run=dry_run, **store_options)

    def restore(self, table: str, from_: str | datetime | int, to: str | datetime | int, into: str | None = None,
                *, refresh_aggregates: bool = False, **store_options: Any) -> list[Any]:
        """Load the archived rows of `table` in [from_, to) into `into` (default <table>_restored), every object
        verified first; a second restore of the same range adds nothing (see runner/restore.py).
        `refresh_aggregates` (into the hypertable itself): then refresh its continuous aggregates over the range."""
        from .restore import restore

        return restore(self._dsn, table, from_, to, into, refresh_aggregates=refresh_aggregates, **store_options)

    def hold(self, table: str, from_: str | datetime | int, to: str | datetime | int,
             reason: str | None = None) -> Any:
        """Keep [from_, to) of `table` in the database: no chunk overlapping it is archived or dropped while the
        hold is active; a restore into the hypertable itself needs one (see runner/archive/holds.py)."""
        from .archive import holds

        with connect(self._dsn) as conn:
            return holds.add(conn, table, from_, to, reason)

    def holds(self, table: str | None = None, *, include_released: bool = False) -> list[Any]:
        from .archive import holds

        with connect(self._dsn) as conn:
            return holds.listed(conn, table, include_released=include_released)

    def release_hold(self, hold_id: int) -> Any:
        from .archive import holds

        with connect(self._dsn) as conn:
            return holds.release(conn, hold_id)
