"""The library as a platform engineer uses it: installed (not editable) into a Pulumi project of their own,
outside this checkout. And the language host as such a project meets it: a program in a `main:` directory
with a relative virtualenv, a stack without config, a SIGTERM, the engine's Cancel."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import embedded_server, sql_run
from tests.stack import REPO, PulumiStack

pytestmark = [pytest.mark.e2e, pytest.mark.server_independent(
    "an installed package and the language host behave the same whatever the server: run once")]

# What a built wheel would not carry either: caches, virtualenvs, the engine cache, tests.
NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", ".lifecycle", "node_modules", "build", "*.egg-info",
                                     "__pycache__", ".pytest_cache", "tests")

PROGRAM = """
import pulumi
import lifecycle_resources
from lifecycle_resources import (CompressionPolicy, CompressionSettings, Hypertable, LifecycleSchema,
                                 RetentionPolicy)

cfg = pulumi.Config("test")
schema = LifecycleSchema("lifecycle-schema")
ht = Hypertable("metrics", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
CompressionSettings("metrics-compression", ht, segment_by=["device"], order_by=["ts DESC"])
CompressionPolicy("metrics-compress", ht, compress_after="7 days")
RetentionPolicy("metrics-retention", ht, drop_after="30 days")
pulumi.export("library", lifecycle_resources.__file__)
pulumi.export("applied", schema.applied)
"""


def install_non_editable(venv: Path, scratch: Path) -> None:
    """`python -m venv` and `pip install <a copy of this checkout>`, as a platform engineer would."""
    source = scratch / "timescale-lifecycle"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", str(source)], capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, f"pip install of the package failed:\n{pip.stdout}\n{pip.stderr}"
    shutil.rmtree(source)  # nothing may still point into the source tree


@pytest.fixture
def own_dsn(tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: the program creates the `lifecycle` schema, which must not exist yet."""
    with embedded_server(tmp_path / "db") as dsn:
        yield dsn


def test_packaging_e2e_installed_library_migrates_and_manages_a_table(
        tmp_path: Path, pulumi_home: Path, own_dsn: str) -> None:
    sql_run(own_dsn, "CREATE TABLE public.metrics (ts timestamptz NOT NULL, device text NOT NULL, value float8)")
    project = tmp_path / "platform-project"
    install_non_editable(project / "venv", tmp_path)
    stack = PulumiStack(project, pulumi_home=pulumi_home, dsn=own_dsn, virtualenv="venv")
    try:
        stack.program(PROGRAM)
        stack.init({"test:table": "public.metrics"})
        stack.up()
        out = stack.outputs()
        assert Path(out["library"]).is_relative_to(project / "venv"), out["library"]
        shipped = sorted(p.name for p in (REPO / "lifecycle_resources" / "db" / "migrations_sql").glob("*.sql"))
        assert len(shipped) >= 3, shipped
        assert [m["name"] for m in out["applied"]] == shipped
        recorded = sql_run(own_dsn, "SELECT name FROM lifecycle.schema_migrations ORDER BY version")
        assert [r[0] for r in recorded] == shipped
        assert sql_run(own_dsn, "SELECT to_regclass('lifecycle.lifecycle_executions') IS NOT NULL") == [(True,)]

        assert sql_run(own_dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                                "WHERE hypertable_schema = 'public' AND hypertable_name = 'metrics'") == [(1,)]
        settings = sql_run(own_dsn, "SELECT attname, segmentby_column_index, orderby_column_index "
                                    "FROM timescaledb_information.compression_settings "
                                    "WHERE hypertable_name = 'metrics' ORDER BY attname")
        assert settings == [("device", 1, None), ("ts", None, 1)], settings
        jobs = sql_run(own_dsn, "SELECT proc_name FROM timescaledb_information.jobs "
                                "WHERE hypertable_name = 'metrics' ORDER BY proc_name")
        assert jobs == [("policy_compression",), ("policy_retention",)], jobs

        again = stack.up("--expect-no-changes")
        assert "unchanged" in again.out and "to update" not in again.out, again
    finally:
        stack.cleanup()


SUBDIR_PROGRAM = """
import pathlib
import pulumi
from lifecycle_resources import Hypertable
from naming import table_of  # a module beside the program: the program directory is on sys.path

# A path relative to the program directory, as a user writes it.
ht = Hypertable("events", table=table_of(pathlib.Path("table.txt").read_text().strip()), time_column="ts",
                chunk_interval="1 day")
pulumi.export("table", ht.table)
"""


def test_language_host_e2e_runs_program_from_main_subdirectory(
        tmp_path: Path, pulumi_home: Path, tsdb_dsn: str, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".events (ts timestamptz NOT NULL, v int)')
    project = tmp_path / "project"
    project.mkdir()
    (project / "venv").symlink_to(REPO / ".venv")  # `virtualenv: venv`, relative to the project root
    stack = PulumiStack(project, pulumi_home=pulumi_home, dsn=tsdb_dsn, main="src/", virtualenv="venv")
    try:
        stack.program(SUBDIR_PROGRAM)
        (stack.program_dir / "naming.py").write_text("def table_of(name):\n    return name\n")
        (stack.program_dir / "table.txt").write_text(f"{schema}.events\n")
        stack.init()
        stack.up()
        assert stack.outputs()["table"] == f"{schema}.events"
        assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.hypertables "
                                 "WHERE hypertable_schema = %s", (schema,)) == [(1,)]
        assert stack.preview("--expect-no-changes").code == 0
    finally:
        stack.cleanup()


SLEEPER = """
import os
import pathlib
import signal
import sys
import time

here = pathlib.Path(os.environ["SIGNAL_TEST_DIR"])

def stopped(signum, _frame):
    (here / "signal").write_text(str(signum))
    sys.exit(1)

signal.signal(signal.SIGTERM, stopped)
signal.signal(signal.SIGINT, stopped)
(here / "pids").write_text(f"{os.getpid()} {os.getppid()}")
time.sleep(120)
"""


def test_language_host_e2e_runs_stack_without_config(tmp_path: Path, pulumi_home: Path) -> None:
    stack = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn="unused")
    stack.program("import pulumi\npulumi.export('answer', 42)\n")
    stack.run("stack", "init")
    stack.created = True
    try:
        stack.up()
        assert stack.outputs() == {"answer": 42}
    finally:
        stack.cleanup()


