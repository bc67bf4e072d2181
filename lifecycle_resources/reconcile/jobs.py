"""TimescaleDB policy jobs (compression, retention): one model for declared and read state, a pure
planner, and an executor. Everything version-specific about jobs lives here."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from .intervals import Window
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
    word: str              # lifecycle.policy_declarations.kind


COMPRESSION = PolicyKind("CompressionPolicy", "policy_compression", "add_compression_policy", "compress_after",
                         ("compress_created_before",), "12 hours", "compression")
RETENTION = PolicyKind("RetentionPolicy", "policy_retention", "add_retention_policy", "drop_after",
                       ("drop_created_before",), "1 day", "retention")
KINDS = {k.proc_name: k for k in (COMPRESSION, RETENTION)}


class JobState(BaseModel):
    """A policy job, normalised: every interval a Window (an integer window for integer time)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    hypertable: str
    window: Window | None          # compress_after / drop_after; None when the job uses another key
    schedule_interval: Window
    max_runtime: Window
    max_retries: int
    retry_period: Window
    scheduled: bool
    paused: bool = False           # next_start = 'infinity': scheduled, yet never run
    fixed_schedule: bool = False   # what add_*_policy gives without initial_start
    timezone: str | None = None    # declared None: whatever the job has (alter_job cannot clear it)
    initial_start: datetime | None = None  # likewise
    job_id: int | None = None
    config: dict[str, Any] | None = None


COMPARED = ("window", "schedule_interval", "max_runtime", "max_retries", "retry_period", "scheduled", "paused",
            "fixed_schedule", "timezone", "initial_start")
INTERVAL_FIELDS = ("schedule_interval", "max_runtime", "retry_period")
UNSET_MEANS_ANY = ("timezone", "initial_start")


def differences(declared: JobState, actual: JobState) -> list[str]:
    """The compared fields where the job differs from the declaration, in a fixed order."""
    return [k for k in COMPARED if getattr(declared, k) != getattr(actual, k)
            and not (k in UNSET_MEANS_ANY and getattr(declared, k) is None)]


# timescaledb_information.jobs as TimescaleDB defines it (2.23 to 2.26: a job on a continuous aggregate's
# materialization hypertable is shown under the aggregate's view), read from its tables. The view's filter on
# hypertable_schema and hypertable_name compares COALESCEs of joined names, which no index serves: each read of
# one table's jobs scanned every job of the database and joined it (4.8 ms at 600 jobs on the embedded server,
# once per policy check, create and read-back: quadratic over an `up`).
JOBS_FROM = """
  FROM _timescaledb_config.bgw_job j
  LEFT JOIN _timescaledb_catalog.hypertable ht ON ht.id = j.hypertable_id
  LEFT JOIN _timescaledb_internal.bgw_job_stat js ON js.job_id = j.id
  LEFT JOIN _timescaledb_catalog.continuous_agg ca ON ca.mat_hypertable_id = j.hypertable_id"""

# The jobs of one schema's relations, as the view names them (parameter: the schema).
IN_SCHEMA = """
   AND coalesce(ca.user_view_schema, ht.schema_name) = %s"""

# The jobs of one relation (parameters: its schema and name, three times), found as TimescaleDB finds a policy
# (ts_bgw_job_find_by_proc_and_hypertable_id: its proc in TimescaleDB's functions schema, then the hypertable's
# id, through bgw_job's index on the three; 0.5 ms at 600 jobs), and kept only where the view would name it so
# (a materialization hypertable asked for by its own name has none, as in the view).
ONE_RELATION = IN_SCHEMA + """ AND coalesce(ca.user_view_name, ht.table_name) = %s
   AND j.proc_schema IN ('_timescaledb_functions', '_timescaledb_internal')
   AND j.hypertable_id = (SELECT coalesce(
         (SELECT c.mat_hypertable_id FROM _timescaledb_catalog.continuous_agg c
           WHERE c.user_view_schema = %s AND c.user_view_name = %s),
         (SELECT h.id FROM _timescaledb_catalog.hypertable h WHERE h.schema_name = %s AND h.table_name = %s)))"""


def one_relation(schema: str, name: str) -> tuple[str, ...]:
    """ONE_RELATION's parameters."""
    return (schema, name) * 3


