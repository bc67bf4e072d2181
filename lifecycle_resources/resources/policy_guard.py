"""PolicyGuard: reports (and on up, removes) jobs nobody declared on the stack's hypertables.

Each policy resource watches its own job. A job nobody declared (a retention or reorder policy made by hand on a
managed table, a refresh policy of a continuous aggregate over it, a custom job whose config names it) belongs to
no resource: this one compares, per managed table, the jobs the program declares with the jobs the database runs.
What the guard sees of the program is computed after the whole program is declared, so where it is declared does
not matter. A job another resource owns (in the ownership ledger) is never removed. Removing a job never touches
data (a retention job that no longer runs drops nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..identifiers import TableName
from .base import (INTERNAL, LifecycleProvider, changed_fields, described, internals, later, resource_options,
                   secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs

if TYPE_CHECKING:
    import psycopg
    from .args.policy_guard import GuardArgs

# Resource kind -> job label; spelled out (reconcile.jobs.KINDS has the first two) because the program reads it, and
# a Pulumi program does not import reconcile/ (tests/test_startup_imports.py checks that they agree).
DECLARED = {"CompressionPolicy": "policy_compression", "RetentionPolicy": "policy_retention",
            "ReorderPolicy": "policy_reorder"}
INTERNAL_SCHEMAS = ("_timescaledb_functions", "_timescaledb_internal")


def _guard_args(props: dict[str, Any]) -> GuardArgs:
    from .args.policy_guard import GuardArgs  # the provider host's: the program never validates
    return GuardArgs.model_validate(props)


@dataclass(frozen=True)
class FoundJob:
    job_id: int
    table: str    # the managed hypertable the job acts on (for a refresh policy: the aggregate's source)
    label: str    # policy_retention, policy_reorder, policy_refresh_continuous_aggregate:s.v, custom:s.proc


@dataclass(frozen=True)
class RemoveJob:
    """The guard's one operation: a job on a managed table that no resource declares or owns."""

    destructive: ClassVar[bool] = True
    job: FoundJob

    def describe(self) -> str:
        kind = {v: k for k, v in DECLARED.items()}.get(self.job.label, self.job.label)
        return f"delete job {self.job.job_id} ({kind} on {self.job.table}, declared by no resource)"


_JOBS = """
SELECT j.job_id, j.proc_schema, j.proc_name, j.hypertable_schema, j.hypertable_name, j.config ->> 'hypertable',
       ca.hypertable_schema, ca.hypertable_name, format('%%s.%%s', ca.view_schema, ca.view_name)
  FROM timescaledb_information.jobs j
  LEFT JOIN timescaledb_information.continuous_aggregates ca  -- the jobs view names the aggregate's view
    ON (j.hypertable_schema, j.hypertable_name) IN ((ca.view_schema, ca.view_name),
                                                    (ca.materialization_hypertable_schema,
                                                     ca.materialization_hypertable_name))
 WHERE j.job_id >= %s
 ORDER BY j.job_id
"""


def _table_of(schema: str | None, name: str | None) -> str | None:
    return f"{schema}.{name}" if schema and name else None


def read_jobs(conn: psycopg.Connection, tables: list[str]) -> list[FoundJob]:
    """Every user job that acts on one of `tables`, whatever its kind."""
    from ..reconcile import jobs
    managed = {TableName.parse(t).qualified for t in tables}
    found = []
    for job_id, proc_schema, proc, h_schema, h_name, config_table, ca_schema, ca_name, view in conn.execute(
            _JOBS, (jobs.FIRST_USER_JOB,)).fetchall():
        builtin = proc_schema in INTERNAL_SCHEMAS
        if ca_schema is not None:
            table, label = _table_of(ca_schema, ca_name), f"{proc}:{view}"
        elif builtin:
            table, label = _table_of(h_schema, h_name), proc
        else:
            try:
                named = TableName.parse(config_table).qualified if config_table else None
            except ValueError:
                named = None
            table, label = _table_of(h_schema, h_name) or named, f"custom:{proc_schema}.{proc}"
        if table in managed:
            found.append(FoundJob(job_id, table, label))
    return found


