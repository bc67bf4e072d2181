"""Advisory locks that serialise every writer of one table: providers and the runner alike."""

from __future__ import annotations

import psycopg

from ..identifiers import TableName


def lock_table(conn: psycopg.Connection, table: TableName) -> None:
    """Serialise concurrent operations on one table (Pulumi applies resources in parallel)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lifecycle:{table.qualified}",))
