"""An archived object's rows loaded back into a temporary table (dropped at commit): what restore inserts from,
and what the full read-back check of the archiver hashes."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from . import export

TEMP = sql.Identifier("lifecycle_loaded")


def load_temp(conn: psycopg.Connection, table: sql.Composable, cols: list[str], local: Path) -> sql.Identifier:
    """Inside the caller's transaction: a temp table with `table`'s columns holding every row of the Parquet file
    `local` (page checksums verified while reading)."""
    col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} LIMIT 0")
                 .format(TEMP, col_list, table))
    # Multi-row INSERTs: the embedded TimescaleDB takes neither COPY FROM STDIN nor (reliably) the pipeline mode of
    # executemany.
    per_statement = max(1, min(1000, 60_000 // len(cols)))
    row_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    for batch in export.read_batches(local):
        data = batch.select(cols).to_pydict()
        rows = list(zip(*(data[c] for c in cols)))
        for i in range(0, len(rows), per_statement):
            part = rows[i:i + per_statement]
            conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
                TEMP, col_list, sql.SQL(", ").join([row_sql] * len(part))), [v for r in part for v in r])
    return TEMP
