"""The output types the Pulumi SDK reads from each resource class at every registration (resource_types): evaluated
once at import, not compiled from strings each time, and including those declared on a base class (the policies':
without a type the engine's float job_id reached the program as 1000.0)."""

from __future__ import annotations

import inspect

import pulumi
import pytest
from pulumi._types import resource_types

import lifecycle_resources

OPERATIONS = {"planned_operations": list, "last_operations": list}
POLICY = {"hypertable": str, "schedule_interval": str, "max_runtime": str, "max_retries": int, "retry_period": str,
          "scheduled": bool, "paused": bool, "fixed_schedule": bool, "job_id": int, "config": dict, "adopted": bool,
          **OPERATIONS}
EXPECTED = {
    "Hypertable": {"table": str, "time_column": str, "column_type": str, "chunk_interval": str, "integer_now": str,
                   "space_column": str, "number_partitions": int, "adopted": bool, **OPERATIONS},
    "CompressionSettings": {"hypertable": str, "segment_by": list, "order_by": list, "enabled": bool,
                            "adopted": bool, "on_delete": str, **OPERATIONS},
    "CompressionPolicy": {**POLICY, "compress_after": str},
    "RetentionPolicy": {**POLICY, "drop_after": str},
    "ReorderPolicy": {"hypertable": str, "index": str, "schedule_interval": str, "job_id": int, "adopted": bool,
                      **OPERATIONS},
    "ContinuousAggregate": {"view": str, "query": str, "definition": str, "materialized_only": bool,
                            "compress": bool, "refresh_policy": dict, "refresh_job_id": int, "source": str,
                            "on_delete": str, "adopted": bool, **OPERATIONS},
    "ArchiveStore": {"url": str, "endpoint_url": str, "region": str, "store_name": str, **OPERATIONS},
    "CleanupRule": {"table": str, "rule": str, "matches": int, "action": str, **OPERATIONS},
    "LifecycleSchema": {"applied": list, "pending": list, "last_applied": list, "schema": str},
    "PolicyGuard": {"policies": dict, "removed_job_ids": list, **OPERATIONS},
}


def test_output_types_cover_every_public_resource() -> None:
    public = {name for name in lifecycle_resources.__all__
              if isinstance(value := getattr(lifecycle_resources, name), type) and issubclass(value, pulumi.Resource)}
    assert public == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_types_annotations_are_evaluated(name: str) -> None:
    annotations = inspect.get_annotations(getattr(lifecycle_resources, name))
    assert annotations and {key: hint for key, hint in annotations.items() if isinstance(hint, str)} == {}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_types_sdk_reads_declared_types(name: str) -> None:
    assert resource_types(getattr(lifecycle_resources, name)) == EXPECTED[name]
