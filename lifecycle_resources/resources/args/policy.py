"""The declared inputs of CompressionPolicy and RetentionPolicy, validated by their providers (in the provider
host): a Pulumi program that declares policies never imports this module, nor pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...reconcile.declared import Peers


class PolicyArgs(BaseModel):
    """Declared inputs of a policy; `window` is compress_after or drop_after."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    hypertable: str
    window: str | int
    schedule_interval: str
    max_runtime: str = "0"
    max_retries: int = Field(default=-1, ge=-1)
    retry_period: str = "1 hour"
    scheduled: bool = True
    paused: bool = False                 # next_start => 'infinity' while True
    fixed_schedule: bool | None = None   # None: as add_*_policy gives (fixed only with an initial_start)
    timezone: str | None = None          # None: not managed (alter_job cannot clear it)
    initial_start: str | None = None     # None: not managed
    allow_drop_before_compress: bool = False  # silences the window warning: dropping what was compressed is meant
    adopt: bool = False
    archive: str | None = None           # RetentionPolicy: the ArchiveStore the runner archives to before a drop
    resource_name: str | None = None
    peers: Peers = Field(default_factory=Peers)
