"""The compression advisor (`lifecycle advise TABLE`, DataLifecycleManager-free: advise(dsn, table)).

Settings are measured, not guessed: one sample chunk of the table is copied into a scratch hypertable in a
scratch schema of its own, and compressed once per candidate (the current settings, and candidates derived
from the sample: segment-by columns whose cardinality leaves segments long enough to compress well, order-by on
the time column and on a low-cardinality column before it). Each candidate's ratio and compress time are
TimescaleDB's own figures (chunk_compression_stats) on the same rows. The scratch schema is dropped whatever
happens; the table itself is only read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import psycopg
from psycopg import sql

from ..db.connection import connect
from ..errors import LifecycleError
from ..identifiers import TableName
from ..reconcile import catalog, compression
from ..reconcile.compression import OrderItem

SCRATCH_PREFIX = "lifecycle_advisor_"
# A segment (one segment-by value in one chunk) compresses into batches of up to 1000 rows: a column whose
# values leave fewer rows than this per segment on average makes batches too short to compress well.
MIN_ROWS_PER_SEGMENT = 100
MAX_SEGMENT_COLUMNS = 3
_UNSEGMENTABLE = {"json", "jsonb", "bytea", "xml", "tsvector", "float4", "float8", "real", "double precision"}


@dataclass(frozen=True)
class Candidate:
    segment_by: tuple[str, ...]
    order_by: tuple[OrderItem, ...]
    label: str = ""

    @property
    def key(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.segment_by, tuple(o.render() for o in self.order_by)

    def segment_text(self) -> str:
        return ", ".join(self.segment_by) or "(none)"

    def order_items(self) -> list[str]:
        return [f"{o.column}{' DESC' if o.descending else ''}" for o in self.order_by]

    def order_text(self) -> str:
        return ", ".join(self.order_items())


@dataclass(frozen=True)
class Measurement:
    candidate: Candidate
    before_bytes: int
    after_bytes: int
    seconds: float

    @property
    def ratio(self) -> float:
        return self.before_bytes / self.after_bytes if self.after_bytes else 0.0

    @property
    def saved_pct(self) -> float:
        return 100 * (1 - self.after_bytes / self.before_bytes) if self.before_bytes else 0.0


@dataclass
class Advice:
    table: str
    sample_chunk: str
    sample_rows: int
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def best(self) -> Measurement | None:
        return max(self.measurements, key=lambda m: (m.ratio, -m.seconds), default=None)

    @property
    def current(self) -> Measurement | None:
        return next((m for m in self.measurements if m.candidate.label == "current"), None)

    def declaration(self, c: Candidate) -> str:
        """The candidate as the CompressionSettings to declare."""
        return (f"CompressionSettings(hypertable={self.table!r}, segment_by={list(c.segment_by)!r}, "
                f"order_by={c.order_items()!r})")

    def recommendation(self) -> str:
        best = self.best
        if best is None:
            return "no candidate could be measured"
        c = best.candidate
        declared = self.declaration(c)
        current = self.current
        if current is not None and current.candidate.key == c.key:
            return f"keep the current settings ({best.ratio:.2f}x on the sample): {declared}"
        versus = f", against {current.ratio:.2f}x for the current settings" if current else ""
        return f"recommended: {declared}: {best.ratio:.2f}x on the sample{versus}"


Progress = Callable[[int, int, Candidate, Measurement | None], None]


def advise(dsn: str, table: str, *, progress: Progress | None = None) -> Advice:
    """Measure the candidates on a sample chunk of `table` (schema.table); the scratch schema never outlives it."""
    name = TableName.parse(table)
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    with connect(dsn) as conn:
        conn.autocommit = True
        try:
            return _advise(conn, name, scratch, progress)
        finally:
            _drop_scratch(conn, dsn, scratch)


def advise_within(conn: psycopg.Connection, table: TableName, declared: compression.CompressionState,
                  row_cap: int, time_column: str | None = None, chunk_interval: str | int | None = None) -> Advice:
    """Measure `declared` (not yet applied) and the candidates on at most `row_cap` rows of a sample chunk, on
    a connection already in use (a provider's one pooled connection): all inside a transaction that is rolled
    back, so the scratch schema never exists outside it, whatever happens. A plain table that the program
    will make a hypertable on `time_column` is sampled too: its newest rows, in chunks of `chunk_interval`
    (TimescaleDB's default when None)."""
    scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    with conn.transaction(force_rollback=True):
        return _advise(conn, table, scratch, None, declared, row_cap, (time_column, chunk_interval))


def _drop_scratch(conn: psycopg.Connection, dsn: str, scratch: str) -> None:
    """Drop the scratch schema; through a new connection if this one broke on the way."""
    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(scratch))
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.execute(drop)
    except psycopg.Error:
        with connect(dsn) as fresh:
            fresh.autocommit = True
            fresh.execute(drop)


@dataclass(frozen=True)
class _Source:
    table: TableName
    time_column: str
    time_type: str
    interval: str | int
    columns: list[tuple[str, str]]      # (name, type) in table order, visible columns only
    current: Candidate | None
    plain: bool = False                 # not a hypertable yet: no chunk, the newest rows are the sample


_TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


def _source(conn: psycopg.Connection, table: TableName,
            to_be: tuple[str | None, str | int | None] = (None, None)) -> _Source:
    """The hypertable to sample; or, when `to_be` is (time column, chunk interval) that the program declares for
    a plain table, the table as it will be."""
    time_column, chunk_interval = to_be
    info = catalog.server_info(conn)
    catalog.require_timescaledb(info, "the compression advisor")
    row = conn.execute(
        "SELECT d.column_name, d.column_type::text, coalesce(d.time_interval::text, d.integer_interval::text) "
        "FROM timescaledb_information.dimensions d WHERE d.hypertable_schema = %s AND d.hypertable_name = %s "
        "AND d.dimension_number = 1", (table.schema, table.name)).fetchone()
    plain = row is None and time_column is not None
    if plain:
        snap = catalog.table_snapshot(conn, table)
        column = snap.column(time_column) if snap is not None else None
        if column is not None and column.type_text in _TIME_TYPES:
            row = (column.name, column.type_text, chunk_interval or "7 days")  # create_hypertable's default
    if row is None:
        raise LifecycleError(f"advise: {table} is not a hypertable; accepted: a hypertable as schema.table")
    columns = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table.schema, table.name)).fetchall()
    settings = compression.read_settings(conn, info, table)
    current = candidate_of(settings, row[0], "current") if settings is not None and settings.enabled else None
    interval = row[2] if row[1] in _TIME_TYPES and not isinstance(row[2], int) else int(row[2])
    return _Source(table, row[0], row[1], interval, [(c[0], c[1]) for c in columns], current, plain)


