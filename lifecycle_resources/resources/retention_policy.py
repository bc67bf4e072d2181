"""RetentionPolicy: drop chunks older than `drop_after`, as a TimescaleDB job.

Changes in place (alter_job, same job id): drop_after and every schedule field.
Replaces (delete first, since TimescaleDB allows one per hypertable): hypertable.
Delete: removes the job, so nothing is dropped any more; no data is touched.
archive=ArchiveStore(...): no TimescaleDB job; the declaration names the store and `lifecycle run` archives each
expiring chunk there, verifies it, then drops it (reconcile/archive_retention.py). In place, both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ..errors import InputError
from .output_types import typed_outputs
from .policy import PolicyProvider, PolicyResource, registration_scope

if TYPE_CHECKING:
    import psycopg
    from .args.policy import PolicyArgs
    from ..reconcile import catalog, jobs
    from ..reconcile.declared import Target
    from ..reconcile.intervals import Window


class RetentionPolicyProvider(PolicyProvider):
    kind = "RetentionPolicy"
    proc_name = "policy_retention"
    peer_key = "compress_after"
    internal_keys = PolicyProvider.internal_keys | {"archive_declared"}
    recorded_inputs = ("archive_declared",)

    def _check_peers(self, conn: psycopg.Connection, args: PolicyArgs, target: Target,
                     window: Window) -> list[jobs.Notice]:
        from ..reconcile import caggs
        notices = super()._check_peers(conn, args, target, window)
        # Refused, not warned: dropping raw chunks inside a refresh window erases the aggregated buckets.
        for view, refresh in caggs.refreshed_over(conn, target.table):
            problem = caggs.retention_overlap(args.resource_name, self.window_key, args.window, window, view,
                                              refresh.start_offset, target.table.qualified)
            if problem:
                raise problem
        return notices

    def _declared(self, conn: psycopg.Connection, args: PolicyArgs) -> tuple[Target, jobs.JobState,
                                                                          list[jobs.Notice]]:
        from ..reconcile import caggs, catalog
        target, state, notices = super()._declared(conn, args)
        if args.archive is not None:
            if caggs.policy_target(conn, args.hypertable, args.peers) is not None:
                raise InputError(args.resource_name, "archive", args.archive,
                                 f"{target.table} is a continuous aggregate: only hypertables' chunks are archived",
                                 "no archive= on an aggregate's retention (archive its source hypertable)")
            # Integer time: the window counts back from integer_now, checked (set or declared) by the base class.
            if target.column_type not in catalog.TIME_TYPES and not target.integer_time:
                raise InputError(args.resource_name, "archive", args.archive,
                                 f"{target.table}'s time column {target.time_column} is {target.column_type}: "
                                 "archiving supports timestamptz, timestamp, date and integer (smallint, integer, "
                                 "bigint) time columns (not yet uuid time)", "no archive= on this table")
        return target, state, notices

    def _reads(self, conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], *,
               preview: bool) -> list[catalog.Read]:
        from ..reconcile import archive_retention
        project, stack, _ = registration_scope(props)
        store = archive_retention.store_read(conn, project, stack, args.resource_name, planning=True)
        return [*super()._reads(conn, args, props, preview=preview), *([store] if store is not None else [])]

    def _job_plan(self, conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], declared: jobs.JobState,
                  actual: list[jobs.JobState]) -> list[Any]:
        from ..reconcile import archive_retention
        project, stack, _ = registration_scope(props)
        if args.archive is not None:
            _require_store(conn, args, props, project, stack)
        was = archive_retention.registered_store(conn, project, stack, args.resource_name)
        return archive_retention.plan(declared, actual, args.archive, was)

    def _jobs_expected(self, args: PolicyArgs) -> int:
        return 0 if args.archive is not None else 1

    def _parameters(self, args: PolicyArgs) -> dict[str, Any]:
        return {"archive_store": args.archive} if args.archive is not None else {}

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """The preview states what the next run drops; over max_drop_fraction, the change is refused."""
        from ..reconcile import impact
        from .impact_preview import stated_impact
        limit = _fraction(news)
        checked = super().validate(olds, news)
        found = stated_impact(self, olds, news, checked, impact.retention_impact)
        if found is None:
            return checked
        if limit is not None and found.fraction > limit:
            raise InputError(news.get("resource_name"), "drop_after", news.get("drop_after"),
                             f"refused by max_drop_fraction={limit}: {found.drop_text().removeprefix('impact: ')}",
                             f"a drop_after that drops at most {100 * limit:g}% of the table, or a higher "
                             "max_drop_fraction")
        return {**checked, "planned_operations": [*checked["planned_operations"], found.drop_text()]}


@typed_outputs
class RetentionPolicy(PolicyResource, module="timescale", name="RetentionPolicy"):
    """Drops a hypertable's chunks once they are older than `drop_after`."""

    provider_class = RetentionPolicyProvider
    window_key = "drop_after"
    depends_on_kinds = ("Hypertable",)
    drop_after: pulumi.Output[str]

    def __init__(self, resource_name: str, hypertable: Any, drop_after: pulumi.Input[str | int], *,
                 schedule_interval: str | None = None, max_runtime: str | None = None,
                 max_retries: int | None = None, retry_period: str | None = None, scheduled: bool | None = None,
                 paused: bool | None = None, fixed_schedule: bool | None = None, timezone: str | None = None,
                 initial_start: str | None = None, allow_drop_before_compress: bool = False, adopt: bool = False,
                 dsn: pulumi.Input[str] | None = None,
                 config_source: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None,
                 max_drop_fraction: float | None = None, archive: Any = None) -> None:
        """max_drop_fraction: refuse (at preview) a new or changed drop_after whose next run would drop more than
        this share of the table's rows (estimated from statistics), e.g. 0.5.
        archive: an ArchiveStore (or the name of one its stack registered): no TimescaleDB retention job; `lifecycle
        run` archives each expiring chunk to it, verifies it, and only then drops it."""
        store = getattr(archive, "declared_store", archive)
        if archive is not None and isinstance(archive, pulumi.Resource):
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[archive]))
        self._declare(resource_name, hypertable, drop_after,
                      {"schedule_interval": schedule_interval, "max_runtime": max_runtime,
                       "max_retries": max_retries, "retry_period": retry_period, "scheduled": scheduled,
                       "paused": paused, "fixed_schedule": fixed_schedule, "timezone": timezone,
                       "initial_start": initial_start,
                       "allow_drop_before_compress": allow_drop_before_compress,
                       "max_drop_fraction": max_drop_fraction, "archive": store,
                       "archive_declared": isinstance(archive, pulumi.Resource)},
                      dsn, opts, config_source, adopt)


