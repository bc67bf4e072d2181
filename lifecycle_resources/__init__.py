"""Timescale Lifecycle: the data lifecycle of TimescaleDB tables as Pulumi dynamic resources."""

from .compression_policy import CompressionPolicy, CompressionPolicyProvider
from .compression_settings import CompressionSettings, CompressionSettingsProvider
from .hypertable import Hypertable, HypertableProvider
from .lifecycle_schema import LifecycleSchema, LifecycleSchemaProvider
from .policy_guard import PolicyGuard, PolicyGuardProvider
from .retention_policy import RetentionPolicy, RetentionPolicyProvider

__all__ = [
    "CompressionPolicy", "CompressionPolicyProvider", "CompressionSettings", "CompressionSettingsProvider",
    "Hypertable", "HypertableProvider", "LifecycleSchema", "LifecycleSchemaProvider", "PolicyGuard", "PolicyGuardProvider",
    "RetentionPolicy", "RetentionPolicyProvider",
]
