"""What each `pulumi` command's two Python processes import from us. The program (the language host) only
declares resources: it needs neither the database driver nor pydantic (the args models are validated by the
providers) nor reconcile/, db/ or runner/. The dynamic-provider
host unpickles one provider class by reference and then imports what the called provider uses, and no more.
(No timing here: README "Start-up: what each pulumi command imports" has the figures.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lifecycle_resources

RESOURCES = sorted(n for n in lifecycle_resources.__all__ if not n.endswith("Provider") and n != "DataLifecycleManager")
PROVIDERS = sorted(n for n in lifecycle_resources.__all__ if n.endswith("Provider"))
# The program's imports: pulumi, every resource class and the typed stack config helpers (__main__.py's).
PROGRAM = ("import pulumi\n"
           f"from lifecycle_resources import {', '.join(RESOURCES)}\n"
           "from lifecycle_resources.resources.stack_config import (declare_bookkeeping, declare_tables, load_settings,"
           " parse_settings)")


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


# LifecycleSchema reads its migration files in the program (db.migration_files: no driver, no pydantic).
PROGRAM_MAY_IMPORT = {"lifecycle_resources.db", "lifecycle_resources.db.migration_files"}


def provider_side(modules: set[str]) -> list[str]:
    """The driver, pydantic, and our modules that only a provider (or the runner) uses."""
    return sorted(m for m in modules if m.split(".")[0] in ("psycopg", "pydantic", "pydantic_core") or (
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


def test_startup_program_imports_neither_pydantic_nor_driver() -> None:
    """pulumi, every resource class and the stack config helpers: the program pays for neither pydantic nor psycopg
    (90-120 ms of every `pulumi` command's program process when the policies' modules imported pydantic)."""
    modules = imported_by(PROGRAM)
    assert sorted(m for m in modules if m.split(".")[0] in ("pydantic", "psycopg")) == []
    assert provider_side(modules) == []


# The SDK's mocks (no engine): each resource's outputs are its inputs.
MOCKS = """
import pulumi

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return f"{args.name}-id", args.inputs
    def call(self, args):
        return {}, None
"""

# One resource of each kind, declared as a program does (__main__.py's shapes), under the SDK's mocks.
DECLARE_ONE_OF_EACH = PROGRAM + MOCKS + """
pulumi.runtime.set_mocks(Mocks(), preview=True)

@pulumi.runtime.test
def program():
    settings = parse_settings({"tables": {"stream_data": {
        "time_column": "ts", "chunk_interval": "1 day",
        "compression": {"after": "7 days", "segment_by": ["symbol"], "order_by": ["ts DESC"]},
        "retention": {"drop_after": "30 days"}}}})
    PolicyGuard("guard")
    schema = LifecycleSchema("schema")
    cold = ArchiveStore("cold", url="file:///tmp/lifecycle-archive")
    tables = declare_tables(settings, archive={"public.stream_data": cold})
    declare_bookkeeping(settings)
    # (an IntegerNow's dict input would come back from these mocks where the output is a function name)
    ticks = Hypertable("ticks", table="public.ticks", time_column="n", chunk_interval=1000,
                       integer_now="public.ticks_now")
    CompressionSettings("ticks-compression", ticks, segment_by=["symbol"])
    CompressionPolicy("ticks-compress", ticks, compress_after=100)
    RetentionPolicy("ticks-retention", ticks, drop_after=1000)
    ReorderPolicy("ticks-reorder", ticks, index="ticks_n_idx")
    ohlcv = ContinuousAggregate("ohlcv", view="public.ohlcv", query="SELECT 1", compress=True,
                                refresh_policy={"start_offset": "2 days", "end_offset": "1 minute",
                                                "schedule_interval": "5 minutes"})
    CleanupRule("bad-ticks", table="public.ticks", invalid={"price": "finite_positive"})
    return pulumi.Output.all(schema.urn, ohlcv.urn, tables["public.stream_data"]["chunk_interval"])

program()
"""


def test_startup_program_declaring_every_kind_imports_neither_pydantic_nor_driver() -> None:
    """Declaring resources (and the stack config's tables) validates nothing in the program: the providers do."""
    modules = imported_by(DECLARE_ONE_OF_EACH)
    assert "lifecycle_resources.resources.cleanup_rule" in modules  # the program above did run
    assert sorted(m for m in modules if m.split(".")[0] in ("pydantic", "psycopg")) == []
    assert provider_side(modules) == []


def test_startup_program_of_this_repo_run_imports_neither_pydantic_nor_driver() -> None:
    """__main__.py itself, run with Pulumi.dev.yaml's config under the SDK's mocks: load_settings, declare_tables,
    declare_bookkeeping and every resource it declares."""
    root = Path(__file__).resolve().parent.parent
    modules = imported_by(MOCKS + f"""
import json, runpy
import yaml

config = yaml.safe_load(open({str(root / "Pulumi.dev.yaml")!r}))["config"]
pulumi.runtime.set_all_config({{k: json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in config.items()}})
pulumi.runtime.set_mocks(Mocks(), project="timescale-lifecycle", stack="dev", preview=True)

@pulumi.runtime.test
def program():
    runpy.run_path({str(root / "__main__.py")!r})
    return pulumi.Output.from_input(None)

program()
""")
    assert "lifecycle_resources.resources.cleanup_rule" in modules  # the program ran to its end
    assert sorted(m for m in modules if m.split(".")[0] in ("pydantic", "psycopg")) == []
    assert provider_side(modules) == []


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
