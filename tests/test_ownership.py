"""Ownership decisions and the folding of internals, without a database (the e2e tests drive them for real)."""

from __future__ import annotations

import pytest

from lifecycle_resources.errors import InputError
from lifecycle_resources.reconcile.ownership import ManagedObject, Owner, decide
from lifecycle_resources.resources.base import INTERNAL, described, unfold
from lifecycle_resources.resources.retention_policy import RetentionPolicyProvider

JOB = ManagedObject("job:policy_retention", "s.t")
WHAT = "job 1002 (RetentionPolicy on s.t)"
ME = Owner(project="p", stack="prod", resource_type="RetentionPolicy", resource_name="r-new")


def owner(stack: str = "prod", name: str = "r-old") -> Owner:
    return Owner(project="p", stack=stack, resource_type="RetentionPolicy", resource_name=name)


@pytest.mark.parametrize("exists, previous, adopt, said", [
    (True, None, False, "adopt job 1002 (RetentionPolicy on s.t) (made outside Pulumi)"),
    (True, owner(), False, "take over job 1002 (RetentionPolicy on s.t) from RetentionPolicy r-old (renamed in this stack)"),
    (True, owner("dev"), True, "take over job 1002 (RetentionPolicy on s.t) from RetentionPolicy r-old of stack p/dev"),
    (False, None, False, None),       # created by this resource: nothing to show
    (True, ME, False, None),          # already ours
])
def test_ownership_decide(exists: bool, previous: Owner | None, adopt: bool, said: str | None) -> None:
    claim = decide(JOB, WHAT, exists, previous, ME, adopt, "r-new")
    assert (claim.describe() if claim else None) == said


def test_ownership_other_stack_refused_names_owner() -> None:
    with pytest.raises(InputError) as err:
        decide(JOB, WHAT, True, owner("dev"), ME, False, "r-new")
    assert "is owned by RetentionPolicy r-old of stack p/dev" in str(err.value) and "adopt=True" in str(err.value)


def test_ownership_internals_fold_under_one_hidden_key() -> None:
    p = RetentionPolicyProvider()
    flat = {"hypertable": "s.t", "drop_after": "30 days", "window_value": 1, "resource_name": "r", "peers": {},
            "duplicate_job_ids": [], "owner": ME.model_dump(), "planned_operations": []}
    folded = p.fold(flat)
    assert folded is not None
    assert set(folded) == {"hypertable", "drop_after", "planned_operations", INTERNAL}
    assert unfold(folded) == flat


def test_ownership_destructive_operations_flagged() -> None:
    from lifecycle_resources.identifiers import TableName
    from lifecycle_resources.reconcile import jobs

    table = TableName.parse("s.t")
    assert described([jobs.DeleteJob(jobs.RETENTION, 7, table)]) == ["DESTRUCTIVE: delete job 7 (RetentionPolicy on s.t)"]
