"""Timescale Lifecycle: the data lifecycle of TimescaleDB tables as Pulumi dynamic resources."""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): the dynamic-provider host unpickles one provider class by reference and the
# program names a few resources; neither should pay for importing every resource kind and the runner.
_EXPORTS = {
    "ArchiveStore": "resources.archive_store", "ArchiveStoreProvider": "resources.archive_store",
    "CleanupRule": "resources.cleanup_rule", "CleanupRuleProvider": "resources.cleanup_rule",
    "CompressionPolicy": "resources.compression_policy", "CompressionPolicyProvider": "resources.compression_policy",
    "CompressionSettings": "resources.compression_settings",
    "CompressionSettingsProvider": "resources.compression_settings",
    "ContinuousAggregate": "resources.continuous_aggregate",
    "ContinuousAggregateProvider": "resources.continuous_aggregate",
    "DataLifecycleManager": "runner.manager",
    "Hypertable": "resources.hypertable", "HypertableProvider": "resources.hypertable",
    "IntegerNow": "resources.hypertable",
    "LifecycleSchema": "resources.lifecycle_schema", "LifecycleSchemaProvider": "resources.lifecycle_schema",
    "PolicyGuard": "resources.policy_guard", "PolicyGuardProvider": "resources.policy_guard",
    "ReorderPolicy": "resources.reorder_policy", "ReorderPolicyProvider": "resources.reorder_policy",
    "RetentionPolicy": "resources.retention_policy", "RetentionPolicyProvider": "resources.retention_policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
