"""Typed stack configuration: what a `Pulumi.<env>.yaml` declares for each table, validated at preview."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..identifiers import TableName

NAMESPACE = "lifecycle"


class CompressionConfig(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    after: str | int
    segment_by: list[str] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    schedule_interval: str | None = None


class RetentionConfig(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    drop_after: str | int
    schedule_interval: str | None = None


class TableSettings(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    time_column: str = Field(default="ts", min_length=1)
    chunk_interval: str | int = "1 day"
    compression: CompressionConfig | None = None
    retention: RetentionConfig | None = None


class BookkeepingSettings(BaseModel):
    """The lifecycle schema's own tables: hypertables like any other, with their own windows."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    chunk_interval: str = "1 day"
    compress_after: str = "7 days"
    drop_after: str = "90 days"


class StackSettings(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    dsn: str | None = None  # a secret; read by the providers, listed here so it is a known key
    tables: dict[str, TableSettings] = Field(default_factory=dict)
    bookkeeping: BookkeepingSettings = Field(default_factory=BookkeepingSettings)

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


def source(table: str, *path: str) -> str:
    """The full config key a value of a table's settings came from."""
    return ":".join([NAMESPACE, ".".join(["tables", table, *path])])


def load_settings() -> StackSettings:
    """Read and validate the stack's `lifecycle:*` configuration inside a Pulumi program.

    Every key of the namespace is validated, so a misspelled top-level key fails too.
    """
    import json

    import pulumi
    from pulumi.runtime.config import CONFIG

    raw: dict[str, Any] = {}
    for key, value in CONFIG.get().items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE:
            continue
        if name == "dsn":
            continue  # secret: never parsed into the program's objects
        try:
            raw[name] = json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
        except json.JSONDecodeError:
            raw[name] = value
    try:
        return parse_settings(raw)
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None


def declare_tables(settings: StackSettings, archive: dict[str, Any] | None = None) -> dict[str, Any]:
    """Declare, for each configured table, its Hypertable and the compression and retention it configures
    (`archive`: per qualified table, the ArchiveStore its retention archives to before `lifecycle run` drops).

    Each resource records which stack config key each of its values came from, so a value refused at preview
    names the key to fix. Returns per table what the stack exports: chunk interval and windows.
    """
    from .compression_policy import CompressionPolicy
    from .compression_settings import CompressionSettings
    from .hypertable import Hypertable
    from .retention_policy import RetentionPolicy

    summary: dict[str, Any] = {}
    for table, spec in settings.qualified_tables().items():
        name = table.split(".", 1)[1]
        key = name if name in settings.tables else table
        ht = Hypertable(name, table=table, time_column=spec.time_column, chunk_interval=spec.chunk_interval,
                        config_source={"table": source(key), "time_column": source(key, "time_column"),
                                       "chunk_interval": source(key, "chunk_interval")})
        if spec.compression is not None:
            CompressionSettings(f"{name}-compression", ht, segment_by=spec.compression.segment_by,
                                order_by=spec.compression.order_by,
                                config_source={"segment_by": source(key, "compression", "segment_by"),
                                               "order_by": source(key, "compression", "order_by")})
            CompressionPolicy(f"{name}-compress", ht, compress_after=spec.compression.after,
                              schedule_interval=spec.compression.schedule_interval,
                              config_source={"compress_after": source(key, "compression", "after"),
                                             "schedule_interval": source(key, "compression", "schedule_interval"),
                                             "hypertable": source(key)})
        if spec.retention is not None:
            RetentionPolicy(f"{name}-retention", ht, drop_after=spec.retention.drop_after,
                            schedule_interval=spec.retention.schedule_interval, archive=(archive or {}).get(table),
                            config_source={"drop_after": source(key, "retention", "drop_after"),
                                           "schedule_interval": source(key, "retention", "schedule_interval")})
        summary[table] = {
            "chunk_interval": ht.chunk_interval,
            "compress_after": spec.compression.after if spec.compression else None,
            "drop_after": spec.retention.drop_after if spec.retention else None,
        }
    return summary


def declare_bookkeeping(settings: StackSettings) -> None:
    """The lifecycle schema's own tables, aged by `lifecycle:bookkeeping.*` like any other hypertable."""
    from .compression_policy import CompressionPolicy
    from .compression_settings import CompressionSettings
    from .hypertable import Hypertable
    from .lifecycle_schema import TABLES, TIME_COLUMNS
    from .retention_policy import RetentionPolicy

    keep = settings.bookkeeping
    for table in TABLES:
        name = table.split(".", 1)[1]
        ht = Hypertable(name, table=table, time_column=TIME_COLUMNS[table], chunk_interval=keep.chunk_interval,
                        config_source={"chunk_interval": f"{NAMESPACE}:bookkeeping.chunk_interval"})
        CompressionSettings(f"{name}-compression", ht)
        CompressionPolicy(f"{name}-compress", ht, compress_after=keep.compress_after,
                          config_source={"compress_after": f"{NAMESPACE}:bookkeeping.compress_after"})
        RetentionPolicy(f"{name}-retention", ht, drop_after=keep.drop_after,
                        config_source={"drop_after": f"{NAMESPACE}:bookkeeping.drop_after"})
