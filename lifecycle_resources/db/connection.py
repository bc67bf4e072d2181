"""Short-lived connections with a brief retry, and DSNs that never leak their password."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import DatabaseUnavailable, LifecycleError

CONFIG_KEY = "lifecycle:dsn"
DSN_ENV = "TSDB_DSN"  # the providers' last resort, after a resource's dsn input and CONFIG_KEY
CONNECT_ATTEMPTS = 5
FIRST_BACKOFF = 0.25
# The embedded server serves one connection at a time: a connection may legitimately wait in its queue.
CONNECT_TIMEOUT = 60


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    parts.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in sorted(parts.items()))


def scrub(text: str, dsn: str | None) -> str:
    """Remove a DSN's password from free text (driver messages sometimes echo the conninfo)."""
    if not dsn:
        return text
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def validate_dsn(dsn: object) -> str | None:
    """None when the DSN is usable, else what is wrong with it (without echoing it)."""
    if not isinstance(dsn, str) or not dsn.strip():
        return "expected a non-empty PostgreSQL connection string"
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "not a valid PostgreSQL connection string (URL or key=value form)"
    return None


@contextmanager
def connect(dsn: str, *, attempts: int = CONNECT_ATTEMPTS) -> Iterator[psycopg.Connection]:
    """Open an autocommit connection (transactions are explicit), retrying briefly; closed on exit.

    Never pooled: the embedded server serves one connection at a time.
    """
    if not dsn:
        raise LifecycleError(
            f"no database connection configured: set it with `pulumi config set --secret {CONFIG_KEY} <dsn>`, "
            f"export {DSN_ENV}=<dsn> (for the embedded server: {DSN_ENV}=$(lifecycle db dsn)), "
            "or give the resource a secret `dsn` input"
        )
    delay = FIRST_BACKOFF
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   application_name="timescale-lifecycle")
            break
        except psycopg.OperationalError as exc:
            last = exc
            if attempt < attempts:
                time.sleep(delay)
                delay *= 2
    else:
        raise DatabaseUnavailable(
            f"cannot connect to {redact(dsn)} after {attempts} attempts: {scrub(str(last), dsn).strip()}"
        ) from None
    try:
        yield conn
    finally:
        conn.close()
