"""Fixtures: a real TimescaleDB (TSDB_DSN, else the server LIFECYCLE_TEST_SERVER names: `embedded`, the
default, or `native`), one schema per test, and the real Pulumi engine on throwaway stacks. Nothing here
skips: a missing tool fails the run and says why. A test that only means something on one server carries
`@pytest.mark.native_only(reason)` / `@pytest.mark.embedded_only(reason)` and is deselected on the other."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
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
def fresh_server(state: Path) -> Iterator[str]:
    """A fresh database server (a test's or module's own), stopped on exit; its DSN. Of the kind under test;
    with only TSDB_DSN given, embedded: it needs nothing installed beside the server the user gave."""
    if os.environ.get("LIFECYCLE_TEST_SERVER", "embedded") == "native":
        with native_server() as dsn:
            yield dsn
    else:
        with in_memory_embedded_server(state) as dsn:
            yield dsn


# The old name: tests that ask for a database of their own get one of the server under test.
embedded_server = fresh_server


@contextmanager
def in_memory_embedded_server(state: Path) -> Iterator[str]:
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


SERVERS = ("embedded", "native")


def server_under_test() -> str:
    """`embedded` or `native`: LIFECYCLE_TEST_SERVER, else native for a TSDB_DSN (a real server), else embedded."""
    kind = os.environ.get("LIFECYCLE_TEST_SERVER") or ("native" if os.environ.get("TSDB_DSN") else "embedded")
    if kind not in SERVERS:
        raise pytest.UsageError(f"LIFECYCLE_TEST_SERVER={kind!r}: expected one of {', '.join(SERVERS)}")
    return kind


@contextmanager
def native_cluster(*, scheduler: bool = False) -> Iterator[tuple[Path, str]]:
    """A fresh native PostgreSQL + TimescaleDB cluster on a free port, removed on exit; its state dir and DSN.

    TimescaleDB's scheduler is paused in its database unless `scheduler`: on a real server it runs a new
    policy job at once, so a test could not say what `CALL run_job` or `lifecycle run` did (the embedded
    server has no scheduler). Tests of the scheduler itself ask for it. Its directory is under the system
    temp dir: as root the server runs as `postgres`, which cannot traverse pytest's 0700 temp directories."""
    from lifecycle_resources.db import native

    state = Path(tempfile.mkdtemp(prefix="lifecycle-native-"))
    os.chmod(state, 0o711)
    try:
        try:
            srv = native.start(state_dir=state)
        except Exception as exc:  # noqa: BLE001 - a loud, explained failure instead of a traceback
            pytest.fail(f"cannot start the native TimescaleDB ({exc}); run `make native` (as root it builds "
                        "TimescaleDB 2.26.0 from ../shared/vendor) or install TimescaleDB for PostgreSQL 15",
                        pytrace=False)
        if not scheduler:
            sql_run(srv.dsn, "SELECT _timescaledb_functions.stop_background_workers()")
        yield state, srv.dsn
    finally:
        native.destroy(state)
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def native_server() -> Iterator[str]:
    with native_cluster() as (_, dsn):
        yield dsn


@pytest.fixture(scope="session")
def tsdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TSDB_DSN when given (any TimescaleDB 2.23+), else a fresh server of the kind under test for this run."""
    given = os.environ.get("TSDB_DSN")
    if given:
        yield given
        return
    with fresh_server(tmp_path_factory.mktemp("server")) as dsn:
        yield dsn


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "native_only(reason): meaningful only on a native server (deselected on "
                                       "the embedded one)")
    config.addinivalue_line("markers", "embedded_only(reason): specific to the embedded server (deselected on "
                                       "a native one)")
    config.addinivalue_line("markers", "server_independent(reason): what it tests does not depend on the server "
                                       "(packaging, the engine, bin/pulumi): run once, with the native server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (never skip) the tests specific to the other server; each such marker must say why."""
    other = {"embedded": "native_only", "native": "embedded_only"}[server_under_test()]
    keep, drop = [], []
    for item in items:
        for name in ("native_only", "embedded_only", "server_independent"):
            mark = item.get_closest_marker(name)
            if mark is not None and not (mark.args or mark.kwargs.get("reason")):
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} needs a reason")
        # A module named for one server tests that server itself (tests/test_native_*.py, test_embedded_*.py).
        own = item.path.name.startswith(f"test_{other.removesuffix('_only')}_")
        once_elsewhere = server_under_test() != "native" and item.get_closest_marker("server_independent")
        (drop if own or once_elsewhere or item.get_closest_marker(other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
    terminalreporter.write_sep("-", f"by kind (server under test: {server_under_test()})")
    for kind in ("unit", *kinds.values()):
        got = counts.get(kind, {})
        terminalreporter.write_line(f"{kind}: " + " · ".join(f"{o} {got.get(o, 0)}" for o in
                                                               ("passed", "failed", "skipped", "error")))
