"""Reads what TimescaleDB actually holds, normalised to the form the declared models use.

Each reader is one query. A missing object reads as None ("gone"), never as an error.

In the dynamic-provider host (one process per `pulumi` command, db.pool.enabled()) reads made outside a
transaction (check and refresh, which many resources make at once) are served from one query per schema,
kept for CACHE_SECONDS at most and dropped whenever this process starts or ends a write (create, update,
delete): see per_schema(). Reads inside a transaction (apply, under the table's lock) always query.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from .intervals import Window
from ..db import pool
from ..errors import UnsupportedDatabase
from ..identifiers import TableName

T = TypeVar("T")
MIN_VERSION = (2, 23, 0)  # the oldest tested: 2.23 (embedded) and 2.26 (native)
TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})
INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
UUID_TIME_SINCE = (2, 22, 0)  # a UUIDv7 column as the time dimension (intervals, read from its timestamp bits)


class ServerInfo(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    timescaledb_version: str | None
    license: str | None
    extension_schema: str | None

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.timescaledb_version or "0")

    def fn(self, name: str) -> sql.Identifier:
        """A TimescaleDB function, qualified by the schema the extension lives in."""
        return sql.Identifier(self.extension_schema or "public", name)


@functools.lru_cache(maxsize=64)
def parse_version(text: str) -> tuple[int, ...]:
    """Pure, so kept: every session() checks the server's version (require_timescaledb)."""
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def server_info(conn: psycopg.Connection) -> ServerInfo:
    """What the server is. Also fixes the session's IntervalStyle, so that every interval the catalog prints
    in this session is in the one form intervals.Window.from_output parses (no extra round trip)."""
    row = conn.execute(
        """
        SELECT e.extversion, n.nspname, current_setting('timescaledb.license', true),
               set_config('IntervalStyle', 'postgres', false)
        FROM (SELECT 1) AS one
        LEFT JOIN pg_extension e ON e.extname = 'timescaledb'
        LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
        """
    ).fetchone()
    assert row is not None
    return ServerInfo(timescaledb_version=row[0], extension_schema=row[1], license=row[2])


def require_timescaledb(info: ServerInfo, feature: str = "this resource") -> None:
    """Refuse clearly on a server without TimescaleDB, on the Apache edition, or on a version too old."""
    if info.timescaledb_version is None:
        raise UnsupportedDatabase(
            "TimescaleDB is not installed in this database: run `CREATE EXTENSION timescaledb` "
            f"(TimescaleDB {'.'.join(map(str, MIN_VERSION))} or newer, Community edition)"
        )
    if info.version_tuple < MIN_VERSION:
        raise UnsupportedDatabase(
            f"TimescaleDB {info.timescaledb_version} is too old: {feature} needs "
            f"{'.'.join(map(str, MIN_VERSION))} or newer"
        )
    if (info.license or "").lower() == "apache":
        raise UnsupportedDatabase(
            "this TimescaleDB runs the Apache-licensed edition (timescaledb.license = 'apache'), which has no "
            f"compression, policies or continuous aggregates; {feature} needs the Community edition "
            "(timescaledb.license = 'timescale')"
        )


