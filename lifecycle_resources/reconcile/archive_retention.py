"""A retention policy that archives before it drops: no TimescaleDB retention job may remain (its job drops
chunks unarchived), so the runner alone drops them, each after it is archived and verified. Turning archiving on
removes the job; turning it off adds it back. Operations (shown at preview, executed at up, in the same words),
a pure planner, and their executors registered with jobs.execute."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import catalog, jobs
from .intervals import Window
from ..identifiers import TableName


@dataclass(frozen=True)
class RemoveJobForArchive:
    """Archiving turned on (or a job added by hand while it is on): the job goes, the runner drops instead."""

    job_id: int
    table: TableName
    store: str
    window: Window | None

    def describe(self) -> str:
        return f"remove TimescaleDB retention job {self.job_id}: {_runner_drops(self, 'are then')}"


@dataclass(frozen=True)
class ArchivedByRunner:
    """Nothing to execute: says who drops the chunks when there is no job to remove (a new policy, a store
    changed)."""

    table: TableName
    store: str
    window: Window | None

    def describe(self) -> str:
        return f"no TimescaleDB retention job: {_runner_drops(self, 'are')}"


def _runner_drops(op: RemoveJobForArchive | ArchivedByRunner, verb: str) -> str:
    older = f" older than {op.window.text}" if op.window else ""
    if op.window and op.window.integer:
        older += " (counted back from integer_now)"  # as TimescaleDB's own retention counts on integer time
    return f"chunks of {op.table}{older} {verb} dropped only by `lifecycle run`, after archiving to {op.store}"


@dataclass(frozen=True)
class AddJobAfterArchive(jobs.AddJob):
    """Archiving turned off: TimescaleDB's job drops the chunks again, unarchived."""

    was_store: str = ""

    def describe(self) -> str:
        window = self.declared.window.text if self.declared.window else "?"
        return (f"add TimescaleDB retention job on {self.table} (drop_after {window}): chunks are then dropped by "
                f"TimescaleDB without archiving (no longer archived to {self.was_store} by `lifecycle run`)")


def plan(declared: jobs.JobState, actual: list[jobs.JobState], store: str | None,
         registered_store: str | None) -> list[jobs.JobOperation | RemoveJobForArchive | ArchivedByRunner]:
    """Pure. `store`: the declared archive (None: none); `registered_store`: the one the lifecycle schema holds
    for this policy now (None: none, or not registered)."""
    table = TableName.parse(declared.hypertable)
    if store is not None:
        removals = [RemoveJobForArchive(j.job_id, table, store, declared.window) for j in actual
                    if j.job_id is not None]
        if removals or registered_store == store:
            return list(removals)
        return [ArchivedByRunner(table, store, declared.window)]
    ops = jobs.plan(jobs.RETENTION, declared, actual)
    if registered_store is None:
        return list(ops)
    return [AddJobAfterArchive(op.kind, op.table, op.declared, registered_store) if type(op) is jobs.AddJob else op
            for op in ops]


def registered_store(conn: psycopg.Connection, project: str, stack: str, policy_name: str | None) -> str | None:
    """The archive store the live declaration of this policy names now (None without one or without a
    registry)."""
    read = store_read(conn, project, stack, policy_name)
    found = catalog.rows(conn, read) if read is not None else []
    return found[0][0] if found else None


DECLARATIONS = "lifecycle.policy_declarations"
DECLARATIONS_PROBE = "SELECT to_regclass('lifecycle.policy_declarations') IS NOT NULL"


def store_read(conn: psycopg.Connection, project: str, stack: str, policy_name: str | None, *,
               planning: bool = False) -> catalog.Read | None:
    """registered_store()'s query, for catalog.bundle(); None without a policy name or a registry. `planning`:
    composing a plan's reads, where a registry not yet seen is asked in the same statement (catalog.presence_read)
    and its declaration read alone afterwards, if it is there."""
    if not policy_name:
        return None
    if planning:
        asked = catalog.presence_read(conn, DECLARATIONS, DECLARATIONS_PROBE)
        if asked is not None:
            return asked
    def probe() -> bool:
        row = conn.execute(DECLARATIONS_PROBE).fetchone()
        return bool(row and row[0])
    # once seen, not asked again in this command (catalog.present); a policy never creates the lifecycle schema
    if not catalog.present(conn, DECLARATIONS, probe, created_here=False):
        return None
    return catalog.Read("archive store", f"{project}/{stack}/{policy_name}", sql.SQL(
        "SELECT parameters ->> 'archive_store' FROM lifecycle.policy_declarations WHERE project = %s "
        "AND stack = %s AND policy_name = %s AND enabled"), (project, stack, policy_name))


@jobs.execute.register
def _(op: RemoveJobForArchive, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    jobs.delete_job(conn, info, op.job_id)


@jobs.execute.register
def _(op: ArchivedByRunner, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    """Nothing to do: the declaration (registered after the jobs converge) carries the store."""
