"""The embedded TimescaleDB: PGlite + TimescaleDB in a Node.js process, on the PostgreSQL wire protocol.

``start()`` spawns ``node server.mjs`` detached from the caller, waits until it answers a
psycopg query with the timescaledb extension and its TSL module loaded, and records it in
``<state_dir>/db.json`` so that ``current()`` and ``stop()`` find it from another process.

Clients must log in as ``postgres`` with the server's password (SCRAM-SHA-256). The password is
generated per data directory and kept with mode 0600 beside it (``<data>.password``, so a file
data directory keeps its password across restarts), or, for ``memory://``, generated at each
start in ``<state_dir>/memory.password``. ``EmbeddedServer.dsn`` carries it.

The server handles one connection at a time (a second client waits in a queue until the first
disconnects), so always use short-lived connections and close them promptly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import psycopg

EMBEDDED_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = EMBEDDED_DIR / "server.mjs"
PACKAGE_LOCK = EMBEDDED_DIR / "package-lock.json"
NODE_MODULES = EMBEDDED_DIR / "node_modules"
REQUIRED_PACKAGES = ("@electric-sql/pglite", "@electric-sql/pglite-socket")
NODE_MIN_MAJOR = 20
INSTALL_HINT = "install Node.js 20: apt-get install nodejs npm"

STATE_FILE = "db.json"
MEMORY_PASSWORD_FILE = "memory.password"
PASSWORD_SUFFIX = ".password"
LEGACY_PASSWORD = "postgres"
LOG_FILE = "db.log"
LOCK_FILE = "db.lock"
DEFAULT_DATA_DIR = "db-data"
MEMORY = "memory://"

EXIT_PORT_IN_USE = 2
LOCK_WAIT = 5.0
_READY_RE = re.compile(r"^READY port=(\d+)\s*$", re.MULTILINE)
# Ready means: the extension is there and its TSL module (compression, policies) is loaded.
_CHECK_SQL = (
    "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb' "
    "AND current_setting('timescaledb.license', true) = 'timescale' AND _timescaledb_functions.tsl_loaded()"
)


@dataclass(frozen=True)
class EmbeddedServer:
    pid: int
    port: int
    data: str
    host: str = "127.0.0.1"
    password_file: str = ""
    password: str = field(default="", repr=False, compare=False)

    @property
    def dsn(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "localhost"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        # token_urlsafe passwords need no percent-encoding in a URL.
        return f"postgresql://postgres:{self.password}@{host}:{self.port}/postgres?sslmode=disable"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be installed, started or stopped."""