class Column(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    name: str
    type_name: str  # pg_type.typname, e.g. timestamptz, int8
    type_text: str  # format_type(), e.g. "timestamp with time zone"


class TimeDimension(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    column: str
    column_type: str
    interval_value: int  # microseconds for time types, the raw integer for integer types
    interval_text: str


class TableSnapshot(BaseModel):
    """A table and, when it is one, its hypertable facts: all a hypertable operation needs, in one read."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    table: TableName
    relkind: str
    columns: tuple[Column, ...]
    time_dimension: TimeDimension | None
    compression_enabled: bool = False
    # Of a table that is not a hypertable: its unique indexes (primary key included), each with its columns, in
    # name order (what decides whether TimescaleDB can partition it on given columns).
    unique_indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_hypertable(self) -> bool:
        return self.time_dimension is not None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


# From TimescaleDB's catalog tables rather than its information views (dimensions, hypertables), with the views'
# own rules: the first dimension by id; its interval as an interval for the time types, else the raw integer;
# compression enabled when compression_state = 1, for a hypertable that is not an aggregate's materialisation.
# The views compute every hypertable before filtering (window functions), and their plans cost more than the
# query: 14 ms for one table on the embedded server, this 3 to 4. tests/test_catalog_reads.py compares the two
# on both servers.
_SNAPSHOT = sql.SQL("""
SELECT c.relname, c.relkind::text,
       (SELECT json_agg(json_build_array(a.attname, t.typname, format_type(a.atttypid, a.atttypmod))
                        ORDER BY a.attnum)
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_build_array(
                 d.column_name, d.column_type::text,
                 CASE WHEN d.column_type <> ALL ({time_types}) THEN d.interval_length END,
                 CASE WHEN d.column_type = ANY ({time_types})
                      THEN _timescaledb_functions.to_interval(d.interval_length)::text END)
          FROM _timescaledb_catalog.dimension d WHERE d.hypertable_id = h.id ORDER BY d.id LIMIT 1),
       h.compression_state = 1 AND c.relkind IN ('r', 'p')
         AND NOT EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_agg ca WHERE ca.mat_hypertable_id = h.id),
       (SELECT json_agg(json_build_array(i.relname, ARRAY(SELECT a.attname FROM pg_attribute a
                                                           WHERE a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)))
                        ORDER BY i.relname)
          FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = c.oid AND x.indisunique AND h.id IS NULL)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN _timescaledb_catalog.hypertable h ON h.schema_name = n.nspname AND h.table_name = c.relname
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') {one}
""")
_uuid_is_time: dict[str, bool] = {}


def _time_types(conn: psycopg.Connection) -> sql.Composable:
    """The types whose dimension interval the dimensions view shows as an interval: the date/time types, and uuid
    (UUIDv7) where the server's own view does (2.26 does, 2.23 does not). Asked once per server and process."""
    key = _server_key(conn)
    if key not in _uuid_is_time:
        row = conn.execute("SELECT strpos(pg_get_viewdef('timescaledb_information.dimensions'::regclass), "
                           "$$'uuid'::regtype$$) > 0").fetchone()
        _uuid_is_time[key] = bool(row and row[0])
    names = ["timestamp", "timestamptz", "date"] + (["uuid"] if _uuid_is_time[key] else [])
    return sql.SQL("ARRAY[{}]::regtype[]").format(sql.SQL(", ").join(sql.Literal(n) for n in names))


def _snapshot_query(conn: psycopg.Connection, one: str) -> sql.Composed:
    return _SNAPSHOT.format(one=sql.SQL(one), time_types=_time_types(conn))  # type: ignore[arg-type]


def snapshot_read(conn: psycopg.Connection, table: TableName) -> Read:
    """table_snapshot()'s query of one table, for bundle()."""
    return Read("tables", table.qualified, _snapshot_query(conn, "AND c.relname = %s"), (table.schema, table.name))


def table_snapshot(conn: psycopg.Connection, table: TableName) -> TableSnapshot | None:
    def query(one: str) -> sql.Composed:
        return _snapshot_query(conn, one)

    def one() -> TableSnapshot | None:
        found = rows(conn, snapshot_read(conn, table))
        return _snapshot(table.schema, found[0]) if found else None

    def schema() -> dict[str, TableSnapshot]:
        rows = conn.execute(query(""), (table.schema,)).fetchall()
        return {row[0]: _snapshot(table.schema, row) for row in rows}

    return per_schema(conn, "tables", table, one, schema)


def _snapshot(schema: str, row: tuple[Any, ...]) -> TableSnapshot:
    name, relkind, columns, dim, compressed, unique = row
    time_dimension = None
    if dim is not None and dim[0] is not None:
        col_type = _short_type(dim[1])
        stored = (Window.of_integer(int(dim[2])) if dim[2] is not None
                  else Window.from_output(dim[3]).as_chunk_interval())
        time_dimension = TimeDimension(
            column=dim[0], column_type=col_type, interval_value=stored.micros, interval_text=stored.text
        )
    return TableSnapshot(
        table=TableName(schema=schema, name=name),
        relkind=relkind,
        columns=tuple(Column(name=c[0], type_name=c[1], type_text=c[2]) for c in columns or ()),
        time_dimension=time_dimension,
        compression_enabled=bool(compressed),
        unique_indexes=tuple((u[0], tuple(u[1])) for u in unique or ()),
    )


_TYPE_ALIASES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "bigint": "int8",
    "integer": "int4",
    "smallint": "int2",
}


def _short_type(text: str) -> str:
    return _TYPE_ALIASES.get(text, text)


