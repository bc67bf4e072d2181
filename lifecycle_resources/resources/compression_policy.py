"""CompressionPolicy: compress chunks older than `compress_after`, as a TimescaleDB job.

Changes in place (alter_job, same job id): compress_after and every schedule field.
Replaces (delete first, since TimescaleDB allows one per hypertable): hypertable.
Delete: removes the job; compressed chunks stay compressed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ..errors import InputError
from .output_types import typed_outputs
from .policy import PolicyProvider, PolicyResource

if TYPE_CHECKING:
    import psycopg
    from .args.policy import PolicyArgs
    from ..reconcile import jobs
    from ..reconcile.declared import Target
    from ..reconcile.intervals import Window


class CompressionPolicyProvider(PolicyProvider):
    kind = "CompressionPolicy"
    proc_name = "policy_compression"
    peer_key = "drop_after"

    def _check_peers(self, conn: psycopg.Connection, args: PolicyArgs, target: Target,
                     window: Window) -> list[jobs.Notice]:
        if not target.compression_enabled and not args.peers.compression_settings:
            raise InputError(args.resource_name, "hypertable", args.hypertable,
                             "compression is not enabled on this hypertable",
                             "a hypertable with compression enabled: declare CompressionSettings for it")
        return super()._check_peers(conn, args, target, window)

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """The preview states how many chunks become due for compression, and their size."""
        from ..reconcile import impact
        from .impact_preview import stated_impact
        checked = super().validate(olds, news)
        found = stated_impact(self, olds, news, checked, impact.compression_impact)
        if found is None:
            return checked
        return {**checked, "planned_operations": [*checked["planned_operations"], found.compress_text()]}


@typed_outputs
class CompressionPolicy(PolicyResource, module="timescale", name="CompressionPolicy"):
    """Compresses a hypertable's chunks once they are older than `compress_after`."""

    provider_class = CompressionPolicyProvider
    window_key = "compress_after"
    depends_on_kinds = ("Hypertable", "CompressionSettings")
    compress_after: pulumi.Output[str]

    def __init__(self, resource_name: str, hypertable: Any, compress_after: pulumi.Input[str | int], *,
                 schedule_interval: str | None = None, max_runtime: str | None = None,
                 max_retries: int | None = None, retry_period: str | None = None, scheduled: bool | None = None,
                 paused: bool | None = None, fixed_schedule: bool | None = None, timezone: str | None = None,
                 initial_start: str | None = None, allow_drop_before_compress: bool = False, adopt: bool = False,
                 dsn: pulumi.Input[str] | None = None,
                 config_source: dict[str, str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        self._declare(resource_name, hypertable, compress_after,
                      {"schedule_interval": schedule_interval, "max_runtime": max_runtime,
                       "max_retries": max_retries, "retry_period": retry_period, "scheduled": scheduled,
                       "paused": paused, "fixed_schedule": fixed_schedule, "timezone": timezone,
                       "initial_start": initial_start,
                       "allow_drop_before_compress": allow_drop_before_compress},
                      dsn, opts, config_source, adopt)
