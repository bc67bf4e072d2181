"""What each `pulumi` command's two Python processes import from us. The program (the language host) only
declares resources: it needs neither the database driver nor reconcile/, db/ or runner/. The dynamic-provider
host unpickles one provider class by reference and then imports what the called provider uses, and no more.
(No timing here: README "Start-up: what each pulumi command imports" has the figures.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import lifecycle_resources

RESOURCES = sorted(n for n in lifecycle_resources.__all__ if not n.endswith("Provider") and n != "DataLifecycleManager")
PROVIDERS = sorted(n for n in lifecycle_resources.__all__ if n.endswith("Provider"))
# reconcile.declared holds Peers, a field of the policies' args models; the rest of reconcile/ is the provider's.
PROGRAM_MAY_IMPORT = {"lifecycle_resources.reconcile", "lifecycle_resources.reconcile.declared"}


def fresh(statement: str, answer: str, env: dict[str, str] | None = None) -> Any:
    """`answer` (an expression), evaluated in a fresh interpreter after running `statement`."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps({answer}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def imported_by(statement: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    return set(fresh(statement, "sorted(sys.modules)", env))


def provider_side(modules: set[str]) -> list[str]:
    """The driver, and our modules that only a provider (or the runner) uses."""
    return sorted(m for m in modules if m.split(".")[0] == "psycopg" or (
        m.startswith(("lifecycle_resources.reconcile", "lifecycle_resources.db", "lifecycle_resources.runner"))
        and m not in PROGRAM_MAY_IMPORT))


@pytest.mark.parametrize("names", [*RESOURCES, ", ".join(RESOURCES)])
def test_startup_program_resource_classes_import_no_driver(names: str) -> None:
    assert provider_side(imported_by(f"import pulumi\nfrom lifecycle_resources import {names}")) == []


def test_startup_program_of_this_repo_imports_no_driver() -> None:
    """__main__.py's imports: the resources it declares and the typed stack config."""
    modules = imported_by("from lifecycle_resources import (ArchiveStore, CleanupRule, CompressionPolicy, "
                          "ContinuousAggregate, LifecycleSchema, PolicyGuard, RetentionPolicy)\n"
                          "from lifecycle_resources.resources.stack_config import declare_tables, load_settings")
    assert provider_side(modules) == []


def test_startup_program_builds_no_model_schema() -> None:
    """The args models are validated in the provider host, never in the program: their pydantic schemas are built
    on first use (defer_build), not when the program imports the resource classes."""
    built = fresh(f"from lifecycle_resources import {', '.join(RESOURCES)}\nimport pydantic",
                  "sorted(f'{m.__module__}.{m.__qualname__}' for mod in list(sys.modules.values()) "
                  "if mod.__name__.startswith('lifecycle_resources') for m in vars(mod).values() "
                  "if isinstance(m, type) and issubclass(m, pydantic.BaseModel) and m.__pydantic_complete__)")
    assert built == []


def test_startup_provider_classes_import_no_driver() -> None:
    """Unpickling a provider by reference imports its module: that alone connects to nothing."""
    assert provider_side(imported_by(f"from lifecycle_resources import {', '.join(PROVIDERS)}")) == []


def test_startup_unpickled_provider_imports_no_driver() -> None:
    from pulumi.dynamic.dynamic import serialize_provider

    from lifecycle_resources.resources.hypertable import HypertableProvider

    pickled = serialize_provider(HypertableProvider())
    modules = imported_by(f"import base64, dill\nprovider = dill.loads(base64.b64decode({pickled!r}))")
    assert "lifecycle_resources.resources.hypertable" in modules
    assert provider_side(modules) == []


def test_startup_policy_kinds_agree_with_reconcile() -> None:
    """The providers and the guard name their job kinds by label (reconcile.jobs is loaded on first use)."""
    from lifecycle_resources.reconcile import jobs
    from lifecycle_resources.resources.compression_policy import CompressionPolicyProvider
    from lifecycle_resources.resources.policy_guard import DECLARED
    from lifecycle_resources.resources.retention_policy import RetentionPolicyProvider

    assert CompressionPolicyProvider().kind_spec is jobs.COMPRESSION
    assert RetentionPolicyProvider().kind_spec is jobs.RETENTION
    assert {k: v for k, v in DECLARED.items() if k != "ReorderPolicy"} == {
        k.resource: k.proc_name for k in jobs.KINDS.values()}


@pytest.mark.integration
def test_startup_hypertable_check_imports_only_its_path(tsdb_dsn: str) -> None:
    """A Hypertable check in the provider host reads the catalog; it loads no other kind's planner, no impact
    estimate and nothing of the runner."""
    modules = imported_by(
        "from lifecycle_resources import HypertableProvider\n"
        "result = HypertableProvider().check({}, {'table': 'public.no_such_table_here', 'time_column': 'ts', "
        "'resource_name': 'ht'})\n"
        "assert result.failures and 'no_such_table_here' in result.failures[0].reason, result.failures",
        env={"TSDB_DSN": tsdb_dsn})
    assert "psycopg" in modules and "lifecycle_resources.reconcile.hypertables" in modules
    unused = ("caggs", "impact", "jobs", "reorder", "cleanup", "archive_stores", "archive_retention", "compression")
    assert sorted(m for m in modules if m.startswith("lifecycle_resources.runner") or
                  m.removeprefix("lifecycle_resources.reconcile.") in unused) == []
