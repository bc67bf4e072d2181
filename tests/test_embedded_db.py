"""The embedded TimescaleDB (PGlite + TimescaleDB behind pglite-socket), run for real."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from lifecycle_resources.db.embedded import server as embedded
from lifecycle_resources.db.embedded.server import EmbeddedServer, EmbeddedServerError

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def connect(srv: EmbeddedServer, **kwargs) -> psycopg.Connection:
    return psycopg.connect(srv.dsn, connect_timeout=30, **kwargs)


def drop_socket(conn: psycopg.Connection, *, reset: bool = False) -> None:
    """Cut the connection under psycopg without a Terminate message, as a crash would.

    reset=False sends FIN (shutdown); reset=True sends RST (SO_LINGER 0). The fd number stays
    valid (pointing at /dev/null after a reset) so that psycopg's later close() cannot close a
    descriptor that another connection reused.
    """
    fd = conn.pgconn.socket
    dup = socket.socket(fileno=os.dup(fd))
    if reset:
        dup.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dup.close()
        placeholder = os.open(os.devnull, os.O_RDWR)
        os.dup2(placeholder, fd)  # closes the last reference to the socket: RST
        os.close(placeholder)
    else:
        dup.shutdown(socket.SHUT_RDWR)
        dup.close()


def assert_clean_session(srv: EmbeddedServer, table: str) -> None:
    with connect(srv) as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT to_regclass(%s)", [f"public.{table}"]).fetchone() == (None,)
        # (our own SELECT has opened a transaction now)
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert conn.execute("SHOW search_path").fetchone() == ("public",)
        # The departed client's prepared statement names are free again.
        for _ in range(3):
            conn.execute("SELECT %s::int", [1], prepare=True)


@pytest.fixture(scope="module")
def srv_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded-memory")


@pytest.fixture(scope="module")
def srv(srv_state_dir: Path):
    server = embedded.start(data="memory://", port=free_port(), state_dir=srv_state_dir)
    try:
        yield server
    finally:
        embedded.stop(srv_state_dir)


def test_timescaledb_is_loaded_with_the_tsl_license(srv: EmbeddedServer) -> None:
    with connect(srv, autocommit=True) as conn:
        (version,) = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        (license_,) = conn.execute("SHOW timescaledb.license").fetchone()
    assert version.startswith("2.")
    assert license_ == "timescale"
    assert srv.dsn == f"postgresql://postgres:postgres@127.0.0.1:{srv.port}/postgres?sslmode=disable"


def test_current_reports_the_running_server(
    srv: EmbeddedServer, srv_state_dir: Path, tmp_path: Path
) -> None:
    assert embedded.current(srv_state_dir) == srv
    assert embedded.current(tmp_path) is None  # nothing recorded there
    assert "READY port=" in (srv_state_dir / "db.log").read_text()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_dropped_client_mid_transaction_is_rolled_back(srv: EmbeddedServer, reset: bool) -> None:
    table = f"t_drop_{'rst' if reset else 'fin'}"
    a = connect(srv)
    a.execute(f"CREATE TABLE {table}(x int)")
    a.execute(f"INSERT INTO {table} VALUES (1)")
    for _ in range(6):  # psycopg prepares after 5 runs: leaves _pg3_0 in the session
        a.execute("SELECT %s::int", [1])
    assert a.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] >= 1
    assert a.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

    drop_socket(a, reset=reset)
    try:
        assert_clean_session(srv, table)
    finally:
        a.close()


def test_killed_client_process_mid_transaction_is_rolled_back(srv: EmbeddedServer) -> None:
    holder = textwrap.dedent(
        """
        import sys, time, psycopg
        conn = psycopg.connect(sys.argv[1])
        conn.execute("CREATE TABLE t(x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        print("in transaction", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, srv.dsn], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "in transaction"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
    assert_clean_session(srv, "t")


def test_queued_client_gets_a_clean_session_after_a_reset(
    srv: EmbeddedServer, srv_state_dir: Path
) -> None:
    # The stock server crashed on ECONNRESET and never served the queue after an error.
    a = connect(srv)
    a.execute("CREATE TABLE t_queue(x int)")
    result: dict[str, object] = {}

    def queued() -> None:
        try:
            with connect(srv) as b:
                result["status"] = b.info.transaction_status
                result["table"] = b.execute("SELECT to_regclass('public.t_queue')").fetchone()
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=queued)
    thread.start()
    time.sleep(0.3)  # let it queue behind a
    assert thread.is_alive(), result
    drop_socket(a, reset=True)
    thread.join(30)
    a.close()
    assert not thread.is_alive()
    assert result == {"status": psycopg.pq.TransactionStatus.IDLE, "table": (None,)}
    assert "ECONNRESET" in (srv_state_dir / "db.log").read_text()  # the error path was taken


def _msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _read_until(sock: socket.socket, kind: bytes) -> None:
    """Read backend messages up to the first of type `kind` (answers a password request)."""
    buf = b""
    while True:
        while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", buf[1:5])[0]:
            chunk = sock.recv(65536)
            assert chunk, "server closed the connection"
            buf += chunk
        size = struct.unpack("!i", buf[1:5])[0]
        tag, body, buf = buf[:1], buf[5 : 1 + size], buf[1 + size :]
        if tag == b"R" and struct.unpack("!i", body[:4])[0] in (3, 5):
            sock.sendall(_msg(b"p", b"postgres\0"))
        if tag == kind:
            return


