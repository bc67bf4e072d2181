"""The provider shared by CompressionPolicy and RetentionPolicy: a TimescaleDB job per hypertable,
converged in place with alter_job, adopted when it already exists, deleted on destroy."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError, LifecycleError
from ..identifiers import TableName
from .base import (INTERNAL, INTERNAL_KEYS, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .registry import depends_on_peers, peers_of, target_of

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql
    from ..reconcile import catalog, jobs
    from ..reconcile.declared import Target
    from ..reconcile.intervals import Window
    from ..reconcile.ownership import Claim, ManagedObject
    from .args.policy import PolicyArgs


class PolicyProvider(LifecycleProvider):
    proc_name: ClassVar[str]  # the policy's jobs.PolicyKind by its proc_name: reconcile.jobs loads on first use
    peer_key: ClassVar[str]  # the sibling policy's window key: drop_after for compression, and back
    internal_keys = INTERNAL_KEYS | {"duplicate_job_ids"}
    # Inputs of a kind that no database holds, recorded as sent (absent stays absent) so that a refresh can carry
    # them into the inputs it rebuilds (LifecycleProvider._carried).
    recorded_inputs: ClassVar[tuple[str, ...]] = ()

    @property
    def kind_spec(self) -> jobs.PolicyKind:
        from ..reconcile import jobs
        return jobs.KINDS[self.proc_name]

    @property
    def window_key(self) -> str:
        return self.kind_spec.window_key

    def _args(self, props: dict[str, Any]) -> PolicyArgs:
        from .args.policy import PolicyArgs  # the provider host's: the program never validates
        # Undeclared schedule fields arrive as None: PolicyArgs' defaults apply to them.
        data = {k: v for k, v in props.items() if v is not None}
        data["window"] = props.get(self.window_key)
        data.setdefault("schedule_interval", self.kind_spec.default_schedule)
        return PolicyArgs.model_validate(data)

    def _declared(self, conn: psycopg.Connection, args: PolicyArgs) -> tuple[Target, jobs.JobState,
                                                                          list[jobs.Notice]]:
        from ..reconcile import caggs, jobs
        from ..reconcile.declared import Spec, resolve_target, schedule_start, windows
        from ..reconcile.hypertables import read_extras
        name = args.resource_name
        # A continuous aggregate takes compression and retention policies like a hypertable does.
        target = (caggs.policy_target(conn, args.hypertable, args.peers)
                  or resolve_target(conn, name, "hypertable", args.hypertable, args.peers))
        if target.column_type == "uuid" and self.kind_spec is jobs.RETENTION:
            _refuse_uuid_retention_before_fix(conn, args, target)
        if target.integer_time and not args.peers.integer_now and read_extras(conn, target.table).integer_now is None:
            raise InputError(name, self.window_key, args.window,
                             f"{target.table} has integer time ({target.time_column}, {target.column_type}) and no "
                             "integer_now function, so TimescaleDB cannot tell how old a chunk is (it refuses the "
                             "policy)", "declare integer_now on its Hypertable: a function name, or "
                             "IntegerNow(function=..., sql=...)")
        w = windows(conn, name, target, {
            self.window_key: Spec(args.window, time_unit=True), "schedule_interval": Spec(args.schedule_interval),
            "max_runtime": Spec(args.max_runtime, allow_zero=True), "retry_period": Spec(args.retry_period)})
        initial_start = schedule_start(conn, name, args.initial_start, args.timezone)
        notices = self._check_peers(conn, args, target, w[self.window_key])
        return target, jobs.JobState(
            hypertable=target.table.qualified, window=w[self.window_key], schedule_interval=w["schedule_interval"],
            max_runtime=w["max_runtime"], max_retries=args.max_retries, retry_period=w["retry_period"],
            scheduled=args.scheduled, paused=args.paused, timezone=args.timezone, initial_start=initial_start,
            fixed_schedule=(initial_start is not None) if args.fixed_schedule is None else args.fixed_schedule
        ), notices

    def _check_peers(self, conn: psycopg.Connection, args: PolicyArgs, target: Target,
                     window: Window) -> list[jobs.Notice]:
        """The windows of the table's compression and retention policies, declared together: TimescaleDB accepts
        any pair, so a pair that compresses chunks only to drop them is a warning, silenced by the override."""
        from ..reconcile.declared import Spec, windows
        peer = getattr(args.peers, self.peer_key)
        if peer is None or args.allow_drop_before_compress:
            return []
        try:
            theirs = windows(conn, args.resource_name, target, {self.peer_key: Spec(peer, time_unit=True)})
        except InputError:
            return []  # the sibling policy's own check reports its bad value
        drop, compress = ((window, theirs[self.peer_key]) if self.window_key == "drop_after"
                          else (theirs[self.peer_key], window))
        conflict = window_conflict(args.resource_name, drop, compress)
        return [conflict] if conflict else []

    # -- check / diff -----------------------------------------------------------------------------
    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        args = self._args(news)
        with self.session(news) as (conn, _info):
            target, declared, _actual, claim, ops = self._plan(conn, args, news, preview=True)
        # The schedule as read() reports it (the user's spelling, else the default): a refresh then gives back the
        # same inputs, and the engine need not rewrite its snapshot for this resource (see _settled).
        return {"hypertable": target.table.qualified, **self._values(declared), "duplicate_job_ids": [],
                "schedule_interval": args.schedule_interval, "max_runtime": args.max_runtime,
                "retry_period": args.retry_period, "planned_operations": described([*filter(None, [claim]), *ops])}

    def _plan(self, conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], *, preview: bool) -> tuple[
            Target, jobs.JobState, list[jobs.JobState], Claim | None, list[jobs.JobOperation | jobs.Notice]]:
        """What up does, computed the same way at preview (check: `preview`) and at apply."""
        from ..reconcile import caggs, catalog, jobs
        catalog.bundle(conn, lambda: self._reads(conn, args, props, preview=preview))
        with caggs.aggregates_read_once():
            target, declared, notices = self._declared(conn, args)
        actual = jobs.read_jobs(conn, self.kind_spec, target.table)
        what = (f"job {actual[0].job_id} ({self.kind_spec.resource} on {target.table})" if actual
                else f"{self.kind_spec.resource} on {target.table}")
        claim = self.claim_for(conn, self._object(target.table), what, bool(actual), props)
        return target, declared, actual, claim, [*notices, *self._job_plan(conn, args, props, declared, actual)]

    def _reads(self, conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], *,
               preview: bool) -> list[catalog.Read]:
        """The reads a plan makes of a hypertable, in one statement (catalog.bundle): whether the name is an
        aggregate or read by one, the table, its jobs, the owner, and at check (`preview`) the dimension its
        impact needs."""
        from ..reconcile import caggs, catalog, impact, jobs, ownership
        try:
            table = TableName.parse(args.hypertable)
        except ValueError:
            return []  # refused by the target's own read
        reads = [caggs.near_read(table), catalog.snapshot_read(conn, table), jobs.jobs_read(self.kind_spec, table),
                 ownership.owner_read(conn, self._object(table))]
        if preview:
            reads.append(impact.dimension_read(table))  # the preview states the impact (stated_impact)
        else:
            reads.append(catalog.presence_read(conn, REGISTRY, REGISTRY_PROBE))  # register() asks it after the jobs
        return [r for r in reads if r is not None]

    def _job_plan(self, conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], declared: jobs.JobState,
                  actual: list[jobs.JobState]) -> list[Any]:
        """The operations on the table's jobs (RetentionPolicy with an archive: none may remain)."""
        from ..reconcile import jobs
        return list(jobs.plan(self.kind_spec, declared, actual))

    def _jobs_expected(self, args: PolicyArgs) -> int:
        return 1

    def _parameters(self, args: PolicyArgs) -> dict[str, Any]:
        """What the declaration records besides the window and schedule."""
        return {}

    def _object(self, table: TableName) -> ManagedObject:
        from ..reconcile.ownership import ManagedObject
        return ManagedObject(f"job:{self.kind_spec.proc_name}", table.qualified)

    @staticmethod
    def _values(state: jobs.JobState) -> dict[str, Any]:
        return {"window_value": state.window.key if state.window else None,
                "schedule_interval_value": state.schedule_interval.key, "max_runtime_value": state.max_runtime.key,
                "retry_period_value": state.retry_period.key, "max_retries": state.max_retries,
                "scheduled": state.scheduled, "paused": state.paused, "fixed_schedule": state.fixed_schedule,
                "timezone": state.timezone,
                "initial_start_value": state.initial_start.isoformat() if state.initial_start else None}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["hypertable"])
        changes = changed_fields(olds, news, ["window_value", "schedule_interval_value", "max_runtime_value",
                                              "retry_period_value", "max_retries", "scheduled",
                                              "paused", "fixed_schedule", "timezone", "initial_start_value",
                                              "duplicate_job_ids", "dsn", "owner", "archive"],
                                 same=_recorded_before_job_fields)
        return DiffResult(changes=bool(replaces or changes), replaces=replaces, delete_before_replace=True)

    # -- apply ------------------------------------------------------------------------------------
    def _apply(self, props: dict[str, Any]) -> tuple[jobs.JobState, bool, list[str]]:
        from ..reconcile import catalog, jobs, ownership
        from ..reconcile.locks import lock_table
        args = self._args(props)
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, TableName.parse(args.hypertable))
            target, declared, actual, claim, ops = self._plan(conn, args, props, preview=False)
            for op in ops:
                jobs.execute(op, conn, info)
            done: list[Any] = [*filter(None, [claim]), *ops]
            # The owner's record goes with the registration (one statement), which needs the job read back first;
            # without a lifecycle schema there is none, and it goes with the read-back instead.
            owned = ownership.claim_statement(conn, self._object(target.table), ownership.Owner.from_props(props))
            registry = _has_registry(conn)
            catalog.bundle(conn, [jobs.jobs_read(self.kind_spec, target.table)], None if registry else owned)
            after = jobs.read_jobs(conn, self.kind_spec, target.table)
            expected = self._jobs_expected(args)
            if len(after) != expected:  # raised inside the transaction: nothing above is kept
                raise LifecycleError(
                    f"{args.resource_name}: after {described(done) or 'no change'}, {target.table} has "
                    f"{len(after)} {self.kind_spec.resource} jobs ({[j.job_id for j in after]}), expected {expected}")
            job = after[0] if after else declared
            registered = register(conn, self.kind_spec, target.table, declared, job.job_id, props,
                                  self._parameters(args), owned if registry else None)
            if registered:
                done.append(jobs.Registered(self.kind_spec, target.table, registered))
        return self._presented(job, declared), bool(actual), described(done)

    @staticmethod
    def _presented(actual: jobs.JobState, declared: jobs.JobState | None) -> jobs.JobState:
        from ..reconcile import jobs
        from ..reconcile.declared import display
        update: dict[str, Any] = {}
        for field in ("window", *jobs.INTERVAL_FIELDS):
            shown = getattr(actual, field)
            if shown is not None:
                update[field] = replace(shown, text=display(getattr(declared, field) if declared else None, shown))
        for field in jobs.UNSET_MEANS_ANY:
            if declared is None or getattr(declared, field) is None:
                update[field] = None  # not managed: shown only when declared
        return actual.model_copy(update=update)

    def _outs(self, props: dict[str, Any], state: jobs.JobState, adopted: bool, duplicates: list[int],
              operations: list[str] | None = None) -> dict[str, Any]:
        outs = {
            "hypertable": state.hypertable,
            self.window_key: state.window.text if state.window else "",
            "schedule_interval": state.schedule_interval.text,
            "max_runtime": state.max_runtime.text,
            "retry_period": state.retry_period.text,
            "initial_start": props.get("initial_start") if state.initial_start else None,
            **self._values(state),
            "job_id": state.job_id,
            "config": state.config,
            "duplicate_job_ids": duplicates,
            "adopted": adopted,
            "adopt": bool(props.get("adopt")),
            "archive": props.get("archive"),
            "allow_drop_before_compress": bool(props.get("allow_drop_before_compress")),
            "resource_name": props.get("resource_name"),
            "peers": props.get("peers") or {},
            "config_source": props.get("config_source"),
            "registration": props.get("registration"),
            "owner": props.get("owner"),
            "planned_operations": props.get("planned_operations") or [],
            "dsn": secret(props.get("dsn")),
            **{key: props.get(key) for key in self.recorded_inputs},
        }
        if operations is not None:
            outs["last_operations"] = operations
        return outs

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        state, adopted, ops = self._apply(props)
        id_ = str(state.job_id) if state.job_id is not None else f"{self.kind_spec.word}:{state.hypertable}"
        return CreateResult(id_, self._outs(props, state, adopted, [], ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        state, _, ops = self._apply(news)
        return UpdateResult(self._outs(news, state, bool(olds.get("adopted")), [], ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile import jobs
        from .health_warnings import warn_unhealthy
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, _info):
            found = jobs.read_jobs(conn, self.kind_spec, table)
        declared = self._recorded(props)
        if props.get("archive") and declared is not None:
            # No job is declared: any job found is drift (duplicate_job_ids), removed by the next up.
            keep, duplicates = declared, [j.job_id for j in found if j.job_id is not None]
        elif not found:
            return ReadResult(None, {})  # removed by hand: the next up adds it again
        else:
            keep = next((j for j in found if str(j.job_id) in (id_, str(props.get("job_id")))), found[0])
            duplicates = [j.job_id for j in found if j is not keep and j.job_id is not None]
        state = self._presented(keep, declared)
        outs = self._outs(props, state, bool(props.get("adopted")), duplicates, props.get("last_operations"))
        inputs = {k: outs[k] for k in ("hypertable", self.window_key, "schedule_interval", "max_runtime",
                                       "retry_period", "window_value", "schedule_interval_value",
                                       "max_runtime_value", "retry_period_value", "max_retries", "scheduled",
                                       "paused", "fixed_schedule", "timezone", "initial_start",
                                       "initial_start_value", "duplicate_job_ids", "adopt",
                                       "allow_drop_before_compress", "resource_name", "peers",
                                       "config_source", "registration", "owner", "archive")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        warn_unhealthy(self, id_, props)  # refresh also says when this policy is failing or stuck
        return ReadResult(str(keep.job_id), outs, inputs)

    def _recorded(self, props: dict[str, Any]) -> jobs.JobState | None:
        """The declared state as recorded in the previous outputs (for keeping the user's spellings)."""
        from ..reconcile import jobs
        from ..reconcile.intervals import Window
        try:
            recorded = {f: Window.from_key(props[f"{f}_value"], props[f]) for f in jobs.INTERVAL_FIELDS}
            window = props["window_value"]
            return jobs.JobState(
                hypertable=props["hypertable"], max_retries=props["max_retries"], scheduled=props["scheduled"],
                window=None if window is None else Window.from_key(window, props[self.window_key]),
                paused=bool(props.get("paused")), fixed_schedule=bool(props.get("fixed_schedule")),
                timezone=props.get("timezone"), initial_start=props.get("initial_start_value"), **recorded)
        except (KeyError, TypeError, ValueError):
            return None

    def do_delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the policy job, unless another resource owns it now. Removing a policy never touches data."""
        from ..reconcile import jobs
        from ..reconcile.locks import lock_table
        table = TableName.parse(props["hypertable"])
        with self.session(props) as (conn, info), conn.transaction():
            lock_table(conn, table)
            unregister(conn, props)
            if not self.let_go(conn, self._object(table), props):
                return
            for job in jobs.read_jobs(conn, self.kind_spec, table):
                # The id is the job created first; archiving turned off later made another (outputs' job_id).
                if str(job.job_id) in (id_, str(props.get("job_id"))):
                    jobs.execute(jobs.DeleteJob(self.kind_spec, job.job_id, table), conn, info)


def _refuse_uuid_retention_before_fix(conn: psycopg.Connection, args: PolicyArgs, target: Target) -> None:
    """TimescaleDB 2.23 adds a retention policy on a uuid time column but then refuses every alter_job of it
    ('unsupported time type uuid'), so it could never be converged; 2.26 (tested) alters it."""
    from ..reconcile import catalog
    version = catalog.server_info(conn).version_tuple
    if version < (2, 26, 0):
        raise InputError(args.resource_name, "hypertable", args.hypertable,
                         f"{target.table} has a uuid time column ({target.time_column}); this server's TimescaleDB "
                         f"({'.'.join(map(str, version))}) cannot alter a retention policy on it (alter_job: "
                         "'unsupported time type uuid')", "TimescaleDB 2.26 or newer for a RetentionPolicy on a "
                         "uuid time column (CompressionPolicy works on 2.23)")


def _recorded_before_job_fields(field: str, old: Any, new: Any) -> bool:
    """States written before paused/fixed_schedule were outputs hold neither: their defaults are no change."""
    return field in ("paused", "fixed_schedule") and old is None and new is False


def registration_scope(props: dict[str, Any]) -> tuple[str, str, str | None]:
    """(project, stack, environment) of a policy's registration; states written before 005 carried
    {"stack": "<project>/<stack>", "environment": <stack>}."""
    reg = props.get("registration") or {}
    project, stack = reg.get("project"), reg.get("stack") or ""
    if project is None:
        project, _, rest = stack.partition("/") if "/" in stack else ("", "", stack)
        stack = rest
    return project or "", stack, reg.get("environment")


REGISTRY = "lifecycle policy registry"
REGISTRY_PROBE = ("SELECT to_regprocedure('lifecycle.register_lifecycle_policy(text,text,text,jsonb,integer,text,text,"
                  "text,boolean)') IS NOT NULL")


def _has_registry(conn: psycopg.Connection) -> bool:
    """The lifecycle schema (LifecycleSchema) with its declarations table (005) is installed. In an apply, asked by
    the plan's reads at the start of its transaction (_reads): a LifecycleSchema committing in between is then seen
    by the next apply, as if this one had run a moment earlier."""
    from ..reconcile import catalog
    def probe() -> bool:
        row = conn.execute(REGISTRY_PROBE).fetchone()
        return bool(row and row[0])
    # a policy's transaction never creates the lifecycle schema: LifecycleSchema's migrations do
    return catalog.present(conn, REGISTRY, probe, created_here=False)


def register(conn: psycopg.Connection, kind: jobs.PolicyKind, table: TableName, declared: jobs.JobState,
             job_id: int | None, props: dict[str, Any], extra: dict[str, Any] | None = None,
             owned: tuple[sql.Composed, tuple[Any, ...]] | None = None) -> str | None:
    """Record the declaration (no job is touched: the provider converged it) in the caller's transaction;
    its name when the declaration changed, None when unchanged or when the database has no lifecycle schema
    (refused when `extra` holds what only the runner acts on: without a registration nothing would).
    `owned`: the owner's INSERT (ownership.claim_statement), run in the same statement; without a lifecycle
    schema the caller records the owner itself (with its read-back, PolicyProvider._apply)."""
    from psycopg import sql
    from psycopg.types.json import Jsonb
    if not _has_registry(conn):
        if extra:
            raise LifecycleError(f"{props.get('resource_name')}: {', '.join(sorted(extra))} needs the lifecycle "
                                 "schema (declare LifecycleSchema in the stack): the runner acts on it from there")
        return None
    project, stack, environment = registration_scope(props)
    name = props.get("resource_name") or f"{kind.word}:{table.qualified}"
    parameters = {kind.window_key: declared.window.text if declared.window else None,
                  "schedule_interval": declared.schedule_interval.text, "scheduled": declared.scheduled, **(extra or {})}
    call = sql.SQL("SELECT lifecycle.register_lifecycle_policy(%s, %s, %s, %s, %s, %s, %s, %s, true)")
    params: tuple[Any, ...] = (name, table.qualified, kind.word, Jsonb(parameters), job_id, project, stack, environment)
    if owned is not None:
        # A data-modifying WITH runs exactly once, whether or not the SELECT reads it: the owner is recorded and
        # the declaration registered by one statement, in the order they always had.
        call = sql.SQL("WITH owned AS ({} RETURNING 1) {}").format(owned[0], call)
        params = (*owned[1], *params)
    row = conn.execute(call, params).fetchone()
    return name if row and row[0] else None


def unregister(conn: psycopg.Connection, props: dict[str, Any]) -> None:
    """Mark the declaration removed (its history keeps it), so the runner no longer runs it."""
    name = props.get("resource_name")
    if not name or not _has_registry(conn):
        return
    project, stack, _ = registration_scope(props)
    conn.execute("SELECT lifecycle.unregister_lifecycle_policy(%s, %s, %s)", (name, project, stack))


def window_conflict(resource: str | None, drop_after: Window, compress_after: Window) -> jobs.Notice | None:
    from ..reconcile import jobs
    if drop_after.span <= compress_after.span:
        return jobs.Notice(
            f"{resource}: drop_after ({drop_after}) is not longer than compress_after ({compress_after}) on the "
            "same hypertable: chunks would be compressed only to be dropped (TimescaleDB accepts it; set "
            "allow_drop_before_compress=True on the policy to say it is meant)")
    return None


class PolicyResource(Resource):
    """What CompressionPolicy and RetentionPolicy share: inputs, outputs, registration, options."""

    provider_class: ClassVar[type[PolicyProvider]]
    window_key: ClassVar[str]
    depends_on_kinds: ClassVar[tuple[str, ...]] = ("Hypertable",)

    hypertable: pulumi.Output[str]
    schedule_interval: pulumi.Output[str]
    max_runtime: pulumi.Output[str]
    max_retries: pulumi.Output[int]
    retry_period: pulumi.Output[str]
    scheduled: pulumi.Output[bool]
    paused: pulumi.Output[bool]
    fixed_schedule: pulumi.Output[bool]
    job_id: pulumi.Output[int]
    config: pulumi.Output[dict]
    adopted: pulumi.Output[bool]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def _declare(self, resource_name: str, hypertable: Any, window: Any, schedule: dict[str, Any], dsn: Any,
                 opts: pulumi.ResourceOptions | None, config_source: dict[str, str] | None,
                 adopt: bool = False) -> None:
        kind = self.__class__.__name__
        table = target_of(hypertable)
        registry.declare_policy(kind, resource_name, table, window)
        props = {
            "hypertable": table, self.window_key: window, **schedule, "adopt": adopt, "dsn": secret_input(dsn),
            "job_id": None, "config": None, "adopted": None, "planned_operations": None, "last_operations": None,
            INTERNAL: internals(kind, resource_name, peers=later_input(lambda: peers_of(table)),
                                config_source=config_source,
                                registration={"project": pulumi.get_project(), "stack": pulumi.get_stack(),
                                              "environment": pulumi.get_stack()}),
        }
        deps = later(lambda: depends_on_peers(table, *self.depends_on_kinds) + (
            [hypertable] if isinstance(hypertable, pulumi.Resource) else []))
        opts = resource_options(opts, depends_on=deps, delete_before_replace=True)
        super().__init__(self.provider_class(), resource_name, props, opts)
        untracked(self)
        registry.attach(kind, table, self)


def __getattr__(name: str) -> Any:
    """PolicyArgs moved to args/policy.py (imported by the provider only); the old import path still works."""
    if name == "PolicyArgs":
        from .args import policy
        return getattr(policy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
