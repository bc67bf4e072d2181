"""ContinuousAggregate: a TimescaleDB continuous aggregate (a materialized time_bucket query over a hypertable
or over another aggregate), its options and its refresh policy.

Changes in place: materialized_only and compress (ALTER MATERIALIZED VIEW), the refresh policy (alter_job, same
job id). A changed query cannot be altered: it is recreated (its materialized rows dropped and recomputed from the
source), shown at preview with that cost, and refused unless `allow_recreate=True`.
Replaces: view. Delete: drops the view only with `drop_on_delete=True`; otherwise removes only the refresh policy
it owns and leaves the view and its rows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import Deferred, InputError
from ..identifiers import TableName
from .base import (INTERNAL, INTERNAL_KEYS, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs

if TYPE_CHECKING:
    import psycopg
    from ..reconcile import caggs
    from ..reconcile.intervals import Window
    from ..reconcile.ownership import Claim, ManagedObject
    from .args.continuous_aggregate import CaggArgs

KIND = "ContinuousAggregate"
OFFSETS = ("start_offset", "end_offset", "schedule_interval")


def _view_object(view: str) -> ManagedObject:
    from ..reconcile.ownership import ManagedObject
    return ManagedObject("continuous_aggregate", view)


def _job_object(view: str) -> ManagedObject:
    from ..reconcile import caggs
    from ..reconcile.ownership import ManagedObject
    return ManagedObject(f"job:{caggs.REFRESH_PROC}", view)


def _windows_key(policy: caggs.RefreshPolicy | None) -> list[Any] | None:
    if policy is None:
        return None
    return [None if w is None else w.key for w in (policy.start_offset, policy.end_offset, policy.schedule_interval)]


class ContinuousAggregateProvider(LifecycleProvider):
    kind = KIND
    internal_keys = INTERNAL_KEYS | {"retention_peers", "sources", "refresh_value", "definition"}

    # -- the declared state -----------------------------------------------------------------------
    def _view(self, args: CaggArgs) -> TableName:
        try:
            return TableName.parse(args.view)
        except ValueError as exc:
            raise InputError(args.resource_name, "view", args.view, str(exc), "'schema.view' or 'view'") from None

    def _refresh(self, conn: psycopg.Connection, args: CaggArgs, view: TableName) -> caggs.RefreshPolicy | None:
        from ..reconcile import caggs
        from ..reconcile.declared import Spec, Target, windows
        spec = args.refresh_policy
        if spec is None:
            return None
        target = Target(table=view, time_column="bucket", column_type="timestamptz", compression_enabled=None)
        given = {f: getattr(spec, f) for f in OFFSETS if getattr(spec, f) is not None}
        try:
            found = windows(conn, args.resource_name, target, {f: Spec(v, allow_zero=f == "end_offset")
                                                               for f, v in given.items()})
        except InputError as exc:
            exc.field = f"refresh_policy.{exc.field}"
            raise InputError(exc.resource, exc.field, exc.value, exc.problem, exc.accepted) from None
        return caggs.RefreshPolicy(start_offset=found.get("start_offset"), end_offset=found.get("end_offset"),
                                   schedule_interval=found["schedule_interval"])

    def _declared(self, conn: psycopg.Connection, info: Any, args: CaggArgs) -> caggs.CaggState:
        from ..reconcile import caggs
        view = self._view(args)
        refresh = self._refresh(conn, args, view)
        try:
            definition, source, time_column = caggs.probe(conn, info, view, args.query, refresh)
        except caggs.ProbeFailed as exc:
            if any(not self._exists(conn, s) for s in args.sources):
                raise Deferred() from None  # its source is created by this program first: checked at create
            raise InputError(args.resource_name, exc.field, args.query if exc.field == "query" else
                             args.refresh_policy.model_dump() if args.refresh_policy else None,
                             f"TimescaleDB refuses it: {exc}",
                             "a SELECT with time_bucket over a hypertable or a continuous aggregate, GROUP BY "
                             "the bucket; a refresh window covering at least two buckets") from None
        declared = caggs.CaggState(view=view.qualified, definition=definition,
                                   materialized_only=args.materialized_only, compress=args.compress,
                                   refresh=refresh, source=source, time_column=time_column)
        self._check_retention(conn, args, declared)
        return declared

    @staticmethod
    def _exists(conn: psycopg.Connection, table: str) -> bool:
        name = TableName.parse(table)
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema "
                           "= %s AND hypertable_name = %s) OR EXISTS (SELECT 1 FROM "
                           "timescaledb_information.continuous_aggregates WHERE view_schema = %s AND view_name = %s)",
                           (name.schema, name.name, name.schema, name.name)).fetchone()
        return bool(row and row[0])

    def _check_retention(self, conn: psycopg.Connection, args: CaggArgs, declared: caggs.CaggState) -> None:
        """The source's retention (as this program declares it, else as the database runs it) must not drop
        raw rows the refresh policy still refreshes over."""
        from ..reconcile import caggs, jobs
        from ..reconcile.declared import Spec, Target, windows
        if declared.refresh is None or declared.source is None:
            return
        source = TableName.parse(declared.source)
        peer = args.retention_peers.get(source.qualified)
        if peer is not None:
            try:
                target = Target(table=source, time_column="", column_type="timestamptz", compression_enabled=None)
                drop_after: Window | None = windows(conn, args.resource_name, target,
                                                    {"drop_after": Spec(peer, time_unit=True)})["drop_after"]
            except InputError:
                return  # the retention policy's own check reports its bad value
        else:
            found = jobs.read_jobs(conn, jobs.RETENTION, source)
            drop_after = found[0].window if found else None
        if drop_after is None:
            return
        problem = caggs.retention_overlap(args.resource_name, "refresh_policy.start_offset",
                                          args.refresh_policy.start_offset if args.refresh_policy else None,
                                          drop_after, declared.view, declared.refresh.start_offset, source.qualified)
        if problem:
            raise problem

    def _plan(self, conn: psycopg.Connection, info: Any, args: CaggArgs, props: dict[str, Any]) -> tuple[
            caggs.CaggState, caggs.CaggState | None, Claim | None, list[Any]]:
        """What up does, computed the same way at preview (check) and at apply."""
        from ..reconcile import caggs, jobs
        declared = self._declared(conn, info, args)
        view = TableName.parse(declared.view)
        actual = caggs.read(conn, view)
        claim = self.claim_for(conn, _view_object(view.qualified), f"continuous aggregate {view}",
                               actual is not None, props)
        cost, others, readers = None, (), ()
        if actual is not None and actual.definition != declared.definition:
            cost, readers = caggs.cost(conn, actual), caggs.dependents(conn, actual)
            others = tuple(j.job_id for kind in (jobs.COMPRESSION, jobs.RETENTION)
                           for j in jobs.read_jobs(conn, kind, view) if j.job_id is not None)
        ops = caggs.plan(declared, args.query, actual, with_data=args.with_data, allow_recreate=args.allow_recreate,
                         resource=args.resource_name, recreate_cost=cost, other_jobs=others, readers=readers)
        return declared, actual, claim, ops

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from .args.continuous_aggregate import CaggArgs
        args = CaggArgs.model_validate(news)
        with self.session(news) as (conn, info):
            declared, _actual, claim, ops = self._plan(conn, info, args, news)
        return {"view": declared.view, "definition": declared.definition, "source": declared.source,
                **args.model_dump(include={"materialized_only", "compress", "with_data", "allow_recreate",
                                           "drop_on_delete", "adopt"}),
                "refresh_value": _windows_key(declared.refresh),
                "planned_operations": described([*filter(None, [claim]), *ops])}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["view"])
        changes = changed_fields(olds, news, ["definition", "materialized_only", "compress", "refresh_value",
                                              "allow_recreate", "drop_on_delete", "dsn", "owner"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=True)

    # -- apply ------------------------------------------------------------------------------------
    def _apply(self, props: dict[str, Any]) -> tuple[caggs.CaggState, bool, list[str]]:
        from ..reconcile import caggs
        from ..reconcile.locks import lock_table
        from .args.continuous_aggregate import CaggArgs
        args = CaggArgs.model_validate(props)
        view = self._view(args)
        with self.session(props) as (conn, info):
            with conn.transaction():
                lock_table(conn, view)
                declared, actual, claim, ops = self._plan(conn, info, args, props)
                if declared.refresh is not None and declared.source is not None:
                    # The source's retention job, read again under the source's lock: a RetentionPolicy's apply
                    # holds it while it adds one (and reads the aggregates under it only). View, then source; only
                    # a PolicyGuard takes two locks (name order), after its tables' resources in a program.
                    lock_table(conn, TableName.parse(declared.source))
                    self._check_retention(conn, args, declared)
                for op in ops:
                    if not isinstance(op, caggs.Refresh):
                        caggs.execute(op, conn, info)
                self.record_owner(conn, _view_object(view.qualified), props)
                if declared.refresh is not None:
                    self.record_owner(conn, _job_object(view.qualified), props)
            for op in ops:  # refresh_continuous_aggregate cannot run inside a transaction
                if isinstance(op, caggs.Refresh):
                    caggs.execute(op, conn, info)
            after = caggs.read(conn, view)
        assert after is not None, f"{view} is not a continuous aggregate after {described(ops)}"
        return after, actual is not None, described([*filter(None, [claim]), *ops])

    def _outs(self, props: dict[str, Any], state: caggs.CaggState, adopted: bool,
              operations: list[str] | None = None) -> dict[str, Any]:
        declared = props.get("refresh_policy") or {}
        refresh = None
        if state.refresh is not None:
            refresh = {"job_id": state.refresh.job_id}
            for field in OFFSETS:
                actual, given = getattr(state.refresh, field), declared.get(field)
                # The user's spelling while the database agrees with it; the database's otherwise.
                refresh[field] = None if actual is None else (
                    str(given) if given is not None and _same(actual, props, field) else actual.text)
        drop = bool(props.get("drop_on_delete"))
        job = state.refresh.job_id if state.refresh else None
        outs = {
            "view": state.view, "query": props.get("query"), "definition": state.definition,
            "materialized_only": state.materialized_only, "compress": state.compress,
            "with_data": bool(props.get("with_data")), "refresh_policy": refresh,
            "refresh_value": _windows_key(state.refresh), "refresh_job_id": job, "source": state.source,
            "allow_recreate": bool(props.get("allow_recreate")), "drop_on_delete": drop,
            "on_delete": (f"drops {state.view} and its materialized rows" if drop else
                          f"keeps {state.view} and its materialized rows; removes only its refresh policy"
                          + (f" (job {job})" if job else "")),
            "adopt": bool(props.get("adopt")), "adopted": adopted, "resource_name": props.get("resource_name"),
            "retention_peers": props.get("retention_peers") or {}, "sources": props.get("sources") or [],
            "owner": props.get("owner"), "planned_operations": props.get("planned_operations") or [],
            "last_operations": operations if operations is not None else props.get("last_operations") or [],
            "dsn": secret(props.get("dsn")),
        }
        return outs

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted, ops = self._apply(props)
        return CreateResult(state.view, self._outs(props, state, adopted, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _, ops = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted")), ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile import caggs
        view = TableName.parse(props.get("view") or id_)
        with self.session(props) as (conn, _info):
            state = caggs.read(conn, view)
        if state is None:
            return ReadResult(None, {})  # dropped by hand: the next up creates it again
        outs = self._outs(props, state, bool(props.get("adopted")))
        inputs = {k: outs[k] for k in ("view", "query", "definition", "source", "materialized_only", "compress",
                                       "with_data",
                                       "refresh_value", "allow_recreate", "drop_on_delete", "adopt",
                                       "resource_name", "retention_peers", "sources", "owner")}
        inputs["refresh_policy"] = {f: outs["refresh_policy"][f] for f in OFFSETS} if outs["refresh_policy"] else None
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, _id: str, props: dict[str, Any]) -> None:
        """Drops the view only with drop_on_delete; else removes only the refresh policy it owns."""
        from ..reconcile import caggs
        from ..reconcile.locks import lock_table
        view = TableName.parse(props["view"])
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, view)
            if not self.let_go(conn, _view_object(view.qualified), props):
                return  # another resource owns the aggregate now
            owns_job = self.let_go(conn, _job_object(view.qualified), props)
            actual = caggs.read(conn, view)
            if actual is None:
                return
            if props.get("drop_on_delete"):
                caggs.execute(caggs.DropCagg(view), conn, info)
            elif owns_job and actual.refresh is not None and actual.refresh.job_id is not None:
                caggs.execute(caggs.RemoveRefresh(view, actual.refresh.job_id), conn, info)


def _same(actual: Window, props: dict[str, Any], field: str) -> bool:
    """Whether the declared value (refresh_value: computed at check, or recorded by the last up) is what the
    database has for this field."""
    recorded = props.get("refresh_value")
    if not isinstance(recorded, list) or len(recorded) != 3:
        return False
    return recorded[OFFSETS.index(field)] == actual.key


def _mentions(query: str, table: str) -> bool:
    name = TableName.parse(table)
    pattern = rf'(?<![\w."])(?:"?{re.escape(name.schema)}"?\s*\.\s*)?"?{re.escape(name.name)}"?(?![\w"])'
    return re.search(pattern, query, re.IGNORECASE) is not None


def _program_sources(query: str, view: str) -> list[str]:
    """Hypertables and aggregates this program declares that the query reads (it waits for them)."""
    declared = registry.tables_with("Hypertable") + registry.tables_with(KIND)
    me = TableName.parse(view).qualified
    return sorted({t for t in declared if t != me and _mentions(query, t)})


def _retention_peers() -> dict[str, Any]:
    out = {}
    for table in registry.tables_with("RetentionPolicy"):
        decl = registry.declarations(table)
        if decl is not None:
            out[table] = decl.policies["RetentionPolicy"][2]
    return out


@typed_outputs
class ContinuousAggregate(Resource, module="timescale", name="ContinuousAggregate"):
    """A continuous aggregate (hierarchical when its query reads another one), with its refresh policy.

    Compression and retention policies take it as their `hypertable`.
    """

    view: pulumi.Output[str]
    query: pulumi.Output[str]
    definition: pulumi.Output[str]
    materialized_only: pulumi.Output[bool]
    compress: pulumi.Output[bool]
    refresh_policy: pulumi.Output[dict]
    refresh_job_id: pulumi.Output[int]
    source: pulumi.Output[str]
    on_delete: pulumi.Output[str]
    adopted: pulumi.Output[bool]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, view: str, query: str, *, materialized_only: bool = True,
                 compress: bool = False, with_data: bool = False, refresh_policy: dict[str, Any] | None = None,
                 allow_recreate: bool = False, drop_on_delete: bool = False, adopt: bool = False,
                 dsn: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        name = TableName.parse(view).qualified
        registry.declare_policy(KIND, resource_name, name, compress)
        registry.promise({name: {"time_column": "(its time_bucket column)", "column_type": "timestamptz",
                                 "continuous_aggregate": "true", "compress": str(compress).lower()}}, self)
        props = {
            "view": name, "query": query, "materialized_only": materialized_only, "compress": compress,
            "with_data": with_data, "refresh_policy": refresh_policy, "allow_recreate": allow_recreate,
            "drop_on_delete": drop_on_delete, "adopt": adopt, "dsn": secret_input(dsn),
            "refresh_job_id": None, "source": None, "on_delete": None, "adopted": None,
            "planned_operations": None, "last_operations": None,
            INTERNAL: internals(KIND, resource_name, retention_peers=later_input(_retention_peers),
                                sources=later_input(lambda: _program_sources(query, name))),
        }
        deps = later(lambda: [r for t in _program_sources(query, name)
                              for r in [registry.policy_resource("Hypertable", t), registry.promised(t)] if r])
        super().__init__(ContinuousAggregateProvider(), resource_name, props,
                         resource_options(opts, depends_on=deps, delete_before_replace=True))
        untracked(self)
        registry.attach(KIND, name, self)
        self.declared_table = name


def __getattr__(name: str) -> Any:
    """CaggArgs and RefreshPolicyArgs moved to args/continuous_aggregate.py (imported by the provider only); the old
    import path still works."""
    if name in ("CaggArgs", "RefreshPolicyArgs", "DEFAULT_REFRESH_SCHEDULE"):
        from .args import continuous_aggregate
        return getattr(continuous_aggregate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
