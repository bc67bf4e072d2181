"""What the running Pulumi program declares, per table: lets resources refuse conflicts at preview
(two retention policies for one table) and see their siblings (compression vs retention windows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from ..identifiers import TableName


@dataclass
class TableDeclarations:
    settings: pulumi.Resource | None = None
    policies: dict[str, tuple[str, pulumi.Resource, Any]] = field(default_factory=dict)  # kind -> (name, res, value)


_TABLES: dict[str, TableDeclarations] = {}
# table -> (the resource that creates it, e.g. LifecycleSchema; its time column and type)
_PROMISED: dict[str, tuple[pulumi.Resource, dict[str, str]]] = {}


def _key(table: Any) -> str | None:
    if not isinstance(table, str):
        return None  # an Output: not known while the program runs
    try:
        return TableName.parse(table).qualified
    except ValueError:
        return None  # check() reports the bad name with the resource's own context


def declarations(table: Any) -> TableDeclarations | None:
    key = _key(table)
    return _TABLES.setdefault(key, TableDeclarations()) if key else None


def declare_policy(kind: str, resource_name: str, table: Any, value: Any) -> None:
    """Record a one-per-table policy; refuse a second one for the same table."""
    decl = declarations(table)
    if decl is None:
        return
    if kind in decl.policies:
        other = decl.policies[kind][0]
        raise pulumi.RunError(
            f"{kind} {resource_name}: hypertable={table!r} already has a {kind} declared by {other}; "
            f"TimescaleDB allows one {kind} per hypertable: declare it once")
    decl.policies[kind] = (resource_name, None, value)  # type: ignore[assignment]


def attach(kind: str, table: Any, resource: pulumi.Resource) -> None:
    decl = declarations(table)
    if decl is not None and kind in decl.policies:
        name, _, value = decl.policies[kind]
        decl.policies[kind] = (name, resource, value)


def policy_resource(kind: str, table: Any) -> pulumi.Resource | None:
    decl = declarations(table)
    return decl.policies[kind][1] if decl is not None and kind in decl.policies else None


def declared_kinds(table: str) -> list[str]:
    decl = declarations(table)
    return sorted(decl.policies) if decl else []


def promise(tables: dict[str, dict[str, str]], resource: pulumi.Resource) -> None:
    """`resource` creates these tables; each with {"time_column": .., "column_type": ..}."""
    for table, time in tables.items():
        _PROMISED[TableName.parse(table).qualified] = (resource, time)


def promised(table: Any) -> pulumi.Resource | None:
    key = _key(table)
    return _PROMISED[key][0] if key in _PROMISED else None


def promised_time(table: Any) -> dict[str, str] | None:
    key = _key(table)
    return _PROMISED[key][1] if key in _PROMISED else None


def reset() -> None:
    """Forget everything (tests that run several programs in one process)."""
    _TABLES.clear()
    _PROMISED.clear()


def tables_with(kind: str) -> list[str]:
    return sorted(t for t, d in _TABLES.items() if kind in d.policies)


def resources_of(table: str) -> list[pulumi.Resource]:
    decl = declarations(table)
    return [r for _, r, _ in decl.policies.values() if r is not None] if decl else []


HYPERTABLE = "Hypertable"
SETTINGS = "CompressionSettings"
INTEGER_NOW = "IntegerNow"  # a Hypertable's integer_now function (policies on integer time need one)
CHUNK_INTERVAL = "ChunkInterval"  # a Hypertable's declared chunk interval (the compression preview samples by it)


def peers_of(table: Any) -> dict[str, Any]:
    decl = declarations(table)
    if decl is None:
        return {}
    peers: dict[str, Any] = {}
    if promised(table):
        peers["promised"] = promised_time(table)
    if HYPERTABLE in decl.policies:
        peers["time_column"] = decl.policies[HYPERTABLE][2]
    if SETTINGS in decl.policies:
        peers["compression_settings"] = True
    if INTEGER_NOW in decl.policies:
        peers["integer_now"] = decl.policies[INTEGER_NOW][2]
    if CHUNK_INTERVAL in decl.policies:
        peers["chunk_interval"] = decl.policies[CHUNK_INTERVAL][2]
    for kind, key in (("CompressionPolicy", "compress_after"), ("RetentionPolicy", "drop_after")):
        if kind in decl.policies:
            peers[key] = decl.policies[kind][2]
    return peers


def depends_on_peers(table: Any, *kinds: str) -> list[pulumi.Resource]:
    out = [r for r in [promised(table)] if r is not None]
    for kind in kinds:
        res = policy_resource(kind, table)
        if res is not None:
            out.append(res)
    return out


def target_of(hypertable: Any) -> Any:
    """A table name from a string or from a Hypertable resource of this program."""
    declared = getattr(hypertable, "declared_table", None)
    return declared if declared is not None else hypertable
