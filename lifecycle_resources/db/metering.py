"""What the provider spends in the database, per operation: wall time (connect included) and statements, its
transactions' BEGIN and COMMIT (or ROLLBACK) among them: round trips the provider waits for like any other.

Off unless LIFECYCLE_DB_TIMING names a file: then each provider operation appends one JSON line to it
(see operation()). The bench harness reads these lines. LIFECYCLE_SQL_LOG, the same way, logs each statement
(see _logged()), which the bench replays.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

TIMING_ENV = "LIFECYCLE_DB_TIMING"


@dataclass
class Meter:
    seconds: float = 0.0
    statements: int = 0


_local = threading.local()


@contextmanager
def metered() -> Iterator[Meter]:
    """Count what the database calls made by this thread cost until the block ends."""
    meter, outer = Meter(), getattr(_local, "meter", None)
    _local.meter = meter
    try:
        yield meter
    finally:
        _local.meter = outer


@contextmanager
def timed(statements: int = 0) -> Iterator[None]:
    """Add the block's wall time (and `statements`) to this thread's meter, if one is running."""
    meter = getattr(_local, "meter", None)
    if meter is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        meter.seconds += time.perf_counter() - start
        meter.statements += statements


class MeteredCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> MeteredCursor:  # type: ignore[override]
        if params is None and kwargs.get("prepare") is None:  # Connection.execute passes prepare=None
            # Where statements are prepared (db.pool.prepare), only those with parameters: the same text comes
            # again for the next resource. One without has its values in its text (seen once), or is a script of
            # several statements, which cannot be prepared.
            kwargs["prepare"] = False
        with timed(1), _logged(self.connection, query, params, kwargs.get("prepare")):
            super().execute(query, params, **kwargs)
        return self


class MeteredConnection(psycopg.Connection[Any]):
    """A connection whose transaction commands are metered as statements: psycopg sends BEGIN, COMMIT, ROLLBACK,
    SAVEPOINT and RELEASE itself, not through a cursor, so MeteredCursor alone would miss two round trips a write.
    (psycopg's own hook for them; psycopg is pinned, and tests/test_metering.py counts them.)"""

    def _exec_command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        return self._metered_command(command, super()._exec_command(command, *args, **kwargs))

    def _metered_command(self, command: Any, gen: Any) -> Any:
        with timed(1), _logged(self, command, None, False):
            return (yield from gen)


SQL_LOG_ENV = "LIFECYCLE_SQL_LOG"


@contextmanager
def _logged(conn: psycopg.Connection, query: Any, params: Any, prepare: bool | None) -> Iterator[None]:
    """With $LIFECYCLE_SQL_LOG naming a file, one JSON line per statement once it ran: {"sql": its text as sent
    (placeholders and all), "params": its parameters (null for none), "prepare": whether it ran as a prepared
    statement, "ok": whether it succeeded}, so that the bench can replay the provider's own statements alone
    (scripts/bench.py). The connection's password, were it in a line, is written as <secret>."""
    path = os.environ.get(SQL_LOG_ENV)
    if not path:
        yield
        return
    ok = False
    try:
        yield
        ok = True
    finally:
        _write_statement(path, conn, query, params, prepare, ok)


def _write_statement(path: str, conn: psycopg.Connection, query: Any, params: Any, prepare: bool | None,
                     ok: bool) -> None:
    try:
        if isinstance(query, bytes):
            text = query.decode()
        elif isinstance(query, str):
            text = query
        else:
            text = query.as_string(conn)
        if prepare is None:  # the connection's rule: prepared at once (threshold 0) or never (None)
            prepare = conn.prepare_threshold == 0
        try:
            line = json.dumps({"sql": text, "params": params, "prepare": bool(prepare) and params is not None,
                               "ok": ok})
        except (TypeError, ValueError):  # a parameter JSON cannot hold (a Jsonb, a timestamp): its SQL literal
            line = json.dumps({"sql": psycopg.ClientCursor(conn).mogrify(query, params), "params": None,
                               "prepare": False, "ok": ok})
    except (TypeError, ValueError, psycopg.Error) as exc:  # not even that: the line says so
        line = json.dumps({"sql": None, "unlogged": type(exc).__name__, "ok": ok})
    password = conn.info.password
    if password:
        line = line.replace(password, "<secret>")
    with _write_lock, open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


_write_lock = threading.Lock()


def enabled() -> bool:
    """Whether provider operations are timed ($LIFECYCLE_DB_TIMING names a file)."""
    return bool(os.environ.get(TIMING_ENV))


@contextmanager
def operation(op: str, kind: str, resource: str | None, started: float | None = None) -> Iterator[None]:
    """Meter one provider operation and append its line to $LIFECYCLE_DB_TIMING (nothing when unset):
    {"op", "kind", "resource", "db_seconds", "statements", "cpu_seconds"}; open-append-close per line, under a
    lock. cpu_seconds is the CPU of the calling thread from `started` (a time.thread_time() the caller took before
    its own imports), else from here, to the end: the provider's own code and its driver's, not the SDK's work
    around the call (unpickling the provider, (de)serialising the properties), which `make bench` counts apart."""
    path = os.environ.get(TIMING_ENV)
    if not path:
        yield
        return
    cpu_start = time.thread_time() if started is None else started
    with metered() as meter:
        try:
            yield
        finally:
            line = json.dumps({"op": op, "kind": kind, "resource": resource or "",
                               "db_seconds": round(meter.seconds, 6), "statements": meter.statements,
                               "cpu_seconds": round(time.thread_time() - cpu_start, 6)})
            with _write_lock, open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
