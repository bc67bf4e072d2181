"""The declared inputs of ReorderPolicy, validated by its provider (in the provider host): a Pulumi program that
declares reorder policies never imports this module, nor pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...reconcile.declared import Peers


class ReorderArgs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    hypertable: str
    index: str = Field(min_length=1)
    schedule_interval: str | None = None
    max_runtime: str | None = None
    max_retries: int | None = Field(default=None, ge=-1)
    retry_period: str | None = None
    scheduled: bool | None = None
    adopt: bool = False
    resource_name: str | None = None
    peers: Peers = Field(default_factory=Peers)
