"""Connections reused within one provider process.

A Python dynamic provider runs in one process per `pulumi` command and the engine calls it from parallel
threads. Opening a connection per call costs more than the call's own queries, so the provider keeps a few
connections per DSN for the life of the process (that is, of one command), never across commands.

The embedded server serves one connection at a time: a second connection waits until the first closes. An idle
pooled connection would block every other client, so for it the pool holds ONE connection, shared under a
lock, and closes it after IDLE_SECONDS without use (another client, such as `lifecycle` run by hand, then
gets its turn). On a native server the pool holds up to NATIVE_SIZE connections.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import pq

from ..errors import DatabaseUnavailable

POOL_ENV = "LIFECYCLE_POOL"  # "1" / "0": force pooling on or off (default: on in the dynamic-provider host)
SIZE_ENV = "LIFECYCLE_POOL_SIZE"
PREPARE_ENV = "LIFECYCLE_PREPARE"  # "0": no server-side prepared statements on pooled connections
NATIVE_SIZE = 4
IDLE_SECONDS = 1.0
# A connection idle for longer than this is checked with one round trip before it is reused: the server may
# have restarted meanwhile.
PING_AFTER = 0.5


# -- the pool ----------------------------------------------------------------------------------------------
def enabled() -> bool:
    """Pooling is on in the dynamic-provider host (a process is one `pulumi` command), off elsewhere (tests
    and tools call the providers in long-lived processes and change the database by hand between calls)."""
    forced = os.environ.get(POOL_ENV, "").strip()
    if forced:
        return forced not in ("0", "false", "no")
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return bool(spec and spec.name.startswith("pulumi.dynamic"))


def prepared() -> bool:
    """Whether pooled connections prepare their statements and plan each once (see prepare()). On unless
    LIFECYCLE_PREPARE=0: a connection pooler in transaction mode without prepared-statement support (PgBouncer
    before 1.21, or max_prepared_statements = 0) would not keep them from one transaction to the next."""
    return os.environ.get(PREPARE_ENV, "").strip() not in ("0", "false", "no")


def prepare(conn: psycopg.Connection) -> None:
    """Prepare every statement of this pooled connection and keep one generic plan per statement text: an
    operation's catalog reads are the same dozen texts on every resource, and on these servers a statement costs
    its planning more than its execution (the table snapshot: 3.3 ms planned, 1.4 ms run on the embedded server).
    PostgreSQL's default for prepared statements (`auto`) plans again with the values of the first five
    executions and goes on doing so when the generic plan looks costlier, so the plan is forced generic; the
    catalogs are looked up by name (an index either way). The plans live as long as the connection, that is,
    at most one command; a change of a table they read makes PostgreSQL plan again."""
    if prepared():
        conn.prepare_threshold = 0
        conn.execute("SET plan_cache_mode = force_generic_plan")
    else:
        conn.prepare_threshold = None


@contextmanager
def keeping_prepared(conn: psycopg.Connection) -> Iterator[None]:
    """Around an ALTER TABLE that changes no column (ALTER TABLE .. SET (timescaledb.compress ..)): psycopg
    deallocates every prepared statement of the connection on any ALTER, so that each later read of the command
    was prepared and planned again from scratch (once per table in an `up`, and the reads of one plan, sent as one
    statement, are each used once per table). None of our prepared statements returns a user table's columns,
    so the result types they were prepared with cannot change; PostgreSQL itself plans again whatever the ALTER
    invalidates."""
    threshold = conn.prepare_threshold
    conn.prepare_threshold = None  # psycopg's cache bookkeeping (and its ALTER rule) is skipped for this one
    try:
        yield
    finally:
        conn.prepare_threshold = threshold


@dataclass
class _Idle:
    conn: psycopg.Connection
    since: float


@dataclass
class Pool:
    """The connections of one DSN. `size` is learnt from the first connection (1 for the embedded server)."""

    size: int | None = None
    idle: list[_Idle] = field(default_factory=list)
    open: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)
    reaper: threading.Thread | None = None

    def take(self, deadline: float) -> _Idle | None:
        """An idle connection, or None when the caller may open a new one; waits while the pool is full."""
        with self.cond:
            while True:
                if self.idle:
                    return self.idle.pop()
                if self.open < (self.size or 1):
                    self.open += 1
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.cond.wait(remaining):
                    if not self.idle and self.open >= (self.size or 1):
                        raise DatabaseUnavailable("no pooled database connection became free in time "
                                                  "(another operation of this command holds it)")

    def give_back(self, conn: psycopg.Connection | None) -> None:
        """Return a connection in a clean state to the pool (None: the slot of a connection now closed)."""
        with self.cond:
            if conn is None or conn.closed or conn.broken:
                self.open -= 1
            else:
                self.idle.append(_Idle(conn, time.monotonic()))
                self._start_reaper()
            self.cond.notify()

    def _start_reaper(self) -> None:
        if self.reaper is None or not self.reaper.is_alive():
            self.reaper = threading.Thread(target=self._reap, name="lifecycle-pool-reaper", daemon=True)
            self.reaper.start()

    def _reap(self) -> None:
        """Close connections idle for IDLE_SECONDS; ends when none is left."""
        while True:
            time.sleep(IDLE_SECONDS / 2)
            with self.cond:
                now = time.monotonic()
                stale = [i for i in self.idle if now - i.since >= IDLE_SECONDS]
                self.idle = [i for i in self.idle if i not in stale]
                self.open -= len(stale)
                if stale:
                    self.cond.notify_all()
                done = not self.idle
            for item in stale:
                item.conn.close()
            if done:
                return

    def close_all(self) -> None:
        with self.cond:
            stale, self.idle = self.idle, []
            self.open -= len(stale)
            self.cond.notify_all()
        for item in stale:
            item.conn.close()


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def pool_for(dsn: str) -> Pool:
    with _pools_lock:
        return _pools.setdefault(dsn, Pool())


def close_all() -> None:
    """Close every idle pooled connection (tests; the process exit closes them anyway)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close_all()


def is_embedded(conn: psycopg.Connection) -> bool:
    """The embedded server (PGlite) reports a WebAssembly build in version()."""
    row = conn.execute("SELECT version()").fetchone()
    text = str(row[0]).lower() if row else ""
    return "emscripten" in text or "wasm" in text


def pool_size(conn: psycopg.Connection) -> int:
    raw = os.environ.get(SIZE_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return 1 if is_embedded(conn) else int(raw)
    return 1 if is_embedded(conn) else NATIVE_SIZE


def clean(conn: psycopg.Connection) -> bool:
    """Leave no transaction behind for the next operation; False when the connection is not reusable."""
    if conn.closed or conn.broken:
        return False
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        return True
    try:
        conn.rollback()
    except psycopg.Error:
        return False
    return conn.info.transaction_status == pq.TransactionStatus.IDLE


def alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
