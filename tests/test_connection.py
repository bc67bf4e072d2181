"""connect(): bounded in total, names the host it could not reach, never shows the password.

A "black-holed" server is a socket of the test's own that listens and never answers: the TCP handshake
completes (the kernel does it), the startup message is never answered, just as with a firewalled host that
lets the SYN through or a server stuck in its accept queue.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from lifecycle_resources.db.connection import TIMEOUT_ENV, connect, connect_timeout
from lifecycle_resources.errors import DatabaseUnavailable, LifecycleError

MARKER = f"pw_{uuid.uuid4().hex}"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word; its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def marker_dsn(port: int) -> str:
    return f"postgresql://app:{MARKER}@127.0.0.1:{port}/metrics?sslmode=disable&sslpassword={MARKER}"


def test_connect_black_holed_host_fails_within_the_bound(black_hole: int) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info, connect(marker_dsn(black_hole), timeout=3):
        pass
    took = time.monotonic() - started
    message = str(info.value)
    assert 2 <= took < 5, took
    assert f"127.0.0.1:{black_hole}" in message and "limit 3 s" in message and TIMEOUT_ENV in message
    assert MARKER not in message


def test_connect_timeout_from_the_environment(black_hole: int) -> None:
    """The default applies to every connection of a provider or the runner: 5 x 60 s before this fix."""
    env = {**os.environ, TIMEOUT_ENV: "3"}
    code = ("import sys\nfrom lifecycle_resources.db.connection import connect\n"
            "try:\n    connect(sys.argv[1]).__enter__()\n"
            "except Exception as exc:\n    print(exc)\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, marker_dsn(black_hole)], env=env, capture_output=True,
                          text=True, timeout=20)
    took = time.monotonic() - started
    assert took < 8, took
    assert f"cannot connect to 127.0.0.1:{black_hole}" in proc.stdout, proc.stdout + proc.stderr
    assert MARKER not in proc.stdout + proc.stderr


def test_connect_refused_retries_briefly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info, connect(marker_dsn(port), timeout=30):
        pass
    assert time.monotonic() - started < 8
    assert "5 attempts" in str(info.value) and f"127.0.0.1:{port}" in str(info.value)
    assert MARKER not in str(info.value)


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan"])
def test_connect_timeout_refuses_a_bad_setting(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, raw)
    with pytest.raises(LifecycleError) as info:
        connect_timeout()
    assert TIMEOUT_ENV in str(info.value) and repr(raw) in str(info.value)


def test_connect_timeout_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert connect_timeout() == 30
    monkeypatch.setenv(TIMEOUT_ENV, "7.5")
    assert connect_timeout() == 7.5
