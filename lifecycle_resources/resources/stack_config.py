"""Typed stack configuration: what a `Pulumi.<env>.yaml` declares for each table, validated at preview."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..identifiers import TableName

NAMESPACE = "lifecycle"

# Plain frozen dataclasses checked by hand, not pydantic models: the program validates its stack config itself and
# imports pydantic for nothing else (the providers validate the resources' inputs, in the provider host).


@dataclass(frozen=True)
class CompressionConfig:
    after: str | int
    segment_by: list[str] = field(default_factory=list)
    order_by: list[str] = field(default_factory=list)
    schedule_interval: str | None = None


@dataclass(frozen=True)
class RetentionConfig:
    drop_after: str | int
    schedule_interval: str | None = None


@dataclass(frozen=True)
class TableSettings:
    time_column: str = "ts"
    chunk_interval: str | int = "1 day"
    compression: CompressionConfig | None = None
    retention: RetentionConfig | None = None


@dataclass(frozen=True)
class BookkeepingSettings:
    """The lifecycle schema's own tables: hypertables like any other, with their own windows."""

    chunk_interval: str = "1 day"
    compress_after: str = "7 days"
    drop_after: str = "90 days"


@dataclass(frozen=True)
class StackSettings:
    dsn: str | None = None  # a secret; read by the providers, listed here so it is a known key
    tables: dict[str, TableSettings] = field(default_factory=dict)
    bookkeeping: BookkeepingSettings = field(default_factory=BookkeepingSettings)

    def qualified_tables(self) -> dict[str, TableSettings]:
        return {TableName.parse(name).qualified: settings for name, settings in self.tables.items()}


class ConfigError(ValueError):
    """A stack config value that cannot be used, named by its full key."""


# What each value accepts: a check, and what it says it accepts.
_Kind = tuple[Callable[[Any], bool], str]
_TEXT: _Kind = (lambda v: isinstance(v, str), "a string")
_NAME: _Kind = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_INTERVAL: _Kind = (lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
                    "an interval such as '7 days', or an integer (integer time)")
_OPTIONAL_TEXT: _Kind = (lambda v: v is None or isinstance(v, str), "a string")
_TEXT_LIST: _Kind = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")
_MAPPING: _Kind = (lambda v: isinstance(v, dict), "a mapping")

_TABLE_KEYS = {"time_column": _NAME, "chunk_interval": _INTERVAL, "compression": _MAPPING, "retention": _MAPPING}
_COMPRESSION_KEYS = {"after": _INTERVAL, "segment_by": _TEXT_LIST, "order_by": _TEXT_LIST,
                     "schedule_interval": _OPTIONAL_TEXT}
_RETENTION_KEYS = {"drop_after": _INTERVAL, "schedule_interval": _OPTIONAL_TEXT}
_BOOKKEEPING_KEYS = {"chunk_interval": _TEXT, "compress_after": _TEXT, "drop_after": _TEXT}
_TOP_KEYS = {"dsn": _OPTIONAL_TEXT, "tables": _MAPPING, "bookkeeping": _MAPPING}


def _key(*path: str) -> str:
    return ":".join([NAMESPACE, ".".join(path)])


def _checked(raw: dict[str, Any], path: tuple[str, ...], kinds: dict[str, _Kind], required: tuple[str, ...],
             errors: list[str]) -> dict[str, Any]:
    """The keys of `raw` that are known and hold what they accept; every other key, wrong value or missing required
    key is appended to `errors`, named by its full config key."""
    good = {}
    for name, value in raw.items():
        kind = kinds.get(name)
        if kind is None:
            errors.append(f"config {_key(*path, str(name))}: not a known key (got {value!r}); accepted keys: "
                          f"{', '.join(kinds)}")
        elif not kind[0](value):
            errors.append(f"config {_key(*path, name)}: not {kind[1]} (got {value!r})")
        else:
            good[name] = value
    for name in required:
        if name not in raw:
            errors.append(f"config {_key(*path, name)}: missing: {kinds[name][1]} is required")
    return good


def _table(name: str, raw: dict[str, Any], errors: list[str]) -> TableSettings | None:
    where = ("tables", name)
    values = _checked(raw, where, _TABLE_KEYS, (), errors)
    if "compression" in values:
        found = _checked(values["compression"], (*where, "compression"), _COMPRESSION_KEYS, ("after",), errors)
        values["compression"] = CompressionConfig(**found) if "after" in found else None
    if "retention" in values:
        found = _checked(values["retention"], (*where, "retention"), _RETENTION_KEYS, ("drop_after",), errors)
        values["retention"] = RetentionConfig(**found) if "drop_after" in found else None
    return TableSettings(**values)


def parse_settings(raw: dict[str, Any]) -> StackSettings:
    """Validate the `lifecycle:*` keys (without the namespace); errors name the full config key."""
    errors: list[str] = []
    values = _checked(raw, (), _TOP_KEYS, (), errors)
    tables = {}
    for name, table in values.get("tables", {}).items():
        if not isinstance(table, dict):
            errors.append(f"config {_key('tables', str(name))}: not a mapping of {', '.join(_TABLE_KEYS)} "
                          f"(got {table!r})")
            continue
        tables[name] = _table(name, table, errors)
    bookkeeping = BookkeepingSettings(**_checked(values.get("bookkeeping", {}), ("bookkeeping",), _BOOKKEEPING_KEYS,
                                                 (), errors))
    if errors:
        raise ConfigError("; ".join(errors))
    settings = StackSettings(dsn=values.get("dsn"), tables=tables, bookkeeping=bookkeeping)
    try:
        settings.qualified_tables()
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
