"""RetentionPolicy: drop chunks older than `drop_after`, as a TimescaleDB job.

Changes in place (alter_job, same job id): drop_after and every schedule field.
Replaces (delete first, since TimescaleDB allows one per hypertable): hypertable.
Delete: removes the job, so nothing is dropped any more; no data is touched.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pulumi

from ..reconcile import caggs, jobs
from ..reconcile.declared import Target
from ..reconcile.intervals import Window
from .policy import PolicyArgs, PolicyProvider, PolicyResource


class RetentionPolicyProvider(PolicyProvider):
    kind = "RetentionPolicy"
    kind_spec = jobs.RETENTION
    peer_key = "compress_after"

    def _check_peers(self, conn: psycopg.Connection, args: PolicyArgs, target: Target, window: Window) -> None:
        super()._check_peers(conn, args, target, window)
        # Refused, not warned: dropping raw chunks inside a refresh window erases the aggregated buckets.
        for view, refresh in caggs.refreshed_over(conn, target.table):
            problem = caggs.retention_overlap(args.resource_name, self.window_key, args.window, window, view,
                                              refresh.start_offset, target.table.qualified)
            if problem:
                raise problem


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
                 config_source: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        self._declare(resource_name, hypertable, drop_after,
                      {"schedule_interval": schedule_interval, "max_runtime": max_runtime,
                       "max_retries": max_retries, "retry_period": retry_period, "scheduled": scheduled,
                       "paused": paused, "fixed_schedule": fixed_schedule, "timezone": timezone,
                       "initial_start": initial_start,
                       "allow_drop_before_compress": allow_drop_before_compress},
                      dsn, opts, config_source, adopt)
