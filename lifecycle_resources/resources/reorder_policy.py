"""ReorderPolicy: TimescaleDB reorders each chunk (CLUSTER-like, by one index) once it is no longer written to.

Changes in place (alter_job, same job id): index and every declared schedule field; a schedule field left out
is not managed (add_reorder_policy's own choice stays).
Replaces (delete first: TimescaleDB allows one per hypertable): hypertable.
Delete: removes its own job only (never one another resource owns); reordering never changes the rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError, LifecycleError
from ..identifiers import TableName
from .base import (INTERNAL, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs
from .registry import depends_on_peers, peers_of, target_of

if TYPE_CHECKING:
    import psycopg
    from ..reconcile import reorder
    from ..reconcile.ownership import Claim, ManagedObject
    from .args.reorder_policy import ReorderArgs

KIND = "ReorderPolicy"


def _object(table: TableName) -> ManagedObject:
    from ..reconcile import reorder
    from ..reconcile.ownership import ManagedObject
    return ManagedObject(f"job:{reorder.PROC}", table.qualified)


class ReorderPolicyProvider(LifecycleProvider):
    kind = KIND

    def _declared(self, conn: psycopg.Connection, args: ReorderArgs) -> reorder.ReorderState:
        from ..reconcile import reorder
        from ..reconcile.declared import Spec, resolve_target, windows
        name = args.resource_name
        target = resolve_target(conn, name, "hypertable", args.hypertable, args.peers)
        indexes = reorder.table_indexes(conn, target.table)
        if args.peers.time_column:
            # The program's Hypertable creates the default time index when it makes the table a hypertable.
            indexes.append(f"{target.table.name}_{target.time_column}_idx")
        if args.index not in indexes:
            raise InputError(name, "index", args.index, f"{target.table} has no such index",
                             "one of " + ", ".join(indexes) if indexes else "an index of the table")
        specs = {f: Spec(getattr(args, f), allow_zero=f == "max_runtime")
                 for f in reorder.INTERVALS if getattr(args, f) is not None}
        found = windows(conn, name, target, specs)
        return reorder.ReorderState(hypertable=target.table.qualified, index=args.index, max_retries=args.max_retries,
                                    scheduled=args.scheduled, **found)

    def _plan(self, conn: psycopg.Connection, args: ReorderArgs, props: dict[str, Any]) -> tuple[
            reorder.ReorderState, list[reorder.ReorderState], Claim | None, list[reorder.Operation]]:
        from ..reconcile import reorder
        declared = self._declared(conn, args)
        table = TableName.parse(declared.hypertable)
        actual = reorder.read_jobs(conn, table)
        what = f"job {actual[0].job_id} ({KIND} on {table})" if actual else f"{KIND} on {table}"
        claim = self.claim_for(conn, _object(table), what, bool(actual), props)
        return declared, actual, claim, reorder.plan(declared, actual)

    @staticmethod
    def _args(props: dict[str, Any]) -> ReorderArgs:
        from .args.reorder_policy import ReorderArgs
        return ReorderArgs.model_validate({k: v for k, v in props.items() if v is not None})

    @staticmethod
    def _values(state: reorder.ReorderState) -> dict[str, Any]:
        from ..reconcile import reorder
        return {**{f"{f}_value": (w.key if (w := getattr(state, f)) is not None else None) for f in reorder.INTERVALS},
                "max_retries": state.max_retries, "scheduled": state.scheduled, "index": state.index}

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = self._args(news)
        with self.session(news) as (conn, _info):
            declared, _actual, claim, ops = self._plan(conn, args, news)
        return {"hypertable": declared.hypertable, **self._values(declared),
                "planned_operations": described([*filter(None, [claim]), *ops])}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["hypertable"])
        changes = changed_fields(olds, news, ["index", "schedule_interval_value", "max_runtime_value",
                                              "retry_period_value", "max_retries", "scheduled", "dsn", "owner"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=True)

    def _apply(self, props: dict[str, Any]) -> tuple[reorder.ReorderState, bool, list[str]]:
        from ..reconcile import reorder
        from ..reconcile.locks import lock_table
        args = self._args(props)
        with self.session(props) as (conn, info), conn.transaction():
            table = TableName.parse(args.hypertable)
            lock_table(conn, table)
            declared, actual, claim, ops = self._plan(conn, args, props)
            for op in ops:
                reorder.execute(op, conn, info)
            self.record_owner(conn, _object(table), props)
            after = reorder.read_jobs(conn, table)
            if len(after) != 1:  # raised inside the transaction: nothing above is kept
                raise LifecycleError(f"{args.resource_name}: {table} has {len(after)} {KIND} jobs after "
                                     f"{described(ops) or 'no change'}, expected exactly one")
        return _presented(after[0], props), bool(actual), described([*filter(None, [claim]), *ops])

    def _outs(self, props: dict[str, Any], state: reorder.ReorderState, adopted: bool,
              operations: list[str] | None = None) -> dict[str, Any]:
        from ..reconcile import reorder
        outs = {"hypertable": state.hypertable, **self._values(state),
                **{f: (w.text if (w := getattr(state, f)) is not None else None) for f in reorder.INTERVALS},
                "job_id": state.job_id, "adopted": adopted, "adopt": bool(props.get("adopt")),
                "resource_name": props.get("resource_name"), "peers": props.get("peers") or {},
                "owner": props.get("owner"), "planned_operations": props.get("planned_operations") or [],
                "dsn": secret(props.get("dsn"))}
        outs["last_operations"] = operations if operations is not None else props.get("last_operations") or []
        return outs

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted, ops = self._apply(props)
        return CreateResult(str(state.job_id), self._outs(props, state, adopted, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _, ops = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted")), ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile import reorder
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, _info):
            found = reorder.read_jobs(conn, table)
        if not found:
            return ReadResult(None, {})  # removed by hand: the next up adds it again
        keep = next((j for j in found if str(j.job_id) == id_), found[0])
        outs = self._outs(props, _presented(keep, props), bool(props.get("adopted")))
        inputs = {k: outs[k] for k in ("hypertable", "index", *reorder.INTERVALS, "schedule_interval_value",
                                       "max_runtime_value", "retry_period_value", "max_retries", "scheduled",
                                       "adopt", "resource_name", "peers", "owner")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(str(keep.job_id), outs, inputs)

    def do_delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove its own job, unless another resource owns it now."""
        from ..reconcile import reorder
        from ..reconcile.locks import lock_table
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            if not self.let_go(conn, _object(table), props):
                return
            for job in reorder.read_jobs(conn, table):
                if str(job.job_id) == id_:
                    reorder.execute(reorder.DeleteReorder(job.job_id, table), conn, info)


