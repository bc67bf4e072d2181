"""Timescale Lifecycle: the data lifecycle of TimescaleDB tables as Pulumi dynamic resources."""

from .resources.archive_store import ArchiveStore, ArchiveStoreProvider
from .resources.cleanup_rule import CleanupRule, CleanupRuleProvider
from .resources.compression_policy import CompressionPolicy, CompressionPolicyProvider
from .resources.compression_settings import CompressionSettings, CompressionSettingsProvider
from .resources.continuous_aggregate import ContinuousAggregate, ContinuousAggregateProvider
from .resources.hypertable import Hypertable, HypertableProvider, IntegerNow
from .resources.lifecycle_schema import LifecycleSchema, LifecycleSchemaProvider
from .resources.policy_guard import PolicyGuard, PolicyGuardProvider
from .resources.reorder_policy import ReorderPolicy, ReorderPolicyProvider
from .resources.retention_policy import RetentionPolicy, RetentionPolicyProvider
from .runner.manager import DataLifecycleManager

__all__ = [
    "ArchiveStore", "ArchiveStoreProvider", "CleanupRule", "CleanupRuleProvider",
    "CompressionPolicy", "CompressionPolicyProvider", "CompressionSettings", "CompressionSettingsProvider",
    "ContinuousAggregate", "ContinuousAggregateProvider", "DataLifecycleManager", "Hypertable", "HypertableProvider",
    "IntegerNow", "LifecycleSchema", "LifecycleSchemaProvider", "PolicyGuard", "PolicyGuardProvider",
    "ReorderPolicy", "ReorderPolicyProvider", "RetentionPolicy", "RetentionPolicyProvider",
]