def compression_enabled(conn: psycopg.Connection, table: TableName) -> bool:
    snap = table_snapshot(conn, table)
    return bool(snap and snap.compression_enabled)


# --------------------------------------------------------------------------------------------------
# Reads shared by the resources of one command: what is cached, for how long, and why it is safe.

CACHE_SECONDS = 2.0  # the longest a batched read is reused: a few engine steps of one command, never more
_cache_lock = threading.Lock()
_generation = 0      # bumped by every write this process starts or ends: older reads are not reused
_writers = 0         # writes in flight in this process: while any runs, nothing is cached
_written = False     # this process has written (it runs an `up`): from then on, reads are per object
_entries: dict[tuple[str, ...], tuple[int, float, Any]] = {}
_loading: dict[tuple[str, ...], threading.Lock] = {}


@contextmanager
def writing() -> Iterator[None]:
    """Around any operation that may change the database: batched reads are dropped before and after it."""
    global _generation, _writers, _written
    with _cache_lock:
        _written = True
        _writers += 1
        _generation += 1
        _entries.clear()
    try:
        yield
    finally:
        with _cache_lock:
            _writers -= 1
            _generation += 1
            _entries.clear()


def _server_key(conn: psycopg.Connection) -> str:
    """Which server and database the connection is on (conn.info.dsn would parse the conninfo each time)."""
    pg = conn.pgconn
    return f"{pg.host!r}:{pg.port!r}/{pg.db!r}/{pg.user!r}"


def shared_reads(conn: psycopg.Connection) -> bool:
    """Whether a read on `conn` may be served from (and stored in) the cache of this process. Never once this
    process has written (an `up`): every write drops the cache, so a read of a whole schema or of the whole
    ownership ledger would serve a resource or two before it is dropped, and costs more the more tables and
    resources there are (quadratic over an `up`: at 400 resources, most of the provider's database time)."""
    return (pool.enabled() and not _written and _writers == 0
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)


def cached(conn: psycopg.Connection, what: str, key: str, load: Callable[[], T]) -> T:
    """`load()`, shared by the readers of this process for CACHE_SECONDS when the read may be shared (outside
    a transaction, no write in flight, in the provider host). Parallel readers of one key wait for the first
    one's query instead of repeating it."""
    if not shared_reads(conn):
        return load()
    entry_key = (_server_key(conn), what, key)
    with _cache_lock:
        gate = _loading.setdefault(entry_key, threading.Lock())
    with gate:
        with _cache_lock:
            generation, hit = _generation, _entries.get(entry_key)
        if hit is not None and hit[0] == generation and time.monotonic() - hit[1] < CACHE_SECONDS:
            return hit[2]
        started = time.monotonic()
        value = load()
        with _cache_lock:
            if generation == _generation and _writers == 0:
                _entries[entry_key] = (generation, started, value)
        return value


_present: set[tuple[str, str]] = set()


def present(conn: psycopg.Connection, what: str, probe: Callable[[], bool], *, created_here: bool = True) -> bool:
    """Whether an object this product installs once and never drops (the ownership ledger, the lifecycle
    schema's functions) exists. Once seen in the provider host, not asked again by this process (one command).
    Seen inside a transaction only counts when that transaction cannot have created it (`created_here`
    False): a rollback could undo it."""
    key = (_server_key(conn), what)
    if key in _present and pool.enabled():
        return True
    # Absent, within one engine call that cannot create it (bundle_scope): asked once, not by each reader.
    scope = None if created_here else _bundles.get()
    absent = (key[0], "absent", what)
    if scope is not None and absent in scope:
        return False
    # Asked already by the plan's reads (presence_read), in this engine call: no round trip of its own (the answer
    # serves every later asker of the call). Else, of what no caller creates (`created_here` False: the lifecycle
    # schema's objects, made by LifecycleSchema's own create), an answer is shared like any read where reads are
    # shared (a preview or refresh, before any write of this process: cached()), for CACHE_SECONDS at most: each
    # RetentionPolicy asks whether the lifecycle schema's declarations exist, and a stack without that schema paid
    # one round trip per policy for the same "no".
    fetched = scope.get((key[0], "present", what)) if scope is not None else None
    if fetched is not None:
        found = bool(fetched and fetched[0][0])
    else:
        found = probe() if created_here else cached(conn, "present", what, probe)
    if scope is not None and not found:
        scope[absent] = []
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if found and pool.enabled() and (idle or not created_here):
        _present.add(key)
    return found


