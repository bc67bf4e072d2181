"""Connections with a brief, bounded retry (pooled within a provider process: db.pool), and DSNs that never
leak their secrets."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from . import pool
from .metering import MeteredConnection, MeteredCursor, timed
from ..errors import DatabaseUnavailable, LifecycleError

CONFIG_KEY = "lifecycle:dsn"
DSN_ENV = "TSDB_DSN"  # the providers' last resort, after a resource's dsn input and CONFIG_KEY
TIMEOUT_ENV = "LIFECYCLE_CONNECT_TIMEOUT"
# Total seconds one connect() may take, retries included. The embedded server serves one connection at a
# time, so a connection may legitimately wait in its queue for a while; a black-holed host must not stall a
# preview for minutes per resource either.
DEFAULT_CONNECT_TIMEOUT = 30.0
# A refused connection (a server starting up) is retried a few times, briefly: 0.25 + 0.5 + 1 + 2 s.
CONNECT_ATTEMPTS = 5
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 2.0
# libpq rounds a connect_timeout below 2 s up to 2 s.
_MIN_ATTEMPT = 2

# Conninfo keys whose values are secrets (libpq's password and sslpassword, and anything named like one).
_SECRET_KEY = re.compile(r"password|secret|token", re.IGNORECASE)
# key=value pairs of a conninfo or URL query as they may appear in free text.
_SECRET_PAIR = re.compile(r"(\b[\w]*(?:password|secret|token)\w*\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'\"]+)",
                          re.IGNORECASE)
_URL_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(dsn: str) -> str:
    """The DSN without any secret (password, sslpassword, ...), for messages and logs."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    return " ".join(f"{k}={v}" for k, v in sorted(parts.items()) if not _secret_key(k))


def endpoint(dsn: str) -> str:
    """host:port the DSN connects to, as a person would name it (never the password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    host = parts.get("host") or parts.get("hostaddr") or os.environ.get("PGHOST") or "the local socket"
    port = parts.get("port") or os.environ.get("PGPORT") or "5432"
    hosts, ports = str(host).split(","), str(port).split(",")
    return ", ".join(f"{h}:{ports[i] if i < len(ports) else ports[-1]}" for i, h in enumerate(hosts))


def secrets_of(dsn: str) -> set[str]:
    """Every secret value a DSN carries, parsable or not."""
    found: set[str] = set()
    try:
        found |= {str(v) for k, v in conninfo_to_dict(dsn).items() if _secret_key(k) and v}
    except psycopg.ProgrammingError:
        pass
    for m in _SECRET_PAIR.finditer(dsn):
        found.add(m.group(2).strip("'"))
    m = re.search(r"postgres(?:ql)?://[^:/@\s]*:([^@\s]*)@", dsn, re.IGNORECASE)
    if m and m.group(1):
        found.add(m.group(1))
    return {s for s in found if s}


def scrub(text: str, *dsns: str | None) -> str:
    """Remove the DSNs' secrets from free text (driver messages sometimes echo the conninfo), and any
    password-like key=value or URL password that is there anyway."""
    for dsn in dsns:
        if not isinstance(dsn, str) or not dsn:
            continue
        text = text.replace(dsn, redact(dsn))
        for value in sorted(secrets_of(dsn), key=len, reverse=True):
            text = text.replace(value, "***")
    text = _SECRET_PAIR.sub(r"\1***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


def validate_dsn(dsn: object) -> str | None:
    """None when the DSN is usable, else what is wrong with it (without echoing it)."""
    if not isinstance(dsn, str) or not dsn.strip():
        return "expected a non-empty PostgreSQL connection string"
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "not a valid PostgreSQL connection string (URL or key=value form)"
    return None


def connect_timeout() -> float:
    """The total connect budget in seconds: $LIFECYCLE_CONNECT_TIMEOUT, else DEFAULT_CONNECT_TIMEOUT."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise LifecycleError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds (default "
                             f"{DEFAULT_CONNECT_TIMEOUT:g})")
    return value


@contextmanager
def connect(dsn: str, *, timeout: float | None = None,
            attempts: int = CONNECT_ATTEMPTS) -> Iterator[psycopg.Connection]:
    """Open an autocommit connection (transactions are explicit); closed on exit. See open_connection()."""
    conn = open_connection(dsn, timeout=timeout, attempts=attempts)
    try:
        yield conn
    finally:
        conn.close()


def open_connection(dsn: str, *, timeout: float | None = None,
                    attempts: int = CONNECT_ATTEMPTS) -> psycopg.Connection:
    """An autocommit connection (transactions are explicit), the caller closes it.

    Retries briefly (a server starting up refuses connections for a moment), at most `attempts` times, and
    gives up after `timeout` seconds in total (default: connect_timeout()), naming the host and port it
    could not reach.
    """
    if not dsn:
        raise LifecycleError(
            f"no database connection configured: set it with `pulumi config set --secret {CONFIG_KEY} <dsn>`, "
            f"export {DSN_ENV}=<dsn> (for the embedded server: {DSN_ENV}=$(lifecycle db dsn)), "
            "or give the resource a secret `dsn` input"
        )
    budget = connect_timeout() if timeout is None else timeout
    deadline = time.monotonic() + budget
    delay = FIRST_BACKOFF
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            with timed():
                return MeteredConnection.connect(dsn, autocommit=True,
                                                 connect_timeout=max(_MIN_ATTEMPT, int(remaining)),
                                                 application_name="timescale-lifecycle", cursor_factory=MeteredCursor)
        except psycopg.OperationalError as exc:
            remaining = deadline - time.monotonic()
            if attempt >= attempts or remaining - delay < _MIN_ATTEMPT:  # no time left for a whole attempt
                took = budget - remaining
                raise DatabaseUnavailable(
                    f"cannot connect to {endpoint(dsn)} ({redact(dsn)}): {attempt} attempt"
                    f"{'' if attempt == 1 else 's'} in {took:.1f} s (limit {budget:g} s, {TIMEOUT_ENV}): "
                    f"{scrub(str(exc), dsn).strip()}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


@contextmanager
def pooled(dsn: str, on_open: Callable[[psycopg.Connection], None]) -> Iterator[psycopg.Connection]:
    """A connection for one operation: from the DSN's pool in the provider host (db.pool), else a new one.

    `on_open` runs once on each new connection (session settings). A reused connection idle for a while is
    checked first and, if the server dropped it, replaced once by a new one. On return a connection is
    rolled back if a transaction was left open, and discarded if broken: no state leaks into the next call.
    """
    if not pool.enabled():
        with connect(dsn) as conn:
            on_open(conn)
            yield conn
        return
    if not dsn:
        open_connection(dsn)  # raises the "no database connection configured" error
    budget = connect_timeout()
    slots = pool.pool_for(dsn)
    idle = slots.take(time.monotonic() + budget)  # waiting for a free connection is not database time
    conn: psycopg.Connection | None = None
    try:
        if idle is not None and (time.monotonic() - idle.since < pool.PING_AFTER or pool.alive(idle.conn)):
            conn = idle.conn
        else:
            if idle is not None:
                idle.conn.close()  # dropped by the server: retried once, on a new connection
            conn = open_connection(dsn, timeout=budget)
            pool.prepare(conn)
            on_open(conn)
            if slots.size is None:
                slots.size = pool.pool_size(conn)
        yield conn
    finally:
        reusable = conn is not None and pool.clean(conn)
        if conn is not None and not reusable:
            conn.close()
        slots.give_back(conn if reusable else None)