def default_state_dir() -> Path:
    """``$LIFECYCLE_STATE_DIR`` if set, else ``./.lifecycle``."""
    env = os.environ.get("LIFECYCLE_STATE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.cwd() / ".lifecycle"


# --------------------------------------------------------------------------------------------
# Node.js and the npm packages


def _find_node_and_npm() -> tuple[str, str]:
    node = shutil.which("node") or shutil.which("nodejs")
    npm = shutil.which("npm")
    missing = [name for name, path in (("node", node), ("npm", npm)) if path is None]
    if missing:
        raise EmbeddedServerError(
            f"the embedded TimescaleDB needs Node.js and npm, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH; {INSTALL_HINT}"
        )
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedServerError(f"cannot run {node} --version ({exc}); {INSTALL_HINT}") from exc
    match = re.match(r"v?(\d+)\.", out)
    if match is None or int(match.group(1)) < NODE_MIN_MAJOR:
        raise EmbeddedServerError(
            f"the embedded TimescaleDB needs Node.js {NODE_MIN_MAJOR} or newer, found {out!r} "
            f"at {node}; {INSTALL_HINT}"
        )
    return node, npm  # type: ignore[return-value]


def _node_modules_current() -> bool:
    # npm ci writes node_modules/.package-lock.json last; it is our "installed" stamp.
    stamp = NODE_MODULES / ".package-lock.json"
    if not stamp.is_file():
        return False
    if any(not (NODE_MODULES / pkg / "package.json").is_file() for pkg in REQUIRED_PACKAGES):
        return False
    return stamp.stat().st_mtime >= PACKAGE_LOCK.stat().st_mtime


@contextlib.contextmanager
def _flock(path: Path, *, create: bool = True) -> Iterator[None]:
    flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ensure_node_modules() -> Path:
    """Install the pinned npm packages next to server.mjs when missing or stale.

    Runs ``npm ci --legacy-peer-deps --no-audit --no-fund`` in the embedded folder when
    ``node_modules`` is missing or older than ``package-lock.json``. Returns the node_modules path.
    """
    node, npm = _find_node_and_npm()
    del node
    if not PACKAGE_LOCK.is_file():
        raise EmbeddedServerError(f"{PACKAGE_LOCK} is missing: the installation is incomplete")
    if _node_modules_current():
        return NODE_MODULES
    # Serialise concurrent installs (parallel test workers); the lock file is read-only here.
    with _flock(PACKAGE_LOCK, create=False):
        if _node_modules_current():
            return NODE_MODULES
        cmd = [npm, "ci", "--legacy-peer-deps", "--no-audit", "--no-fund"]
        try:
            proc = subprocess.run(
                cmd,
                cwd=EMBEDDED_DIR,
                capture_output=True,
                text=True,
                timeout=900,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServerError(f"`{' '.join(cmd)}` in {EMBEDDED_DIR} timed out") from exc
        except OSError as exc:
            raise EmbeddedServerError(f"cannot run npm ({exc}); {INSTALL_HINT}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise EmbeddedServerError(
                f"`{' '.join(cmd)}` failed in {EMBEDDED_DIR} (exit {proc.returncode}):\n{tail}"
            )
        if not _node_modules_current():
            # npm may keep the lock's mtime newer (e.g. a checkout in the future); make the
            # stamp current so that the next call does not reinstall.
            stamp = NODE_MODULES / ".package-lock.json"
            if stamp.is_file():
                os.utime(stamp)
            if not _node_modules_current():
                raise EmbeddedServerError(
                    f"`{' '.join(cmd)}` succeeded but {NODE_MODULES} is still incomplete"
                )
    return NODE_MODULES


# --------------------------------------------------------------------------------------------
# Process helpers


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    # Reap it if it is our own exited child (otherwise it lingers as a zombie and looks alive).
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # "pid (comm) S ...": the state letter follows the last ')'.
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        # A recorded pid that now belongs to another program (pid reuse) is not our server.
        if SERVER_SCRIPT.name.encode() not in cmdline.read_bytes():
            return False
    except OSError:
        pass
    return True


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _kill(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
            break
        except (ProcessLookupError, PermissionError):
            continue
    _wait_dead(pid, 5.0)


def _port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port (binds like Node does, with SO_REUSEADDR)."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _port_taken_error(host: str, port: int) -> EmbeddedServerError:
    return EmbeddedServerError(
        f"port {port} on {host} is already in use: cannot start the embedded TimescaleDB there; "
        f"stop whatever listens on port {port} or choose another port"
    )


def _log_tail(log_path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _lock_data_dir(data_path: Path) -> int:
    lock_path = data_path.with_name(data_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    # A server that was just stopped can hold the lock a moment longer: its main thread shows as exited
    # while Node's other threads still hold the file table. Wait briefly before calling it "in use".
    deadline = time.monotonic() + LOCK_WAIT
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedServerError(
            f"the data directory {data_path} is in use by another embedded TimescaleDB "
            f"(pid {holder}, lock {lock_path}); stop that server first"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_state(state_dir: Path) -> EmbeddedServer | None:
    try:
        raw = json.loads((state_dir / STATE_FILE).read_text())
        password_file = str(raw.get("password_file", ""))
        return EmbeddedServer(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            data=str(raw["data"]),
            host=str(raw.get("host", "127.0.0.1")),
            password_file=password_file,
            # A server recorded by a version without authentication accepts any password: it stays
            # reachable (and stoppable) until it is restarted with one.
            password=_read_password(Path(password_file)) if password_file else LEGACY_PASSWORD,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(state_dir: Path, server: EmbeddedServer) -> None:
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".json.tmp")
    record = asdict(server)
    del record["password"]  # it stays in its 0600 file only
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _remove_state(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / STATE_FILE).unlink()


def _read_password(path: Path) -> str:
    password = path.read_text().strip()
    if not password:
        raise ValueError(f"{path} is empty")
    return password


def _password_file(data: str, data_path: Path | None, state_dir: Path) -> Path:
    """The password file of this data directory, created (mode 0600) when new.

    A file data directory keeps its password next to it, across restarts; ``memory://`` gets a
    new password at every start.
    """
    if data_path is not None:
        path = data_path.with_name(data_path.name + PASSWORD_SUFFIX)
    else:
        path = state_dir / MEMORY_PASSWORD_FILE
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # a copied or restored file may have lost its mode
        _read_password(path)
        return path
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(24) + "\n")
    return path


def _check_connection(dsn: str, timeout: float) -> str | None:
    """The timescaledb version if a short-lived connection works, else None."""
    try:
        with psycopg.connect(
            dsn, connect_timeout=max(1, int(timeout)), autocommit=True
        ) as conn:
            row = conn.execute(_CHECK_SQL).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


# --------------------------------------------------------------------------------------------
# Public API


def current(state_dir: Path | None = None) -> EmbeddedServer | None:
    """The server recorded in ``state_dir/db.json``, if its process is still alive."""
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    server = _read_state(state_dir)
    if server is None or not _pid_alive(server.pid):
        return None
    return server


def start(
    data: str | None = None,
    port: int = 5433,
    state_dir: Path | None = None,
    timeout: float = 120.0,
) -> EmbeddedServer:
    """Start the embedded TimescaleDB and wait until it serves queries.

    ``data`` is a data directory (default ``state_dir/db-data``) or ``"memory://"``.
    ``port`` 0 picks a free port. Raises EmbeddedServerError when a server recorded in
    ``state_dir`` is still running, when the port is taken, or when start-up fails.
    """
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"

    with _flock(state_dir / LOCK_FILE):
        running = current(state_dir)
        if running is not None:
            raise EmbeddedServerError(
                f"an embedded TimescaleDB recorded in {state_dir / STATE_FILE} is already running "
                f"(pid {running.pid}, data {running.data}, port {running.port}); `lifecycle db dsn` "
                "prints its DSN; stop it first"
            )
        _remove_state(state_dir)  # stale record of a dead server

        if data is None:
            data = str(state_dir / DEFAULT_DATA_DIR)
        data_path: Path | None = None
        if data != MEMORY and "://" not in data:
            data_path = Path(data).expanduser().resolve()
            data_path.parent.mkdir(parents=True, exist_ok=True)
            data = str(data_path)

        if _port_in_use(host, port):
            raise _port_taken_error(host, port)
        try:
            password_file = _password_file(data, data_path, state_dir)
        except (OSError, ValueError) as exc:
            raise EmbeddedServerError(f"cannot prepare the embedded TimescaleDB's password file: {exc}") from exc

        ensure_node_modules()
        node, _ = _find_node_and_npm()

        # PGlite does not lock its data directory, and two servers on one directory corrupt it.
        # The node process inherits a flock'ed descriptor, so the lock lives exactly as long as it.
        lock_fd = _lock_data_dir(data_path) if data_path is not None else None
        log_path = state_dir / LOG_FILE
        try:
            with open(log_path, "ab") as log:
                log.write(
                    f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting embedded TimescaleDB "
                    f"(data {data}, {host}:{port}) ---\n".encode()
                )
                log.flush()
                offset = log.tell()
                try:
                    proc = subprocess.Popen(
                        [node, str(SERVER_SCRIPT), "--data", data, "--port", str(port),
                         "--host", host, "--password-file", str(password_file)],
                        cwd=EMBEDDED_DIR,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                        close_fds=True,
                        pass_fds=(lock_fd,) if lock_fd is not None else (),
                    )
                except OSError as exc:
                    raise EmbeddedServerError(f"cannot run {node}: {exc}; {INSTALL_HINT}") from exc
            if lock_fd is not None:
                os.ftruncate(lock_fd, 0)
                os.pwrite(lock_fd, f"{proc.pid}\n".encode(), 0)
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # the child keeps the lock

        try:
            server = _wait_ready(proc, data, host, port, password_file, log_path, offset, timeout)
        except BaseException:
            if proc.poll() is None:
                _kill(proc.pid)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)
            raise
        _write_state(state_dir, server)
        # The process outlives this Popen object on purpose; stop() or current() reaps it.
        proc.returncode = 0  # silences Popen.__del__'s "still running" ResourceWarning
        return server


def _wait_ready(
    proc: subprocess.Popen,
    data: str,
    host: str,
    port: int,
    password_file: Path,
    log_path: Path,
    offset: int,
    timeout: float,
) -> EmbeddedServer:
    deadline = time.monotonic() + timeout
    real_port: int | None = None
    while True:
        rc = proc.poll()
        if rc is not None:
            if rc == EXIT_PORT_IN_USE:
                raise _port_taken_error(host, port)
            raise EmbeddedServerError(
                f"the embedded TimescaleDB exited during start-up (exit {rc}); "
                f"{log_path}:\n{_log_tail(log_path, offset)}"
            )
        if real_port is None:
            try:
                with open(log_path, "rb") as fh:
                    fh.seek(offset)
                    match = _READY_RE.search(fh.read().decode("utf-8", "replace"))
            except OSError:
                match = None
            if match:
                real_port = int(match.group(1))
        if real_port is not None:
            server = EmbeddedServer(pid=proc.pid, port=real_port, data=data, host=host,
                                    password_file=str(password_file),
                                    password=_read_password(password_file))
            remaining = deadline - time.monotonic()
            if _check_connection(server.dsn, min(10.0, max(1.0, remaining))):
                return server
        if time.monotonic() >= deadline:
            raise EmbeddedServerError(
                f"the embedded TimescaleDB did not become ready within {timeout:g} s "
                f"({'no READY line' if real_port is None else 'no working connection'}); "
                f"{log_path}:\n{_log_tail(log_path, offset)}"
            )
        time.sleep(0.1)


def stop(state_dir: Path | None = None, timeout: float = 30.0) -> EmbeddedServer | None:
    """Stop the server recorded in ``state_dir``: SIGTERM, wait, SIGKILL if needed.

    Removes ``db.json``. Returns the stopped server, or None if nothing was running.
    """
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    if not state_dir.is_dir():
        return None
    with _flock(state_dir / LOCK_FILE):
        server = current(state_dir)
        if server is None:
            _remove_state(state_dir)
            return None
        try:
            os.kill(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise EmbeddedServerError(
                f"cannot stop the embedded TimescaleDB (pid {server.pid}): {exc}"
            ) from exc
        if not _wait_dead(server.pid, timeout):
            print(
                f"embedded TimescaleDB (pid {server.pid}) did not stop within {timeout:g} s "
                "after SIGTERM; killing it",
                file=sys.stderr,
            )
            _kill(server.pid)
            if _pid_alive(server.pid):
                raise EmbeddedServerError(
                    f"the embedded TimescaleDB (pid {server.pid}) survived SIGKILL"
                )
        _remove_state(state_dir)
        if server.data == MEMORY and server.password_file:  # its password died with the database
            Path(server.password_file).unlink(missing_ok=True)
        return server
