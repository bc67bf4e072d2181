"""The registry as the policy providers write it: declarations scoped by project and stack, recorded once per
apply (the provider converges the job, registering touches no job), removed on delete, and what the runner
makes of them."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_resources import RetentionPolicyProvider
from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import sql_run
from tests.test_policy_providers import checked, hypertable, make

pytestmark = pytest.mark.integration


def declared(dsn: str, name: str) -> dict[str | None, tuple[Any, ...]]:
    return {r[0]: r[1:] for r in sql_run(
        dsn, "SELECT stack, hypertable, enabled, parameters ->> 'drop_after' FROM lifecycle.lifecycle_policy_status "
             "WHERE policy_name = %s", (name,))}


def test_registry_two_stacks_share_a_policy_name(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """Two stacks (same project, same resource name) on one database: two declarations; deleting one leaves
    the other live."""
    name = f"metrics-retention-{schema}"
    table = hypertable(tsdb_dsn, schema)
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".other (LIKE "{schema}".ticks)')
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))",
            (f'"{schema}".other',))
    p = make(RetentionPolicyProvider, tsdb_dsn)
    dev = p.create(checked(p, {}, {"hypertable": table, "drop_after": "30 days", "resource_name": name,
                                   "registration": {"project": "shop", "stack": "dev", "environment": "dev"}}))
    prod = p.create(checked(p, {}, {"hypertable": f"{schema}.other", "drop_after": "40 days", "resource_name": name,
                                    "registration": {"project": "shop", "stack": "prod", "environment": "prod"}}))
    assert declared(tsdb_dsn, name) == {"shop/dev": (table, True, "30 days"),
                                        "shop/prod": (f"{schema}.other", True, "40 days")}
    manager = DataLifecycleManager(tsdb_dsn)
    with pytest.raises(LifecycleError, match=r"declared by several stacks \(shop/dev, shop/prod\)"):
        manager.run(policy=name, dry_run=True)
    [run] = manager.run(policy=name, stack="prod", dry_run=True)
    assert (run.hypertable, run.status) == (f"{schema}.other", "dry_run")

    p.delete(dev.id, dev.outs)
    assert declared(tsdb_dsn, name) == {"shop/dev": (table, False, "30 days"),
                                        "shop/prod": (f"{schema}.other", True, "40 days")}
    [run] = manager.run(policy=name, dry_run=True)  # only one live declaration: no stack needed
    assert run.hypertable == f"{schema}.other"
    p.delete(prod.id, prod.outs)


def test_registry_states_written_before_the_scope_split(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """A state from before 005 carries {"stack": "<project>/<stack>"}: the same declaration key."""
    name = f"old-state-{schema}"
    table = hypertable(tsdb_dsn, schema)
    p = make(RetentionPolicyProvider, tsdb_dsn)
    created = p.create(checked(p, {}, {"hypertable": table, "drop_after": "30 days", "resource_name": name,
                                       "registration": {"stack": "shop/dev", "environment": "dev"}}))
    assert declared(tsdb_dsn, name) == {"shop/dev": (table, True, "30 days")}
    p.delete(created.id, created.outs)
    assert declared(tsdb_dsn, name) == {"shop/dev": (table, False, "30 days")}


def test_registry_unscheduled_policy_stays_due(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """scheduled=False hands the job to the runner: the policy is live and due, and the job stays unscheduled.
    (Before 005 register() re-ran create_lifecycle_retention_policy, which reconciled the job a second time and
    recorded its `scheduled` as the declaration's `enabled`: the policy vanished from due().)"""
    name = f"runner-only-{schema}"
    table = hypertable(tsdb_dsn, schema)
    p = make(RetentionPolicyProvider, tsdb_dsn)
    created = p.create(checked(p, {}, {"hypertable": table, "drop_after": "30 days", "scheduled": False,
                                       "resource_name": name,
                                       "registration": {"project": "shop", "stack": schema, "environment": schema}}))
    assert [s.policy_name for s in DataLifecycleManager(tsdb_dsn).due(schema)] == [name]
    assert sql_run(tsdb_dsn, "SELECT scheduled FROM timescaledb_information.jobs WHERE job_id = %s",
                   (created.outs["job_id"],)) == [(False,)]
    p.delete(created.id, created.outs)
