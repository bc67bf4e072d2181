"""Fixtures: a real TimescaleDB (TSDB_DSN, else the embedded server), one schema per test, and the real
Pulumi engine on throwaway stacks. Nothing here skips: a missing tool fails the run and says why."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.stack import PulumiStack, pulumi_bin_dir

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def embedded_server(state: Path) -> Iterator[str]:
    """A fresh in-memory embedded TimescaleDB on a free port, stopped on exit; its DSN."""
    from lifecycle_resources.db.embedded import server

    try:
        srv = server.start(data="memory://", port=_free_port(), state_dir=state)
    except Exception as exc:  # noqa: BLE001 - turn any start-up failure into a loud, explained failure
        pytest.fail(f"cannot start the embedded TimescaleDB ({exc}); run `make setup`, or set TSDB_DSN "
                    "to a TimescaleDB you own", pytrace=False)
    try:
        yield srv.dsn
    finally:
        server.stop(state_dir=state)


@pytest.fixture(scope="session")
def tsdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TSDB_DSN when given (any TimescaleDB 2.13+), else a fresh embedded TimescaleDB for this run."""
    given = os.environ.get("TSDB_DSN")
    if given:
        yield given
        return
    with embedded_server(tmp_path_factory.mktemp("embedded-db")) as dsn:
        yield dsn


@pytest.fixture
def schema(tsdb_dsn: str) -> Iterator[str]:
    """A schema of this test's own, dropped (with everything in it) afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(name)))


@pytest.fixture
def db(tsdb_dsn: str) -> Iterator[psycopg.Connection]:
    """A short-lived autocommit connection for a test's own queries (close it before the provider runs)."""
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        yield conn


def sql_run(dsn: str, statement: str, params: tuple | None = None) -> list[tuple]:
    """One statement on a connection of its own (the embedded server serves one connection at a time)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def pulumi_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pulumi_bin_dir()  # fail early and clearly when the engine is not set up
    return tmp_path_factory.mktemp("pulumi-home")


@pytest.fixture
def stack(tmp_path: Path, pulumi_home: Path, tsdb_dsn: str) -> Iterator[PulumiStack]:
    s = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn=tsdb_dsn)
    yield s
    s.cleanup()


@pytest.fixture(scope="session")
def lifecycle_schema(tsdb_dsn: str) -> None:
    """The lifecycle schema, migrated once per run through the project's own migration runner."""
    from lifecycle_resources.db import migrations

    with psycopg.connect(tsdb_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle:schema'))")
        planned = migrations.plan(migrations.load(), migrations.applied(conn))
        assert planned.problems == [], planned.problems
        migrations.apply(conn, planned.pending)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say per kind what ran, so a CI log shows the end-to-end tests (real pulumi) were not skipped."""
    kinds = {"e2e": "end-to-end (real pulumi + TimescaleDB)", "integration": "integration (real TimescaleDB)"}
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome in ("passed", "failed") and getattr(report, "when", "call") != "call":
                continue  # a test's setup and teardown reports are not tests
            kind = next((label for mark, label in kinds.items() if mark in report.keywords), "unit")
            counts.setdefault(kind, {}).setdefault(outcome, 0)
            counts[kind][outcome] += 1
    terminalreporter.write_sep("-", "by kind")
    for kind in ("unit", *kinds.values()):
        got = counts.get(kind, {})
        terminalreporter.write_line(f"{kind}: " + " · ".join(f"{o} {got.get(o, 0)}" for o in
                                                               ("passed", "failed", "skipped", "error")))
