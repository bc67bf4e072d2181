"""The archive catalog (lifecycle.archives) read back: what is archived, and whether every object still
matches what was recorded of it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ...db.connection import connect
from ...identifiers import TableName
from ...reconcile import archive_stores
from .plan import State, manifest_key
from .store import ArchiveStore, open_store
from .timeaxis import LenientTimestamptz, TimeAxis
from .verify import object_problems
from .workdir import scratch


_INTEGER = TimeAxis("", "bigint")


def store_for(stores: dict[str, ArchiveStore], url: str, options: dict[str, Any],
              registered: dict[str, dict[str, str]] | None = None) -> ArchiveStore:
    """One store object per URL for a whole command (the S3 client is reused). `registered`: per URL, the
    endpoint and region an ArchiveStore registered (archive_stores.registered_options); `options` win."""
    if url not in stores:
        stores[url] = open_store(url, **{**(registered or {}).get(url, {}), **options})
    return stores[url]


def entries(conn: psycopg.Connection, table: str | None = None) -> list[dict[str, Any]]:
    label = TableName.parse(table).qualified if table else None
    with conn.cursor(row_factory=dict_row) as cur:
        cur.adapters.register_loader("timestamptz", LenientTimestamptz)  # recorded integer bounds may pass 9999
        rows = cur.execute(sql.SQL(
            "SELECT a.*, d.column_type::text IN ('smallint', 'integer', 'bigint') AS integer_time, {start} AS "
            "range_start_integer, {end} AS range_end_integer FROM lifecycle.archives a "
            "LEFT JOIN timescaledb_information.dimensions d ON d.dimension_number = 1 "
            "AND a.hypertable = d.hypertable_schema || '.' || d.hypertable_name "
            "WHERE %(t)s::text IS NULL OR a.hypertable = %(t)s ORDER BY a.hypertable, a.range_start, a.chunk_name")
            .format(start=_INTEGER.decoded(sql.SQL("a.range_start")), end=_INTEGER.decoded(sql.SQL("a.range_end"))),
            {"t": label}).fetchall()
    for row in rows:  # integer time: the bounds as the integers they are
        if row.pop("integer_time"):
            row["range_start"], row["range_end"] = row["range_start_integer"], row["range_end_integer"]
        del row["range_start_integer"], row["range_end_integer"]
    return rows


def verify_all(dsn: str, table: str | None = None, stores: dict[str, ArchiveStore] | None = None,
               **store_options: Any) -> list[tuple[dict[str, Any], list[str]]]:
    """Every published slice (verified or dropped) against its object and manifest; (entry, problems) each."""
    stores = dict(stores or {})
    with connect(dsn) as conn:
        rows = entries(conn, table)
        registered = archive_stores.registered_options(conn)
    checked = []
    with scratch("lifecycle-verify-") as tmp:
        for row in rows:
            if row["state"] not in (State.VERIFIED, State.DROPPED):
                continue
            store = store_for(stores, row["store_url"], store_options, registered)
            problems = object_problems(store, row["object_key"], size=row["bytes"], sha256=row["sha256"],
                                       rows=row["row_count"], workdir=tmp)
            if store.size(manifest_key(row["object_key"])) is None:
                problems.append(f"{store.location(manifest_key(row['object_key']))}: manifest missing")
            checked.append((row, problems))
            for leftover in tmp.iterdir():
                leftover.unlink()
    return checked
