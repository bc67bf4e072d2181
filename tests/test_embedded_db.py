"""The embedded TimescaleDB (PGlite + TimescaleDB behind pglite-socket), run for real."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    assert len(srv.password) >= 24
    assert srv.dsn == f"postgresql://postgres:{srv.password}@127.0.0.1:{srv.port}/postgres?sslmode=disable"
    assert os.stat(srv.password_file).st_mode & 0o777 == 0o600


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

    log = srv_state_dir / "db.log"
    queued_before = log.read_text().count(" queued (queue size")
    thread = threading.Thread(target=queued)
    thread.start()
    # The server logs each client it queues: wait (bounded) for b's line, not for a fixed time.
    deadline = time.monotonic() + 30
    while log.read_text().count(" queued (queue size") == queued_before:
        assert thread.is_alive() and time.monotonic() < deadline, f"b never queued behind a: {result}"
        time.sleep(0.02)
    assert thread.is_alive(), result
    drop_socket(a, reset=True)
    thread.join(30)
    a.close()
    assert not thread.is_alive()
    assert result == {"status": psycopg.pq.TransactionStatus.IDLE, "table": (None,)}
    assert "ECONNRESET" in (srv_state_dir / "db.log").read_text()  # the error path was taken


def _msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _recv_exactly(sock, 5)
    return head[:1], _recv_exactly(sock, struct.unpack("!i", head[1:])[0] - 4)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "server closed the connection"
        buf += chunk
    return buf


def _read_until(sock: socket.socket, kind: bytes) -> None:
    """Read backend messages up to the first of type `kind`."""
    while _read_message(sock)[0] != kind:
        pass


def _error_fields(body: bytes) -> dict[str, str]:
    return {f[:1].decode(): f[1:].decode() for f in body.split(b"\0") if f}


def _scram_login(sock: socket.socket, user: str, password: str) -> tuple[bytes, bytes]:
    """StartupMessage and a SCRAM-SHA-256 exchange written from RFC 5802, independently of the
    server's code; returns the message that ends it (R with AuthenticationOk, or an E)."""
    startup = struct.pack("!i", 196608) + f"user\0{user}\0database\0postgres\0\0".encode()
    sock.sendall(struct.pack("!i", len(startup) + 4) + startup)
    tag, body = _read_message(sock)
    assert (tag, body) == (b"R", struct.pack("!i", 10) + b"SCRAM-SHA-256\0\0")
    client_first_bare = "n=,r=" + base64.b64encode(os.urandom(18)).decode()
    first = f"n,,{client_first_bare}".encode()
    sock.sendall(_msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
    tag, body = _read_message(sock)
    assert tag == b"R" and struct.unpack("!i", body[:4])[0] == 11, (tag, body)
    server_first = body[4:].decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    sock.sendall(_msg(b"p", f"{without_proof},p={base64.b64encode(proof).decode()}".encode()))
    tag, body = _read_message(sock)
    if tag == b"R":  # SASLFinal: check the server's signature, then AuthenticationOk follows
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
        assert body == struct.pack("!i", 12) + f"v={expected}".encode()
        tag, body = _read_message(sock)
    return tag, body


def _raw_session(srv: EmbeddedServer) -> socket.socket:
    """A hand-made wire-protocol client (psycopg always sends Sync with Execute)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        assert _scram_login(sock, "postgres", srv.password) == (b"R", struct.pack("!i", 0))
        _read_until(sock, b"Z")
    except BaseException:
        sock.close()
        raise
    return sock


def test_extended_protocol_without_sync_is_not_committed(srv: EmbeddedServer) -> None:
    with connect(srv, autocommit=True) as conn:
        conn.execute("CREATE TABLE t_nosync(x int)")
    with _raw_session(srv) as sock:
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
        password = tmp_path / "password"
        password.write_text("secret\n")
        proc = subprocess.run(
            [node, str(embedded.SERVER_SCRIPT), "--data", "memory://", "--port", str(port),
             "--password-file", str(password)],
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
            "pid": first.pid, "port": first.port, "data": first.data, "host": "127.0.0.1",
            "password_file": first.data + ".password",
        }
        with pytest.raises(EmbeddedServerError, match="already running") as refused:
            embedded.start(port=0, state_dir=state_dir)
        assert f"port {first.port}" in str(refused.value)
        assert first.password not in str(refused.value)
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
        assert second.password == first.password  # the data directory keeps its password
        with connect(second, autocommit=True) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]
            assert conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'kept'"
            ).fetchone() == (1,)
    finally:
        embedded.stop(state_dir)


def test_auth_wrong_password_or_user_is_refused_like_postgresql(srv: EmbeddedServer) -> None:
    for user, password in [("postgres", "not-the-password"), ("postgres", ""), ("mallory", srv.password)]:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
            tag, body = _scram_login(sock, user, password)
            assert tag == b"E", (user, tag, body)
            fields = _error_fields(body)
            assert (fields["S"], fields["C"]) == ("FATAL", "28P01")
            assert fields["M"] == f'password authentication failed for user "{user}"'
            assert sock.recv(1) == b""  # and the connection is closed
        if not password:
            continue  # libpq itself refuses to send an empty password
        with pytest.raises(psycopg.OperationalError, match=f'password authentication failed for user "{user}"'):
            psycopg.connect(srv.dsn.replace(f"postgres:{srv.password}@", f"{user}:{password}@"), connect_timeout=30)
    # Nothing of a refused client reached the database; the right password still works.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        assert _scram_login(sock, "postgres", srv.password) == (b"R", struct.pack("!i", 0))


def test_auth_psql_and_psycopg_connect_with_the_default_sslmode(srv: EmbeddedServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        assert _recv_exactly(sock, 1) == b"N"
    prefer = srv.dsn.replace("sslmode=disable", "sslmode=prefer")
    with psycopg.connect(prefer, connect_timeout=30) as conn:
        assert conn.execute("SHOW timescaledb.license").fetchone() == ("timescale",)
    psql = shutil.which("psql")
    assert psql, "psql is missing: apt-get install postgresql-client"
    env = {**os.environ, "PGPASSWORD": srv.password, "PGCONNECT_TIMEOUT": "30"}
    env.pop("PGSSLMODE", None)
    args = [psql, "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres", "-Atc", "SELECT 6 * 7"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "42"), done.stderr
    refused = subprocess.run(args, env={**env, "PGPASSWORD": "wrong"}, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert 'password authentication failed for user "postgres"' in refused.stderr


def test_auth_memory_server_gets_a_new_password_per_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = embedded.start(data="memory://", port=0, state_dir=tmp_path)
    embedded.stop(tmp_path)
    assert not Path(first.password_file).exists()
    monkeypatch.setenv("LIFECYCLE_EMBEDDED_AUTH_TIMEOUT_MS", "1500")
    second = embedded.start(data="memory://", port=0, state_dir=tmp_path)
    try:
        assert second.password != first.password
        assert os.stat(second.password_file).st_mode & 0o777 == 0o600
        assert embedded.current(tmp_path).dsn == second.dsn  # another process finds the password
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(second.dsn.replace(second.password, first.password), connect_timeout=30)

        # A client that connects and never logs in is cut off (authentication timeout), and the
        # client queued behind it is served.
        with socket.create_connection(("127.0.0.1", second.port), timeout=30) as silent:
            with connect(second) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            tag, body = _read_message(silent)
            assert (tag, _error_fields(body)["M"]) == (b"E", "canceling authentication due to timeout")
    finally:
        embedded.stop(tmp_path)