_READ = sql.SQL("""
SELECT coalesce(ca.user_view_name, ht.table_name), j.id, j.config, jsonb_typeof(j.config -> %s),
       CASE jsonb_typeof(j.config -> %s)
            WHEN 'number' THEN j.config ->> %s
            WHEN 'string' THEN (j.config ->> %s)::interval::text
       END,
       j.schedule_interval::text, j.max_runtime::text, j.max_retries, j.retry_period::text, j.scheduled,
       coalesce(js.next_start = 'infinity'::timestamptz, false), j.fixed_schedule, j.timezone, j.initial_start"""
                + JOBS_FROM + """
 WHERE j.proc_name = %s {where}
   AND j.id >= %s
 ORDER BY j.id
""")  # positional parameters: _params() (so that catalog.bundle() can join it with other reads)
_SCHEMA = sql.SQL(IN_SCHEMA)


def _params(kind: PolicyKind, *where: str) -> tuple[Any, ...]:
    return (*[kind.window_key] * 4, kind.proc_name, *where, FIRST_USER_JOB)


def jobs_read(kind: PolicyKind, table: TableName) -> catalog.Read:
    """read_jobs()'s query of one table, for catalog.bundle()."""
    return catalog.Read(f"jobs:{kind.proc_name}", table.qualified,
                        _READ.format(where=sql.SQL(ONE_RELATION)),
                        _params(kind, *one_relation(table.schema, table.name)))


def read_jobs(conn: psycopg.Connection, kind: PolicyKind, table: TableName) -> list[JobState]:
    """Every job of this kind on the table (normally one; more only if someone added duplicates by hand).
    Outside a transaction, one query for the whole schema (catalog.per_schema)."""
    def one() -> list[JobState]:
        return [_job(table.schema, r) for r in catalog.rows(conn, jobs_read(kind, table))]

    def schema() -> dict[str, list[JobState]]:
        found: dict[str, list[JobState]] = {}
        for r in conn.execute(_READ.format(where=_SCHEMA), _params(kind, table.schema)).fetchall():
            found.setdefault(r[0], []).append(_job(table.schema, r))
        return found

    return list(catalog.per_schema(conn, f"jobs:{kind.proc_name}", table, one, schema) or [])


def _job(schema: str, row: tuple[Any, ...]) -> JobState:
    name, *r = row
    return JobState(hypertable=TableName(schema=schema, name=name).qualified, job_id=r[0], config=r[1],
                    window=(Window.of_integer(int(r[3])) if r[2] == "number"
                            else Window.from_output(r[3]) if r[2] == "string" else None),
                    schedule_interval=Window.from_output(r[4]), max_runtime=Window.from_output(r[5]),
                    max_retries=r[6], retry_period=Window.from_output(r[7]), scheduled=r[8], paused=r[9],
                    fixed_schedule=bool(r[10]), timezone=r[11], initial_start=r[12])


# --------------------------------------------------------------------------------------------------
# Operations


@dataclass(frozen=True)
class AddJob:
    kind: PolicyKind
    table: TableName
    declared: JobState

    def describe(self) -> str:
        window = self.declared.window.text if self.declared.window else "?"
        paused = ", paused" if self.declared.paused else ""
        return f"add {self.kind.resource} on {self.table} ({self.kind.window_key} {window}{paused})"


@dataclass(frozen=True)
class AlterJob:
    kind: PolicyKind
    job_id: int
    declared: JobState
    existing: JobState

    def describe(self) -> str:
        changed = differences(self.declared, self.existing)
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
        return f"register {self.name} in lifecycle.policy_declarations"


@dataclass(frozen=True)
class Notice:
    """Not an operation: a warning shown with the planned operations (preview and up), executed as nothing."""

    message: str

    def describe(self) -> str:
        return f"WARNING: {self.message}"


JobOperation = AddJob | AlterJob | DeleteJob