def _raw_session(port: int) -> socket.socket:
    """A hand-made wire-protocol client (psycopg always sends Sync with Execute)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
        sock.sendall(struct.pack("!i", len(startup) + 4) + startup)
        _read_until(sock, b"Z")
    except BaseException:
        sock.close()
        raise
    return sock


def test_extended_protocol_without_sync_is_not_committed(srv: EmbeddedServer) -> None:
    with connect(srv, autocommit=True) as conn:
        conn.execute("CREATE TABLE t_nosync(x int)")
    with _raw_session(srv.port) as sock:
        sock.sendall(
            _msg(b"P", b"\0INSERT INTO t_nosync VALUES (1)\0" + struct.pack("!h", 0))
            + _msg(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
            + _msg(b"E", b"\0" + struct.pack("!i", 0))
            + _msg(b"H")  # Flush, no Sync: the implicit transaction is still open
        )
        _read_until(sock, b"C")  # CommandComplete: INSERT 0 1
    with connect(srv, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM t_nosync").fetchone() == (0,)
        conn.execute("DROP TABLE t_nosync")


def test_session_settings_do_not_leak_to_the_next_client(srv: EmbeddedServer) -> None:
    query = "SELECT name, setting FROM pg_settings ORDER BY name"
    with connect(srv, autocommit=True) as conn:
        before = conn.execute(query).fetchall()
        conn.execute("SET search_path TO pg_catalog, public")
        conn.execute("SET statement_timeout = 1234")
        conn.execute("CREATE TEMP TABLE scratch(x int)")
        conn.execute("SELECT pg_advisory_lock(42)")
    with connect(srv, autocommit=True) as conn:
        assert conn.execute(query).fetchall() == before
        assert conn.execute("SELECT to_regclass('pg_temp.scratch')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ).fetchone() == (0,)


def test_messages_larger_than_one_tcp_read_are_served(srv: EmbeddedServer) -> None:
    # The stock handler fed each TCP chunk to PGlite separately, which crashed it.
    values = ",".join(f"({i})" for i in range(40_000))  # ~300 KB query text
    with connect(srv, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM (VALUES {values}) v(x)").fetchone() == (40_000,)
        assert conn.execute("SELECT length(%s)", ["x" * 1_000_000]).fetchone() == (1_000_000,)


def test_copy_from_stdin_is_refused_without_killing_the_server(srv: EmbeddedServer) -> None:
    with connect(srv, autocommit=True) as conn:
        conn.execute("CREATE TABLE t_copy(x int)")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="COPY .* FROM STDIN"):
            with conn.cursor().copy("COPY t_copy FROM STDIN") as copy:
                copy.write_row((1,))
        with conn.cursor().copy("COPY (SELECT 1) TO STDOUT") as copy:
            assert list(copy.rows()) == [("1",)]
        conn.execute("DROP TABLE t_copy")
    with connect(srv, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_start_on_a_taken_port_names_the_port(tmp_path: Path) -> None:
    embedded.ensure_node_modules()
    node = shutil.which("node")
    assert node is not None
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(EmbeddedServerError, match=rf"\bport {port}\b"):
            embedded.start(data="memory://", port=port, state_dir=tmp_path)
        # server.mjs itself also refuses (exit 2) when the port is taken, e.g. in a race.
        proc = subprocess.run(
            [node, str(embedded.SERVER_SCRIPT), "--data", "memory://", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"port {port}" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "db.json").exists()


def test_file_data_dir_persists_across_stop_and_start(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = embedded.start(port=0, state_dir=state_dir)  # data: state_dir/db-data
    try:
        assert first.data == str((state_dir / "db-data").resolve())
        assert embedded.current(state_dir) == first
        assert json.loads((state_dir / "db.json").read_text()) == {
            "pid": first.pid, "port": first.port, "data": first.data, "host": "127.0.0.1"
        }
        with pytest.raises(EmbeddedServerError, match="already running") as refused:
            embedded.start(port=0, state_dir=state_dir)
        assert first.dsn in str(refused.value)
        # PGlite does not lock its data dir itself; a second server on it is refused.
        with pytest.raises(EmbeddedServerError, match="in use by another embedded"):
            embedded.start(data=first.data, port=0, state_dir=tmp_path / "other")

        with connect(first, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept(ts timestamptz NOT NULL, v int)")
            conn.execute("SELECT create_hypertable('kept', by_range('ts'))")
            conn.execute("INSERT INTO kept VALUES (now(), 42)")
    finally:
        stopped = embedded.stop(state_dir)

    # (c) stop() stops it and frees the port.
    assert stopped == first
    assert embedded.current(state_dir) is None
    assert not (state_dir / "db.json").exists()
    assert port_is_free(first.port)
    assert embedded.stop(state_dir) is None

    second = embedded.start(port=0, state_dir=state_dir)
    try:
        with connect(second, autocommit=True) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
            assert conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'kept'"
            ).fetchone() == (1,)
    finally:
        embedded.stop(state_dir)
