"""PolicyGuard: reports (and on up, removes) policy jobs added by hand to the stack's hypertables.

Each policy resource watches its own job. A job nobody declared, a retention policy created by hand on a
managed table, say, belongs to no resource: this one holds, per managed table, the set of policy kinds the
program declares, and compares it with the kinds the database runs. Removing a policy job never touches
data (a retention job that no longer runs drops nothing).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pulumi
from psycopg import sql
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult
from pydantic import BaseModel, ConfigDict

from . import registry
from ..identifiers import TableName
from ..reconcile import jobs
from .base import LifecycleProvider, changed_fields, resource_options, secret, secret_input

GUARDED = {k.proc_name: k.resource for k in jobs.KINDS.values()}


class GuardArgs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    policies: dict[str, list[str]]
    resource_name: str | None = None


def read_policies(conn: psycopg.Connection, tables: list[str]) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Per table, the guarded policy kinds the database runs, and their job ids by kind."""
    names = [TableName.parse(t) for t in tables]
    rows = conn.execute(
        """SELECT format('%%s.%%s', hypertable_schema, hypertable_name), proc_name, job_id
             FROM timescaledb_information.jobs
            WHERE job_id >= %s AND proc_name = ANY(%s)
              AND (hypertable_schema, hypertable_name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
            ORDER BY job_id""",
        (jobs.FIRST_USER_JOB, list(GUARDED), [n.schema for n in names], [n.name for n in names])).fetchall()
    kinds: dict[str, list[str]] = {t.qualified: [] for t in names}
    ids: dict[str, dict[str, list[int]]] = {t.qualified: {} for t in names}
    for table, proc, job_id in rows:
        kind = GUARDED[proc]
        if kind not in kinds[table]:
            kinds[table].append(kind)
        ids[table].setdefault(kind, []).append(job_id)
    return {t: sorted(k) for t, k in kinds.items()}, ids


class PolicyGuardProvider(LifecycleProvider):
    kind = "PolicyGuard"

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = GuardArgs.model_validate(news)
        return {"policies": {TableName.parse(t).qualified: sorted(set(k) & set(GUARDED.values()))
                             for t, k in args.policies.items()}}

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_fields(olds, news, ["policies", "dsn"])
        return DiffResult(changes=bool(changes), replaces=[])

    def _apply(self, props: dict[str, Any]) -> tuple[dict[str, list[str]], list[int]]:
        expected = GuardArgs.model_validate(props).policies
        removed: list[int] = []
        with self.session(props) as (conn, info), conn.transaction():
            _, ids = read_policies(conn, list(expected))
            for table, by_kind in ids.items():
                for kind, job_ids in by_kind.items():
                    if kind not in expected.get(table, []):
                        for job_id in job_ids:
                            conn.execute(sql.SQL("SELECT {}({})").format(info.fn("delete_job"),
                                                                         sql.Literal(job_id)))
                            removed.append(job_id)
            actual, _ = read_policies(conn, list(expected))
        return actual, removed

    def _outs(self, props: dict[str, Any], actual: dict[str, list[str]], removed: list[int]) -> dict[str, Any]:
        return {"policies": actual, "removed_job_ids": removed, "resource_name": props.get("resource_name"),
                "dsn": secret(props.get("dsn"))}

    def create(self, props: dict[str, Any]) -> CreateResult:
        actual, removed = self._apply(props)
        return CreateResult(props.get("resource_name") or "policy-guard", self._outs(props, actual, removed))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        actual, removed = self._apply(news)
        return UpdateResult(self._outs(news, actual, removed))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        tables = list((props.get("policies") or {}).keys())
        with self.session(props) as (conn, _info):
            actual, _ = read_policies(conn, tables)
        outs = self._outs(props, actual, props.get("removed_job_ids") or [])
        inputs = {"policies": actual, "resource_name": props.get("resource_name")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: the guard owns no object."""


class PolicyGuard(Resource, module="timescale", name="PolicyGuard"):
    """Declare last: guards every hypertable the program manages against policy jobs added by hand."""

    policies: pulumi.Output[dict]
    removed_job_ids: pulumi.Output[list]

    def __init__(self, resource_name: str, tables: list[str] | None = None, *,
                 dsn: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        managed = tables if tables is not None else registry.tables_with("Hypertable")
        policies = {t: [k for k in registry.declared_kinds(t) if k in GUARDED.values()] for t in managed}
        deps = [r for t in managed for r in registry.resources_of(t)]
        props = {"policies": policies, "resource_name": resource_name,
                 "dsn": secret_input(dsn), "removed_job_ids": None}
        opts = resource_options(opts, depends_on=deps)
        super().__init__(PolicyGuardProvider(), resource_name, props, opts)