def presence_read(conn: psycopg.Connection, what: str, probe: str) -> Read | None:
    """present()'s question about `what` (a product object no caller creates: created_here False), as a read a plan
    sends with its others (bundle()); present() then answers from its row in the same engine call. None when
    present() would not ask: seen present by this process, or absent already in this engine call. `probe`: a
    constant query returning one boolean. A stack without the lifecycle schema asked it alone, once or twice per
    policy created (its absence is not remembered beyond one engine call: see present())."""
    key = (_server_key(conn), what)
    scope = _bundles.get()
    if scope is None or (key in _present and pool.enabled()) or (key[0], "absent", what) in scope:
        return None
    return Read("present", what, sql.SQL(probe), ())  # type: ignore[arg-type]


def per_schema(conn: psycopg.Connection, what: str, table: TableName, one: Callable[[], T | None],
               schema: Callable[[], dict[str, T]]) -> T | None:
    """One object of `table`: from one read of its whole schema when shared reads are allowed (cached()),
    else by its own query."""
    if not shared_reads(conn):
        return one()
    return cached(conn, what, table.schema, schema).get(table.name)


# --------------------------------------------------------------------------------------------------
# Reads of one object's facts that go together, sent as one statement.

@dataclass(frozen=True)
class Read:
    """One reader's per-object query (positional parameters), named so that its reader finds its rows."""

    what: str
    key: str
    query: sql.Composable
    params: tuple[Any, ...]


_bundles: ContextVar[dict[tuple[str, str, str], list[tuple[Any, ...]]] | None] = ContextVar("bundles", default=None)


@contextmanager
def bundle_scope() -> Iterator[None]:
    """Within the block (one resource's check, or one apply), rows fetched by bundle() are served to the readers
    that ask for them, each once: a second read of the same object (a read-back after a write) queries again."""
    token = _bundles.set({})
    try:
        yield
    finally:
        _bundles.reset(token)


def bundle(conn: psycopg.Connection, reads: list[Read] | Callable[[], list[Read]],
           write: tuple[sql.Composable, tuple[Any, ...]] | None = None) -> None:
    """Run `reads` as one statement (each a LEFT JOIN LATERAL of the others, its rows numbered), for the readers
    of the enclosing bundle_scope(). Each query keeps its own parsing: its columns come back as they would alone.
    Without a scope, or when reads are shared per schema (a preview), nothing is fetched: each reader asks alone.
    `write` (an INSERT, in the caller's transaction) runs first, in the same statement as a data-modifying WITH,
    always exactly once; the reads do not see its row (they read other tables). `reads` may be a function giving
    them: then they are not even composed where nothing would be fetched (every resource of a preview)."""
    found = _bundles.get()
    fetching = found is not None and not shared_reads(conn)
    if fetching and callable(reads):
        reads = reads()
    if not fetching or callable(reads) or len(reads) < (1 if write else 2):
        if write is not None:
            conn.execute(*write)
        return
    joins = sql.SQL(" ").join(
        sql.SQL("LEFT JOIN LATERAL (SELECT row_number() OVER () AS {n}, q.* FROM ({q}) q) {r} ON true").format(
            n=sql.Identifier(f"_read_{i}"), q=r.query, r=sql.Identifier(f"_r{i}")) for i, r in enumerate(reads))
    query = sql.SQL("SELECT * FROM (SELECT) AS one {}").format(joins)
    params = tuple(p for r in reads for p in r.params)
    if write is not None:
        query = sql.SQL("WITH written AS ({} RETURNING 1) {}").format(write[0], query)
        params = (*write[1], *params)
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description or ()]
    starts = [names.index(f"_read_{i}") for i in range(len(reads))] + [len(names)]
    fetched = cur.fetchall()
    server = _server_key(conn)
    for i, r in enumerate(reads):
        numbered = {row[starts[i]]: row[starts[i] + 1:starts[i + 1]] for row in fetched if row[starts[i]] is not None}
        found[(server, r.what, r.key)] = [numbered[n] for n in sorted(numbered)]


def rows(conn: psycopg.Connection, read: Read) -> list[tuple[Any, ...]]:
    """The rows of `read`: fetched by bundle() in this scope (once), else by its own query."""
    found = _bundles.get()
    if found is not None:
        hit = found.pop((_server_key(conn), read.what, read.key), None)
        if hit is not None:
            return hit
    return conn.execute(read.query, read.params).fetchall()
