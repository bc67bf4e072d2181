"""The declared inputs of ContinuousAggregate, validated by its provider (in the provider host): a Pulumi program
that declares aggregates never imports this module, nor pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_REFRESH_SCHEDULE = "1 hour"


class RefreshPolicyArgs(BaseModel):
    """add_continuous_aggregate_policy's arguments; an offset None is unbounded."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    start_offset: str | None
    end_offset: str | None
    schedule_interval: str = DEFAULT_REFRESH_SCHEDULE


class CaggArgs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    view: str
    query: str = Field(min_length=1)
    materialized_only: bool = True
    compress: bool = False
    with_data: bool = False
    refresh_policy: RefreshPolicyArgs | None = None
    allow_recreate: bool = False
    drop_on_delete: bool = False
    adopt: bool = False
    resource_name: str | None = None
    retention_peers: dict[str, str | int] = Field(default_factory=dict)  # source table -> declared drop_after
    sources: list[str] = Field(default_factory=list)  # tables of the program the query names