def _require_store(conn: psycopg.Connection, args: PolicyArgs, props: dict[str, Any], project: str,
                   stack: str) -> None:
    """The store must be registered for this stack; one the program declares is, once up creates it first."""
    from ..reconcile import archive_stores
    if not isinstance(args.archive, str) or not args.archive:
        raise InputError(args.resource_name, "archive", args.archive, "not an archive store",
                         "an ArchiveStore resource, or the name of one registered by this stack")
    if props.get("archive_declared") and not archive_stores.installed(conn):
        return  # the LifecycleSchema and the store of this program are created before it, at up
    archive_stores.require_installed(conn, f"RetentionPolicy {args.resource_name}: archive={args.archive!r}")
    if archive_stores.read(conn, project, stack, args.archive) is None and not props.get("archive_declared"):
        raise InputError(args.resource_name, "archive", args.archive,
                         f"no archive store {args.archive!r} is registered by stack {project}/{stack}",
                         "an ArchiveStore resource of this program (archive=store), or the name of one it registered")


def _fraction(news: dict[str, Any]) -> float | None:
    value = news.get("max_drop_fraction")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputError(news.get("resource_name"), "max_drop_fraction", value, "not a fraction",
                         "a number from 0 to 1 (0.5: refuse a change that drops more than half the table)")
    return float(value)
