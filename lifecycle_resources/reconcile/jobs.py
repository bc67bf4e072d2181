"""TimescaleDB policy jobs (compression, retention): one model for declared and read state, a pure
planner, and an executor. Everything version-specific about jobs lives here."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from ..identifiers import TableName

# Jobs below this id belong to TimescaleDB itself (job 3 retains job history): never ours to touch.
FIRST_USER_JOB = 1000


@dataclass(frozen=True)
class PolicyKind:
    """What differs between the policies TimescaleDB runs as jobs."""

    resource: str          # our resource name, e.g. "RetentionPolicy"
    proc_name: str         # timescaledb_information.jobs.proc_name
    add_function: str      # add_<x>_policy
    window_key: str        # the config key holding the window: compress_after, drop_after
    other_window_keys: tuple[str, ...]  # alternatives TimescaleDB accepts in its place
    default_schedule: str
    word: str              # lifecycle.lifecycle_policies.kind

    @property
    def register_function(self) -> str:
        return f"create_lifecycle_{self.word}_policy"


COMPRESSION = PolicyKind("CompressionPolicy", "policy_compression", "add_compression_policy", "compress_after",
                         ("compress_created_before",), "12 hours", "compression")
RETENTION = PolicyKind("RetentionPolicy", "policy_retention", "add_retention_policy", "drop_after",
                       ("drop_created_before",), "1 day", "retention")
KINDS = {k.proc_name: k for k in (COMPRESSION, RETENTION)}


class JobState(BaseModel):
    """A policy job, normalised: intervals in microseconds (integers as themselves for integer time)."""

    model_config = ConfigDict(frozen=True)

    hypertable: str
    window: int | None            # compress_after / drop_after; None when the job uses another key
    schedule_interval: int
    max_runtime: int
    max_retries: int
    retry_period: int
    scheduled: bool
    job_id: int | None = None
    config: dict[str, Any] | None = None
    texts: dict[str, str] = {}    # how PostgreSQL prints each interval, for display

    def compared(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in COMPARED}


COMPARED = ("window", "schedule_interval", "max_runtime", "max_retries", "retry_period", "scheduled")
INTERVAL_FIELDS = ("schedule_interval", "max_runtime", "retry_period")


_READ = """
SELECT j.job_id, j.config,
       CASE jsonb_typeof(j.config -> %(key)s)
            WHEN 'number' THEN (j.config ->> %(key)s)::bigint
            WHEN 'string' THEN (extract(epoch FROM (j.config ->> %(key)s)::interval) * 1000000)::bigint
       END,
       j.config ->> %(key)s,
       (extract(epoch FROM j.schedule_interval) * 1000000)::bigint, j.schedule_interval::text,
       (extract(epoch FROM j.max_runtime) * 1000000)::bigint, j.max_runtime::text,
       j.max_retries,
       (extract(epoch FROM j.retry_period) * 1000000)::bigint, j.retry_period::text,
       j.scheduled
  FROM timescaledb_information.jobs j
 WHERE j.proc_name = %(proc)s AND j.hypertable_schema = %(schema)s AND j.hypertable_name = %(name)s
   AND j.job_id >= %(first)s
 ORDER BY j.job_id