def candidate_of(settings: compression.CompressionState, time_column: str, label: str) -> Candidate:
    """Settings as a candidate; TimescaleDB's default order-by (time descending) when none is set."""
    return Candidate(settings.segment_by or (), tuple(OrderItem.parse(o) for o in settings.order_by or ())
                     or (OrderItem(time_column, True, True),), label)


def _sample_chunk(conn: psycopg.Connection, src: _Source) -> tuple[str, object, object]:
    """The newest chunk that is complete (its range ended), else the newest: its name and range."""
    row = conn.execute(
        "SELECT format('%%I.%%I', chunk_schema, chunk_name), coalesce(range_start::text, range_start_integer::text), "
        "coalesce(range_end::text, range_end_integer::text) FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = %s AND hypertable_name = %s "
        "ORDER BY (coalesce(range_end, 'infinity') <= now()) DESC, coalesce(range_end_integer, 0) DESC, "
        "range_end DESC NULLS LAST LIMIT 1", (src.table.schema, src.table.name)).fetchone()
    if row is None:
        raise LifecycleError(f"advise: {src.table} has no chunk to sample: insert data first")
    return row[0], row[1], row[2]


def _advise(conn: psycopg.Connection, table: TableName, scratch: str, progress: Progress | None,
            declared: compression.CompressionState | None = None, row_cap: int | None = None,
            to_be: tuple[str | None, str | int | None] = (None, None)) -> Advice:
    src = _source(conn, table, to_be)
    if declared is not None:
        src = replace(src, current=candidate_of(declared, src.time_column, "current"))
    chunk, lo, hi = (f"{table.qualified} (not a hypertable yet: its newest rows)", "-infinity", "infinity") \
        if src.plain else _sample_chunk(conn, src)
    sample = sql.Identifier(scratch, "sample")
    ext = catalog.server_info(conn).fn
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(sample, table.ident))
    conn.execute(sql.SQL("SELECT {}({}::regclass, {}(%s, %s::{}), create_default_indexes => false)").format(
        ext("create_hypertable"), sql.Literal(f"{scratch}.sample"), ext("by_range"),
        sql.SQL("interval" if isinstance(src.interval, str) else "bigint")), (src.time_column, str(src.interval)))
    time_col = sql.Identifier(src.time_column)
    # A capped sample is the newest rows of the chunk: a contiguous stretch of time, as a chunk is.
    cap = sql.SQL(" ORDER BY {} DESC LIMIT {}").format(time_col, sql.Literal(row_cap)) if row_cap else sql.SQL("")
    conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE {} >= %s AND {} < %s{}").format(
        sample, table.ident, time_col, time_col, cap), (lo, hi))
    conn.execute(sql.SQL("ANALYZE {}").format(sample))
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sample)).fetchone()[0]
    if rows == 0:
        raise LifecycleError(f"advise: the sample chunk {chunk} of {table} holds no rows")
    # The size of the rows as loaded, before any compression: every candidate is measured against it (a chunk
    # decompressed between candidates comes back larger than it was loaded).
    loaded = conn.execute(sql.SQL("SELECT sum(pg_total_relation_size(c))::bigint FROM {}({}::regclass) c").format(
        ext("show_chunks"), sql.Literal(f"{scratch}.sample"))).fetchone()[0]
    candidates = _candidates(conn, src, scratch, rows)
    advice = Advice(table.qualified, chunk, rows)
    for i, cand in enumerate(candidates, 1):
        if progress:
            progress(i, len(candidates), cand, None)
        measured = _measure(conn, scratch, cand, ext, int(loaded))
        advice.measurements.append(measured)
        if progress:
            progress(i, len(candidates), cand, measured)
    return advice