def _wait_for(path: Path, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.2)
    return None


def test_language_host_e2e_forwards_sigterm_to_program(tmp_path: Path, pulumi_home: Path) -> None:
    """A SIGTERM to the language host (a CI runner stopping the job) reaches the program, as SIGTERM."""
    here = tmp_path / "signals"
    here.mkdir()
    stack = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn="host=unused")
    stack.env["SIGNAL_TEST_DIR"] = str(here)
    stack.program(SLEEPER)
    stack.init()
    proc = subprocess.Popen([stack.bin, "preview", "--stack", stack.stack, "--non-interactive"],
                            cwd=stack.workdir, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    program_pid = None
    try:
        pids = _wait_for(here / "pids", 120)
        assert pids, "the program never started"
        program_pid, host_pid = (int(p) for p in pids.split())
        host_cmd = Path(f"/proc/{host_pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert host_cmd.endswith("pulumi-language-python"), host_cmd
        os.kill(host_pid, signal.SIGTERM)
        got = _wait_for(here / "signal", 20)
        assert got == str(int(signal.SIGTERM)), f"the program got signal {got}, not SIGTERM"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if program_pid is not None and _wait_for(here / "signal", 0) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(program_pid, signal.SIGKILL)  # the program a host that dropped the signal left behind
        stack.cleanup()


def test_language_host_go_unit_tests_pass() -> None:
    """Cancel stops only the running program (the host serves the next Run); unsupported requests are refused.
    The engine does not call Cancel in a way a test can time, so the host's own Go tests check it."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to test the language host: install Go 1.26 (https://go.dev/dl)", pytrace=False)
    proc = subprocess.run([go, "test", "./cmd/pulumi-language-python/"], cwd=REPO / "tools" / "pulumi",
                          env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
