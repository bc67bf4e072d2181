"""At the preview of CompressionSettings created or changed: the declared settings measured on a sample chunk
(the advisor's scratch copy, runner/advisor.py). Settings that make the data larger than uncompressed are said
as a warning with the advisor's best candidate; a preview is never refused for it, nor for a failed measure."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ..errors import LifecycleError
from ..identifiers import TableName
from ..reconcile.compression import CompressionState
from ..reconcile.jobs import Notice

# Bounded: one sample chunk, at most this many of its newest rows, so a changed preview stays in seconds.
SAMPLE_ROWS = 50_000


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} kB"


def worse_than_uncompressed(conn: psycopg.Connection, table: TableName, declared: CompressionState,
                            time_column: str | None = None, chunk_interval: str | int | None = None) -> Notice | None:
    """A warning when `declared` compresses the sample to more bytes than it holds uncompressed; else None.
    `time_column` and `chunk_interval`: what the program's Hypertable declares, so that a table with rows that
    is not a hypertable yet (the first `up`) is measured too, in chunks of the size it will have."""
    from ..runner import advisor  # the advisor's measurement; imported only when settings change

    try:
        if not holds_rows(conn, table):
            return None  # nothing to sample: the advisor would find no chunk, or an empty sample, and say nothing
        advice = advisor.advise_within(conn, table, declared, SAMPLE_ROWS, time_column, chunk_interval)
    except (LifecycleError, psycopg.Error):  # no chunk yet, or a measurement that failed: nothing to say
        return None
    ours, best = advice.current, advice.best
    if ours is None or best is None or ours.ratio >= 1.0:
        return None
    better = (f"; the advisor's best candidate: {advice.declaration(best.candidate)}: {best.ratio:.2f}x on the "
              "same sample" if best.ratio > ours.ratio else "; no candidate measured did better")
    return Notice(
        f"compression settings of {table.qualified} (segment_by {ours.candidate.segment_text()}, order_by "
        f"{ours.candidate.order_text()}) make the data larger: {ours.ratio:.2f}x on a sample of "
        f"{advice.sample_rows} rows of {advice.sample_chunk} ({_size(ours.before_bytes)} -> "
        f"{_size(ours.after_bytes)}){better} (`lifecycle advise {table.qualified}` shows every candidate)")


def holds_rows(conn: psycopg.Connection, table: TableName) -> bool:
    """Whether the table holds a row: one statement, where the advisor asks five before it finds no chunk to
    sample (a new table, as in a first `up`)."""
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table.ident)).fetchone()
    return bool(row and row[0])
