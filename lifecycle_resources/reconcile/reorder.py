"""Reorder policies (TimescaleDB's policy_reorder job): one model for declared and read state, a pure planner
and an executor. The index and every schedule field change in place through alter_job (same job id)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from .intervals import Window
from .jobs import FIRST_USER_JOB, JOBS_FROM, ONE_RELATION, delete_job, one_relation
from ..identifiers import TableName

PROC = "policy_reorder"
SCHEDULE_FIELDS = ("schedule_interval", "max_runtime", "max_retries", "retry_period", "scheduled")
INTERVALS = ("schedule_interval", "max_runtime", "retry_period")


class ReorderState(BaseModel):
    """A reorder job; a schedule field declared None is not managed (whatever add_reorder_policy chose)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    hypertable: str
    index: str
    schedule_interval: Window | None = None
    max_runtime: Window | None = None
    max_retries: int | None = None
    retry_period: Window | None = None
    scheduled: bool | None = None
    job_id: int | None = None


def differences(declared: ReorderState, actual: ReorderState) -> list[str]:
    return [f for f in ("index", *SCHEDULE_FIELDS)
            if getattr(declared, f) is not None and getattr(declared, f) != getattr(actual, f)]


_READ = """
SELECT j.id, j.config ->> 'index_name', j.schedule_interval::text, j.max_runtime::text, j.max_retries,
       j.retry_period::text, j.scheduled""" + JOBS_FROM + """
 WHERE j.proc_name = %s""" + ONE_RELATION + """
   AND j.id >= %s
 ORDER BY j.id
"""


def read_jobs(conn: psycopg.Connection, table: TableName) -> list[ReorderState]:
    rows = conn.execute(_READ, (PROC, *one_relation(table.schema, table.name), FIRST_USER_JOB)).fetchall()
    return [ReorderState(hypertable=table.qualified, job_id=r[0], index=r[1] or "",
                         schedule_interval=Window.from_output(r[2]), max_runtime=Window.from_output(r[3]),
                         max_retries=r[4], retry_period=Window.from_output(r[5]), scheduled=r[6]) for r in rows]


def table_indexes(conn: psycopg.Connection, table: TableName) -> list[str]:
    """The names of the table's indexes (add_reorder_policy takes one of them)."""
    rows = conn.execute("SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                        "WHERE x.indrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) ORDER BY 1",
                        (table.schema, table.name)).fetchall()
    return [r[0] for r in rows]


# --------------------------------------------------------------------------------------------------
# Operations


@dataclass(frozen=True)
class AddReorder:
    table: TableName
    declared: ReorderState

    def describe(self) -> str:
        return f"add ReorderPolicy on {self.table} (index {self.declared.index})"


@dataclass(frozen=True)
class AlterReorder:
    job_id: int
    declared: ReorderState
    existing: ReorderState

    def describe(self) -> str:
        return f"alter job {self.job_id} (ReorderPolicy): {', '.join(differences(self.declared, self.existing))}"


@dataclass(frozen=True)
class DeleteReorder:
    destructive: ClassVar[bool] = True

    job_id: int
    table: TableName

    def describe(self) -> str:
        return f"delete job {self.job_id} (ReorderPolicy on {self.table})"


Operation = AddReorder | AlterReorder | DeleteReorder


def plan(declared: ReorderState, actual: list[ReorderState]) -> list[Operation]:
    """Pure. Add when absent; converge the oldest job in place; remove duplicates added by hand."""
    table = TableName.parse(declared.hypertable)
    if not actual:
        return [AddReorder(table, declared)]
    keep, *extra = actual
    ops: list[Operation] = []
    if differences(declared, keep):
        assert keep.job_id is not None
        ops.append(AlterReorder(keep.job_id, declared, keep))
    ops.extend(DeleteReorder(e.job_id, table) for e in extra if e.job_id is not None)
    return ops


# --------------------------------------------------------------------------------------------------
# Executor


def _interval(window: Window | None) -> sql.Composable:
    return window.sql() if window is not None else sql.SQL("NULL::interval")


def _alter(conn: psycopg.Connection, info: catalog.ServerInfo, job_id: int, declared: ReorderState) -> None:
    """alter_job leaves a field as it is when given NULL: undeclared fields stay."""
    conn.execute(sql.SQL(
        "SELECT {alter_job}({job}, schedule_interval => {si}, max_runtime => {mr}, max_retries => {retries}, "
        "retry_period => {rp}, scheduled => {scheduled}, "
        "config => jsonb_set(j.config, '{{index_name}}', to_jsonb({index}::text))) "
        "FROM timescaledb_information.jobs j WHERE j.job_id = {job}").format(
        alter_job=info.fn("alter_job"), job=sql.Literal(job_id), si=_interval(declared.schedule_interval),
        mr=_interval(declared.max_runtime), retries=sql.SQL("{}::integer").format(sql.Literal(declared.max_retries)),
        rp=_interval(declared.retry_period), scheduled=sql.SQL("{}::boolean").format(sql.Literal(declared.scheduled)),
        index=sql.Literal(declared.index)))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: AddReorder, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    row = conn.execute(sql.SQL("SELECT {}(format('%I.%I', {}::text, {}::text)::regclass, {})").format(
        info.fn("add_reorder_policy"), sql.Literal(op.table.schema), sql.Literal(op.table.name),
        sql.Literal(op.declared.index))).fetchone()
    assert row is not None
    if any(getattr(op.declared, f) is not None for f in SCHEDULE_FIELDS):
        _alter(conn, info, int(row[0]), op.declared)


@execute.register
def _(op: AlterReorder, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    _alter(conn, info, op.job_id, op.declared)


@execute.register
def _(op: DeleteReorder, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    delete_job(conn, info, op.job_id)
