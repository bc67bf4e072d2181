"""A native PostgreSQL + TimescaleDB server the project starts and stops itself.

The embedded server is a zero-install stand-in; this one is what users run: many connections at once,
TimescaleDB's background scheduler, password authentication, real restarts. ``start()`` initialises a
cluster in ``<state_dir>/native-data`` on first use (scram-sha-256, a generated password kept in
``<state_dir>/native-password`` with mode 0600), starts it on 127.0.0.1 and a free port, creates the
timescaledb extension, and records the server in ``<state_dir>/native.json`` for ``current()`` and
``stop()`` in other processes. TimescaleDB must be installed for the PostgreSQL found (see
tools/timescaledb/setup.sh). PostgreSQL refuses to run as root, so as root every server command runs as
the ``postgres`` system user, which owns the cluster's directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg

from .embedded.server import _flock, _log_tail, _port_in_use, default_state_dir

STATE_FILE = "native.json"
LOCK_FILE = "native.lock"
PASSWORD_FILE = "native-password"
DATA_DIR = "native-data"
RUN_DIR = "native-run"  # the unix socket and the server log: a directory the server's user owns
LOG_NAME = "postgres.log"
SERVICE_USER = "postgres"
PG_MAJOR = os.environ.get("LIFECYCLE_PG_MAJOR", "15")
INSTALL_HINT = ("install TimescaleDB for PostgreSQL from your package manager (e.g. "
                "apt-get install timescaledb-2-postgresql-15 from Timescale's repository), or build the "
                "vendored release as root with `bash tools/timescaledb/setup.sh` (`make native`)")
SETTINGS = {
    "shared_preload_libraries": "timescaledb",
    "listen_addresses": "127.0.0.1",
    "timescaledb.telemetry_level": "off",
    "password_encryption": "scram-sha-256",
}


class NativeServerError(RuntimeError):
    """The native server could not be initialised, started or stopped."""


@dataclass(frozen=True)
class NativeServer:
    pid: int
    port: int
    data: str
    bindir: str
    password: str = field(repr=False, default="")
    host: str = "127.0.0.1"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{quote(self.password, safe='')}@{self.host}:{self.port}/postgres"


def pg_bindir() -> Path:
    """PostgreSQL's bin directory ($LIFECYCLE_PG_BIN, else Debian's for PG_MAJOR), with TimescaleDB installed."""
    bindir = Path(os.environ.get("LIFECYCLE_PG_BIN") or f"/usr/lib/postgresql/{PG_MAJOR}/bin")
    missing = [tool for tool in ("initdb", "pg_ctl", "postgres") if not (bindir / tool).is_file()]
    if missing:
        raise NativeServerError(f"PostgreSQL server programs {', '.join(missing)} not found in {bindir}: "
                                f"apt-get install postgresql-{PG_MAJOR}, or set LIFECYCLE_PG_BIN; then {INSTALL_HINT}")
    pkglibdir = _run([str(bindir / "pg_config"), "--pkglibdir"]).strip() if (bindir / "pg_config").is_file() \
        else str(bindir.parent / "lib")
    if not list(Path(pkglibdir).glob("timescaledb-*.so")):
        raise NativeServerError(f"TimescaleDB is not installed for the PostgreSQL in {bindir} (no "
                                f"timescaledb-*.so in {pkglibdir}): {INSTALL_HINT}")
    return bindir


def _service_user() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (PostgreSQL refuses root), else None: ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise NativeServerError(f"running as root, the server must run as the `{SERVICE_USER}` system user, which "
                                "does not exist: apt-get install postgresql (it creates it), or run as a "
                                "non-root user") from None


def _run(cmd: list[str], *, timeout: float = 120.0) -> str:
    user = _service_user() if Path(cmd[0]).name in ("initdb", "pg_ctl") else None
    full = ["runuser", "-u", user.pw_name, "--", *cmd] if user else cmd
    try:
        proc = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeServerError(f"cannot run {Path(cmd[0]).name}: {exc}") from exc
    if proc.returncode != 0:
        raise NativeServerError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed "
                                f"(exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def _own_dir(path: Path) -> None:
    """A 0700 directory owned by the server's user, which must be able to reach it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    user = _service_user()
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for parent in path.parents:  # PostgreSQL checks the data directory's path as its own user
        if not os.stat(parent).st_mode & 0o001:
            raise NativeServerError(f"the `{SERVICE_USER}` user cannot reach {path}: {parent} is not searchable "
                                    "by others; choose a state directory under a path it can traverse "
                                    "(for example under /tmp or the checkout)")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _postmaster_pid(data: Path) -> int | None:
    """The running postmaster's pid from postmaster.pid, if that process is alive."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _password(state_dir: Path) -> str:
    try:
        return (state_dir / PASSWORD_FILE).read_text().strip()
    except OSError as exc:
        raise NativeServerError(f"the native server's password file {state_dir / PASSWORD_FILE} is unreadable "
                                f"({exc.strerror}); remove {state_dir / DATA_DIR} to initialise a new cluster") from None


def current(state_dir: Path | None = None) -> NativeServer | None:
    """The server recorded in ``state_dir/native.json``, if its postmaster is alive."""
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    raw = _read_state(state_dir)
    if raw is None:
        return None
    pid = _postmaster_pid(Path(raw["data"]))
    if pid is None:
        return None
    return NativeServer(pid=pid, port=int(raw["port"]), data=raw["data"], bindir=raw["bindir"],
                        password=_password(state_dir))


def _initdb(bindir: Path, state_dir: Path, data: Path, run_dir: Path) -> None:
    password = secrets.token_urlsafe(24)
    secret = state_dir / PASSWORD_FILE
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    _own_dir(data)
    # Never on a command line: a file only the server's user reads, for as long as initdb runs.
    pwfile = run_dir / "initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    user = _service_user()
    if user is not None:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
              f"--pwfile={pwfile}", "--encoding=UTF8", "--no-instructions"])
    finally:
        pwfile.unlink(missing_ok=True)
    settings = {**SETTINGS, "unix_socket_directories": str(run_dir)}
    lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
    conf = data / "postgresql.conf"
    with open(conf, "a") as fh:
        fh.write(f"\n# timescale-lifecycle native server\n{lines}")


def start(port: int = 0, state_dir: Path | None = None, timeout: float = 60.0) -> NativeServer:
    """Initialise (first time) and start the cluster of ``state_dir``; port 0 reuses the last port if free."""
    state_dir = Path(state_dir).resolve() if state_dir is not None else default_state_dir().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _flock(state_dir / LOCK_FILE):
        running = current(state_dir)
        if running is not None:
            raise NativeServerError(f"a native TimescaleDB recorded in {state_dir / STATE_FILE} is already running "
                                    f"(pid {running.pid}, port {running.port}); stop it first")
        bindir = pg_bindir()
        data, run_dir = state_dir / DATA_DIR, state_dir / RUN_DIR
        _own_dir(run_dir)
        if not (data / "PG_VERSION").is_file():
            if data.exists() and any(data.iterdir()):
                raise NativeServerError(f"{data} exists but holds no PostgreSQL cluster: remove it or choose "
                                        "another state directory")
            _initdb(bindir, state_dir, data, run_dir)
        if port == 0:
            previous = (_read_state(state_dir) or {}).get("port")
            port = previous if previous and not _port_in_use("127.0.0.1", previous) else _free_port()
        elif _port_in_use("127.0.0.1", port):
            raise NativeServerError(f"port {port} on 127.0.0.1 is already in use: stop whatever listens there "
                                    "or choose another port")
        log = run_dir / LOG_NAME
        offset = log.stat().st_size if log.exists() else 0
        try:
            _run([str(bindir / "pg_ctl"), "start", "-w", "-t", str(int(timeout)), "-D", str(data), "-l", str(log),
                  "-o", f"-p {port}"], timeout=timeout + 10)
        except NativeServerError as exc:
            raise NativeServerError(f"{exc}\n{log}:\n{_log_tail(log, offset)}") from None
        server = NativeServer(pid=_postmaster_pid(data) or 0, port=port, data=str(data), bindir=str(bindir),
                              password=_password(state_dir))
        state = {key: value for key, value in asdict(server).items() if key != "password"}
        (state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return server


def stop(state_dir: Path | None = None, timeout: float = 60.0) -> NativeServer | None:
    """A fast shutdown (open transactions roll back) of the recorded server; None if none was running."""
    state_dir = Path(state_dir).resolve() if state_dir is not None else default_state_dir().resolve()
    if not state_dir.is_dir():
        return None
    with _flock(state_dir / LOCK_FILE):
        server = current(state_dir)
        if server is not None:
            _run([server.bindir + "/pg_ctl", "stop", "-w", "-m", "fast", "-t", str(int(timeout)), "-D", server.data],
                 timeout=timeout + 10)
        return server


def destroy(state_dir: Path) -> None:
    """Stop the server and remove its cluster, password and records (throwaway servers of tests)."""
    stop(state_dir)
    for name in (DATA_DIR, RUN_DIR):
        shutil.rmtree(state_dir / name, ignore_errors=True)
    for name in (STATE_FILE, PASSWORD_FILE, LOCK_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
