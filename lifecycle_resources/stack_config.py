"""Typed stack configuration: what a `Pulumi.<env>.yaml` declares for each table, validated at preview."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .identifiers import TableName

NAMESPACE = "lifecycle"


class CompressionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after: str | int
    segment_by: list[str] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    schedule_interval: str | None = None


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_after: str | int
    schedule_interval: str | None = None


class TableSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_column: str = Field(default="ts", min_length=1)
    chunk_interval: str | int = "1 day"
    compression: CompressionConfig | None = None
    retention: RetentionConfig | None = None


class StackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: dict[str, TableSettings] = Field(default_factory=dict)

    def qualified_tables(self) -> dict[str, TableSettings]:
        return {TableName.parse(name).qualified: settings for name, settings in self.tables.items()}


class ConfigError(ValueError):
    """A stack config value that cannot be used, named by its full key."""


def parse_settings(raw: dict[str, Any]) -> StackSettings:
    """Validate the `lifecycle:*` keys (without the namespace); errors name the full config key."""
    try:
        settings = StackSettings.model_validate(raw)
        settings.qualified_tables()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ":".join([NAMESPACE, ".".join(str(p) for p in err["loc"])])
            lines.append(f"config {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("; ".join(lines)) from None
    except ValueError as exc:
        raise ConfigError(f"config {NAMESPACE}:tables: {exc}") from None
    return settings


def load_settings() -> StackSettings:
    """Read and validate the stack's `lifecycle:*` configuration inside a Pulumi program."""
    import pulumi

    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    tables = config.get_object("tables")
    if tables is not None:
        raw["tables"] = tables
    return parse_settings(raw)
