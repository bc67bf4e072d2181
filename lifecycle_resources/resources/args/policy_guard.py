"""The declared inputs of PolicyGuard, validated by its provider (in the provider host)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GuardArgs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    policies: dict[str, list[str]]
    resource_name: str | None = None