def _presented(actual: reorder.ReorderState, props: dict[str, Any]) -> reorder.ReorderState:
    """The job as read, showing only the declared schedule fields, in the user's spelling while equal."""
    from ..reconcile import reorder
    from ..reconcile.declared import display
    from ..reconcile.intervals import Window
    update: dict[str, Any] = {}
    for field in reorder.SCHEDULE_FIELDS:
        key = f"{field}_value" if field in reorder.INTERVALS else field
        if props.get(key) is None:
            update[field] = None
        elif field in reorder.INTERVALS:
            shown = getattr(actual, field)
            declared = Window.from_key(props[key], str(props.get(field) or ""))
            update[field] = Window(shown.months, shown.micros, display(declared, shown))
    return actual.model_copy(update=update)


@typed_outputs
class ReorderPolicy(Resource, module="timescale", name="ReorderPolicy"):
    """Reorders a hypertable's chunks by `index` (add_reorder_policy), on TimescaleDB's schedule or the one given."""

    hypertable: pulumi.Output[str]
    index: pulumi.Output[str]
    schedule_interval: pulumi.Output[str]
    job_id: pulumi.Output[int]
    adopted: pulumi.Output[bool]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, hypertable: Any, index: pulumi.Input[str], *,
                 schedule_interval: str | None = None, max_runtime: str | None = None,
                 max_retries: int | None = None, retry_period: str | None = None, scheduled: bool | None = None,
                 adopt: bool = False, dsn: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        table = target_of(hypertable)
        registry.declare_policy(KIND, resource_name, table, index)
        props = {
            "hypertable": table, "index": index, "schedule_interval": schedule_interval, "max_runtime": max_runtime,
            "max_retries": max_retries, "retry_period": retry_period, "scheduled": scheduled, "adopt": adopt,
            "dsn": secret_input(dsn), "job_id": None, "adopted": None, "planned_operations": None,
            "last_operations": None,
            INTERNAL: internals(KIND, resource_name, peers=later_input(lambda: peers_of(table))),
        }
        deps = later(lambda: depends_on_peers(table, "Hypertable") + (
            [hypertable] if isinstance(hypertable, pulumi.Resource) else []))
        opts = resource_options(opts, depends_on=deps, delete_before_replace=True)
        super().__init__(ReorderPolicyProvider(), resource_name, props, opts)
        untracked(self)
        registry.attach(KIND, table, self)


def __getattr__(name: str) -> Any:
    """ReorderArgs moved to args/reorder_policy.py (imported by the provider only); the old import path still works."""
    if name == "ReorderArgs":
        from .args import reorder_policy
        return getattr(reorder_policy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