"""


def read_jobs(conn: psycopg.Connection, kind: PolicyKind, table: TableName) -> list[JobState]:
    """Every job of this kind on the table (normally one; more only if someone added duplicates by hand)."""
    rows = conn.execute(_READ, {"key": kind.window_key, "proc": kind.proc_name, "schema": table.schema,
                                "name": table.name, "first": FIRST_USER_JOB}).fetchall()
    return [
        JobState(hypertable=table.qualified, job_id=r[0], config=r[1], window=r[2], schedule_interval=r[4],
                 max_runtime=r[6], max_retries=r[8], retry_period=r[9], scheduled=r[11],
                 texts={"window": r[3] or "", "schedule_interval": r[5], "max_runtime": r[7],
                        "retry_period": r[10]})
        for r in rows
    ]


# --------------------------------------------------------------------------------------------------
# Operations


@dataclass(frozen=True)
class AddJob:
    kind: PolicyKind
    table: TableName
    declared: JobState
    window_text: str

    def describe(self) -> str:
        return f"add {self.kind.resource} on {self.table} ({self.kind.window_key} {self.window_text})"


@dataclass(frozen=True)
class AlterJob:
    kind: PolicyKind
    job_id: int
    declared: JobState
    window_text: str
    existing: JobState

    def describe(self) -> str:
        changed = [k for k in COMPARED if getattr(self.declared, k) != getattr(self.existing, k)]
        return f"alter job {self.job_id} ({self.kind.resource}): {', '.join(changed)}"


@dataclass(frozen=True)
class DeleteJob:
    destructive: ClassVar[bool] = True  # shown as DESTRUCTIVE at preview

    kind: PolicyKind
    job_id: int
    table: TableName

    def describe(self) -> str:
        return f"delete job {self.job_id} ({self.kind.resource} on {self.table})"


@dataclass(frozen=True)
class Registered:
    """Not an operation on the job: the record that the lifecycle schema now knows the policy."""

    kind: PolicyKind
    table: TableName
    name: str

    def describe(self) -> str:
        return f"register {self.name} in lifecycle.lifecycle_policies"


JobOperation = AddJob | AlterJob | DeleteJob


def plan(kind: PolicyKind, declared: JobState, window_text: str, actual: list[JobState]) -> list[JobOperation]:
    """Pure. Create when absent; converge the oldest job in place; remove duplicates added by hand."""
    table = TableName.parse(declared.hypertable)
    if not actual:
        return [AddJob(kind, table, declared, window_text)]
    keep, *extra = actual
    ops: list[JobOperation] = []
    if keep.compared() != declared.compared():
        assert keep.job_id is not None
        ops.append(AlterJob(kind, keep.job_id, declared, window_text, keep))
    ops.extend(DeleteJob(kind, e.job_id, table) for e in extra if e.job_id is not None)
    return ops


# --------------------------------------------------------------------------------------------------
# Executor


def _window(declared: JobState, window_text: str, integer: bool) -> sql.Composable:
    if integer:
        return sql.SQL("{}::bigint").format(sql.Literal(declared.window))
    return sql.SQL("{}::interval").format(sql.Literal(window_text))


def _interval(state: JobState, field: str) -> sql.Composable:
    """The declared spelling when known (the catalog then shows '1 day', not '24:00:00'), else the value."""
    text = state.texts.get(field)
    if text:
        return sql.SQL("{}::interval").format(sql.Literal(text))
    return sql.SQL("make_interval(secs => {}::double precision / 1000000)").format(
        sql.Literal(getattr(state, field)))


def _alter(conn: psycopg.Connection, info: catalog.ServerInfo, kind: PolicyKind, job_id: int,
           declared: JobState, window_text: str, integer: bool) -> None:
    window_json = (sql.SQL("to_jsonb({})").format(sql.Literal(declared.window)) if integer
                   else sql.SQL("to_jsonb({}::interval::text)").format(sql.Literal(window_text)))
    drop_keys = sql.SQL(" - ").join(sql.Literal(k) for k in kind.other_window_keys)
    conn.execute(sql.SQL(
        "SELECT {alter_job}({job}, schedule_interval => {si}, max_runtime => {mr}, max_retries => {retries}, "
        "retry_period => {rp}, scheduled => {scheduled}, "
        "config => (j.config - {drop}) || jsonb_build_object({key}, {window})) "
        "FROM timescaledb_information.jobs j WHERE j.job_id = {job}").format(
        alter_job=info.fn("alter_job"), job=sql.Literal(job_id), si=_interval(declared, "schedule_interval"),
        mr=_interval(declared, "max_runtime"), retries=sql.Literal(declared.max_retries),
        rp=_interval(declared, "retry_period"), scheduled=sql.Literal(declared.scheduled), drop=drop_keys,
        key=sql.Literal(kind.window_key), window=window_json))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo, integer: bool) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: AddJob, conn: psycopg.Connection, info: catalog.ServerInfo, integer: bool) -> None:
    row = conn.execute(sql.SQL("SELECT {}(format('%I.%I', {}::text, {}::text)::regclass, {}, "
                               "schedule_interval => {})").format(
        info.fn(op.kind.add_function), sql.Literal(op.table.schema), sql.Literal(op.table.name),
        _window(op.declared, op.window_text, integer), _interval(op.declared, "schedule_interval"))).fetchone()
    assert row is not None
    _alter(conn, info, op.kind, int(row[0]), op.declared, op.window_text, integer)


@execute.register
def _(op: AlterJob, conn: psycopg.Connection, info: catalog.ServerInfo, integer: bool) -> None:
    _alter(conn, info, op.kind, op.job_id, op.declared, op.window_text, integer)


@execute.register
def _(op: DeleteJob, conn: psycopg.Connection, info: catalog.ServerInfo, integer: bool) -> None:
    conn.execute(sql.SQL("SELECT {}({})").format(info.fn("delete_job"), sql.Literal(op.job_id)))