def _owned(conn: psycopg.Connection, job: FoundJob) -> bool:
    """A policy job a resource recorded: on the table, or ("proc:view") on a continuous aggregate over it
    (its refresh policy, or a compression or retention policy that takes the aggregate as target)."""
    from ..reconcile.caggs import REFRESH_PROC
    from ..reconcile.ownership import ManagedObject, read_owner
    proc, _, view = job.label.partition(":")
    if proc == job.label and job.label in DECLARED.values():
        return read_owner(conn, ManagedObject(f"job:{job.label}", job.table)) is not None
    if view and (proc in DECLARED.values() or proc == REFRESH_PROC):
        return read_owner(conn, ManagedObject(f"job:{proc}", view)) is not None
    return False


def plan(conn: psycopg.Connection, expected: dict[str, list[str]]) -> list[RemoveJob]:
    """Jobs on the managed tables that the program does not declare and no resource owns."""
    return [RemoveJob(job) for job in read_jobs(conn, list(expected))
            if job.label not in expected.get(job.table, []) and not _owned(conn, job)]


class PolicyGuardProvider(LifecycleProvider):
    kind = "PolicyGuard"

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = _guard_args(news)
        expected = self._expected(args)
        with self.session(news) as (conn, _info):
            ops = plan(conn, expected)
        return {"policies": expected, "planned_operations": described(ops)}

    @staticmethod
    def _expected(args: GuardArgs) -> dict[str, list[str]]:
        return {TableName.parse(t).qualified: sorted(set(k)) for t, k in args.policies.items()}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_fields(olds, news, ["policies", "dsn"])
        return DiffResult(changes=bool(changes), replaces=[])

    def _apply(self, props: dict[str, Any]) -> tuple[list[int], list[str]]:
        from ..reconcile import jobs
        from ..reconcile.locks import lock_table
        expected = self._expected(_guard_args(props))
        with self.session(props) as (conn, info), conn.transaction():
            for table in sorted(expected):
                lock_table(conn, TableName.parse(table))
            ops = plan(conn, expected)
            for op in ops:
                jobs.delete_job(conn, info, op.job.job_id)
        return [op.job.job_id for op in ops], described(ops)

    def _outs(self, props: dict[str, Any], removed: list[int], operations: list[str]) -> dict[str, Any]:
        return {"policies": props.get("policies") or {}, "removed_job_ids": removed,
                "planned_operations": props.get("planned_operations") or [], "last_operations": operations,
                "resource_name": props.get("resource_name"), "owner": props.get("owner"),
                "dsn": secret(props.get("dsn"))}

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        removed, ops = self._apply(props)
        return CreateResult(props.get("resource_name") or "policy-guard", self._outs(props, removed, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        removed, ops = self._apply(news)
        return UpdateResult(self._outs(news, removed, ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The declared jobs, plus what up would remove: a refreshing preview shows the undeclared ones."""
        expected = self._expected(_guard_args({**props, "policies": props.get("policies") or {}}))
        with self.session(props) as (conn, _info):
            extra = plan(conn, expected)
        seen = {t: sorted(set(k) | {op.job.label for op in extra if op.job.table == t}) for t, k in expected.items()}
        outs = {**self._outs(props, props.get("removed_job_ids") or [], props.get("last_operations") or []),
                "policies": seen}
        inputs = {"policies": seen, "resource_name": props.get("resource_name"), "owner": props.get("owner")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: the guard owns no object."""


def declared_jobs(tables: list[str] | None) -> dict[str, list[str]]:
    """Per managed table, the job labels the program declares (read once the whole program is declared)."""
    managed = tables if tables is not None else registry.tables_with("Hypertable")
    return {t: sorted(DECLARED[k] for k in registry.declared_kinds(t) if k in DECLARED) for t in managed}


@typed_outputs
class PolicyGuard(Resource, module="timescale", name="PolicyGuard"):
    """Guards every hypertable the program manages against jobs added by hand; declare it anywhere."""

    policies: pulumi.Output[dict]
    removed_job_ids: pulumi.Output[list]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, tables: list[str] | None = None, *,
                 dsn: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"policies": later(lambda: declared_jobs(tables)), "dsn": secret_input(dsn),
                 "removed_job_ids": None, "planned_operations": None, "last_operations": None,
                 INTERNAL: internals("PolicyGuard", resource_name)}
        deps = later(lambda: [r for t in declared_jobs(tables) for r in registry.resources_of(t)])
        opts = resource_options(opts, depends_on=deps)
        super().__init__(PolicyGuardProvider(), resource_name, props, opts)
        untracked(self)


def __getattr__(name: str) -> Any:
    """GuardArgs moved to args/policy_guard.py (imported by the provider only); the old import path still works."""
    if name == "GuardArgs":
        from .args import policy_guard
        return policy_guard.GuardArgs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
