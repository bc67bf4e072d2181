"""What the provider spends in the database, per operation: wall time (connect included), statements, and
round trips (a statement outside a pipeline is one; inside pipeline() the statements queued before a read, or
before the pipeline ends, go out together as one).

Off unless LIFECYCLE_DB_TIMING names a file: then each provider operation appends one JSON line to it
(see record()). The bench harness reads these lines.
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
from psycopg import pq

TIMING_ENV = "LIFECYCLE_DB_TIMING"


@dataclass
class Meter:
    seconds: float = 0.0
    statements: int = 0
    round_trips: int = 0
    queued: bool = False  # pipeline statements sent since the last round trip counted


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


def _round_trip(*, queued: bool) -> None:
    """A statement sent (queued: in a pipeline, waiting for the next read), or a read that waits for the
    server: the latter is a round trip only when statements were queued since the last one."""
    meter = getattr(_local, "meter", None)
    if meter is None:
        return
    if queued:
        meter.queued = True
    elif meter.queued:
        meter.round_trips, meter.queued = meter.round_trips + 1, False


class MeteredCursor(psycopg.Cursor[Any]):
    # In pipeline mode execute() only queues: the wait moves to the reads, so they are timed too.
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> MeteredCursor:  # type: ignore[override]
        with timed(1):
            super().execute(query, params, **kwargs)
        in_pipeline = self.connection.info.pipeline_status != pq.PipelineStatus.OFF
        _round_trip(queued=True)
        if not in_pipeline:
            _round_trip(queued=False)
        return self

    def fetchone(self) -> Any:
        with timed():
            _round_trip(queued=False)
            return super().fetchone()

    def fetchall(self) -> list[Any]:
        with timed():
            _round_trip(queued=False)
            return super().fetchall()

    def fetchmany(self, size: int = 0) -> list[Any]:
        with timed():
            _round_trip(queued=False)
            return super().fetchmany(size)


@contextmanager
def pipeline(conn: psycopg.Connection) -> Iterator[None]:
    """conn.pipeline(), metered: its end waits for whatever is still queued (a Sync: one more round trip)."""
    ended = None
    try:
        with conn.pipeline():
            yield
            ended = time.perf_counter()
    finally:
        meter = getattr(_local, "meter", None)
        if meter is not None and ended is not None:
            meter.seconds += time.perf_counter() - ended
            meter.round_trips, meter.queued = meter.round_trips + 1, False


_write_lock = threading.Lock()


@contextmanager
def operation(op: str, kind: str, resource: str | None) -> Iterator[None]:
    """Meter one provider operation and append its line to $LIFECYCLE_DB_TIMING (nothing when unset):
    {"op", "kind", "resource", "db_seconds", "statements", "round_trips"}; open-append-close per line, under a
    lock."""
    path = os.environ.get(TIMING_ENV)
    if not path:
        yield
        return
    with metered() as meter:
        try:
            yield
        finally:
            line = json.dumps({"op": op, "kind": kind, "resource": resource or "",
                               "db_seconds": round(meter.seconds, 6), "statements": meter.statements,
                               "round_trips": meter.round_trips})
            with _write_lock, open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