def _distinct(conn: psycopg.Connection, scratch: str, rows: int) -> dict[str, int]:
    """Distinct values per column of the sample, from its statistics (pg_stats: negative = a fraction)."""
    found = conn.execute("SELECT attname, n_distinct FROM pg_stats WHERE schemaname = %s AND tablename = 'sample'",
                         (scratch,)).fetchall()
    return {name: int(round(-nd * rows)) if nd < 0 else int(nd) for name, nd in found}


def _candidates(conn: psycopg.Connection, src: _Source, scratch: str, rows: int) -> list[Candidate]:
    time_desc = OrderItem(src.time_column, True, True)
    distinct = _distinct(conn, scratch, rows)
    segmentable = sorted(
        ((distinct.get(name, 0), name) for name, typ in src.columns
         if name != src.time_column and typ not in _UNSEGMENTABLE
         and 2 <= distinct.get(name, 0) <= rows / MIN_ROWS_PER_SEGMENT),
        reverse=True)[:MAX_SEGMENT_COLUMNS]
    found = [Candidate((), (time_desc,), "no segment-by")]
    for n, name in segmentable:
        found.append(Candidate((name,), (time_desc,), f"segment by {name} ({n} values)"))
    if segmentable:
        low = segmentable[-1][1]
        found.append(Candidate((), (OrderItem(low, False, False), time_desc), f"order by {low} first"))
    if len(segmentable) >= 2 and segmentable[0][0] * segmentable[1][0] <= rows / MIN_ROWS_PER_SEGMENT:
        pair = (segmentable[0][1], segmentable[1][1])
        found.append(Candidate(pair, (time_desc,), f"segment by {pair[0]}, {pair[1]}"))
    out = [src.current] if src.current else []
    for cand in found:
        if all(cand.key != c.key for c in out):
            out.append(cand)
    return out


def _measure(conn: psycopg.Connection, scratch: str, cand: Candidate,
             ext: Callable[[str], sql.Identifier], loaded: int) -> Measurement:
    sample = sql.Identifier(scratch, "sample")
    segment = ",".join(sql.Identifier(c).as_string(conn) for c in cand.segment_by)
    order = ",".join(o.sql_text(conn) for o in cand.order_by)
    conn.execute(sql.SQL("SELECT {}(format('%%I.%%I', chunk_schema, chunk_name)::regclass) "
                         "FROM timescaledb_information.chunks WHERE hypertable_schema = %s AND is_compressed").format(
        ext("decompress_chunk")), (scratch,))
    conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                         "timescaledb.compress_orderby = {})").format(sample, sql.Literal(segment),
                                                                      sql.Literal(order)))
    started = time.perf_counter()
    conn.execute(sql.SQL("SELECT {}(c) FROM {}({}::regclass) c").format(
        ext("compress_chunk"), ext("show_chunks"), sql.Literal(f"{scratch}.sample")))
    seconds = time.perf_counter() - started
    after = conn.execute(sql.SQL("SELECT sum(after_compression_total_bytes)::bigint FROM {}({}::regclass)").format(
        ext("chunk_compression_stats"), sql.Literal(f"{scratch}.sample"))).fetchone()[0]
    return Measurement(cand, loaded, int(after or 0), seconds)


def scratch_schemas(conn: psycopg.Connection) -> list[str]:
    """Scratch schemas present (none once every advise call has returned)."""
    return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                       (SCRATCH_PREFIX + "%",)).fetchall()]

