"""A PostgreSQL without TimescaleDB (Debian's postgresql): every resource refuses it at preview, clearly."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle_resources import HypertableProvider, RetentionPolicyProvider
from tests.conftest import REPO, _free_port, sql_run

pytestmark = [pytest.mark.integration, pytest.mark.server_independent(
    "it starts a PostgreSQL without TimescaleDB of its own: run once")]


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing: `make test` installs them as root "
                    "(apt-get install postgresql); otherwise install the postgresql package", pytrace=False)
    return found[-1]


@pytest.fixture(scope="module")
def plain_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL cluster of this module's own (initdb refuses root: run it as postgres)."""
    base = Path(tempfile.mkdtemp(prefix="lifecycle-plain-pg-"))  # outside pytest's 0700 root: postgres reads it
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        os.chmod(base, 0o755)
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{' '.join(args)} failed: {done.stderr or done.stdout}", pytrace=False)

    run(_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    run(_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        subprocess.run([*as_user, _bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_plain_postgres_refused_at_check_naming_resource(plain_dsn: str) -> None:
    sql_run(plain_dsn, "CREATE TABLE ticks (ts timestamptz NOT NULL, v int)")
    p = HypertableProvider()
    p._config_dsn = plain_dsn
    result = p.check({}, {"table": "public.ticks", "time_column": "ts", "chunk_interval": "1 day",
                          "resource_name": "ticks"})
    assert len(result.failures) == 1
    assert "Hypertable ticks" in result.failures[0].reason
    assert "TimescaleDB is not installed" in result.failures[0].reason
    assert "CREATE EXTENSION timescaledb" in result.failures[0].reason

    r = RetentionPolicyProvider()
    r._config_dsn = plain_dsn
    refused = r.check({}, {"hypertable": "public.ticks", "drop_after": "30 days", "resource_name": "ticks-retention"})
    assert len(refused.failures) == 1 and "TimescaleDB is not installed" in refused.failures[0].reason


def test_plain_postgres_lifecycle_status_says_why(plain_dsn: str) -> None:
    out = subprocess.run([sys.executable, "-m", "lifecycle_resources.cli", "status", "--dsn", plain_dsn],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1 and "TimescaleDB is not installed" in out.stderr