def plan(kind: PolicyKind, declared: JobState, actual: list[JobState]) -> list[JobOperation]:
    """Pure. Create when absent; converge the oldest job in place; remove duplicates added by hand.

    Only jobs read by read_jobs (ids from FIRST_USER_JOB on) ever reach it."""
    table = TableName.parse(declared.hypertable)
    if not actual:
        return [AddJob(kind, table, declared)]
    keep, *extra = actual
    ops: list[JobOperation] = []
    if differences(declared, keep):
        assert keep.job_id is not None
        ops.append(AlterJob(kind, keep.job_id, declared, keep))
    ops.extend(DeleteJob(kind, e.job_id, table) for e in extra if e.job_id is not None)
    return ops


# --------------------------------------------------------------------------------------------------
# Executor


def _value(window: Window) -> sql.Composable:
    """The user's spelling when known (the catalog then shows '1 day', not '24:00:00'), else the exact value."""
    if window.text and not window.integer:
        return sql.SQL("{}::interval").format(sql.Literal(window.text))
    return window.sql()


def _next_start(declared: JobState, existing: JobState | None) -> sql.Composable:
    """Pause by moving next_start to infinity; resume now. NULL leaves the schedule as it is."""
    if declared.paused and (existing is None or not existing.paused):
        return sql.SQL("'infinity'::timestamptz")
    if not declared.paused and existing is not None and existing.paused:
        return sql.SQL("now()")
    return sql.SQL("NULL::timestamptz")


def _schedule_args(declared: JobState, existing: JobState | None) -> sql.Composed:
    """alter_job's arguments besides the job and its config: the schedule as declared."""
    return sql.SQL(
        "schedule_interval => {si}, max_runtime => {mr}, max_retries => {retries}, retry_period => {rp}, "
        "scheduled => {scheduled}, fixed_schedule => {fixed}, initial_start => {initial}::timestamptz, "
        "timezone => {tz}::text, next_start => {next}").format(
        si=_value(declared.schedule_interval), mr=_value(declared.max_runtime),
        retries=sql.Literal(declared.max_retries), rp=_value(declared.retry_period),
        scheduled=sql.Literal(declared.scheduled), fixed=sql.Literal(declared.fixed_schedule),
        initial=sql.Literal(declared.initial_start), tz=sql.Literal(declared.timezone),
        next=_next_start(declared, existing))


def _alter(conn: psycopg.Connection, info: catalog.ServerInfo, kind: PolicyKind, job_id: int,
           declared: JobState, existing: JobState | None) -> None:
    assert declared.window is not None
    window_json = (sql.SQL("to_jsonb({})").format(sql.Literal(declared.window.micros)) if declared.window.integer
                   else sql.SQL("to_jsonb(({})::text)").format(_value(declared.window)))
    drop_keys = sql.SQL(" - ").join(sql.Literal(k) for k in kind.other_window_keys)
    conn.execute(sql.SQL(
        "SELECT {alter_job}({job}, {schedule}, config => (j.config - {drop}) || jsonb_build_object({key}, {window})) "
        "FROM timescaledb_information.jobs j WHERE j.job_id = {job}").format(
        alter_job=info.fn("alter_job"), job=sql.Literal(job_id), schedule=_schedule_args(declared, existing),
        drop=drop_keys, key=sql.Literal(kind.window_key), window=window_json))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: AddJob, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    assert op.declared.window is not None
    # Added and given its schedule in one statement: the config add_*_policy writes already holds the window as
    # declared (and none of the other window keys), which is what _alter's config would write on it.
    conn.execute(sql.SQL("SELECT {}({}(format('%I.%I', {}::text, {}::text)::regclass, {}, "
                         "schedule_interval => {}), {})").format(
        info.fn("alter_job"), info.fn(op.kind.add_function), sql.Literal(op.table.schema),
        sql.Literal(op.table.name), _value(op.declared.window), _value(op.declared.schedule_interval),
        _schedule_args(op.declared, None)))


@execute.register
def _(op: AlterJob, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    _alter(conn, info, op.kind, op.job_id, op.declared, op.existing)


@execute.register
def _(op: Notice, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    """Nothing to do: the warning was shown."""


@execute.register
def _(op: DeleteJob, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    delete_job(conn, info, op.job_id)


def delete_job(conn: psycopg.Connection, info: catalog.ServerInfo, job_id: int) -> None:
    """Removes one TimescaleDB job, whatever its kind (policy, refresh, reorder)."""
    conn.execute(sql.SQL("SELECT {}({})").format(info.fn("delete_job"), sql.Literal(job_id)))
