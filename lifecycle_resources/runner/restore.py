"""Restore archived rows: every object of the range is verified before any row is loaded, then each object's
rows in [from, to) are loaded into a side table (default <table>_restored, same columns), one transaction per
object, recorded in lifecycle.archive_restores. Rows of ranges already restored from the same object into the
same table are skipped, so restoring twice adds nothing.

Restoring into the hypertable itself needs an active hold covering the range (runner/archive/holds.py): without
one the next run would find the rows expiring again, archive them a second time and drop them. It is refused
while a TimescaleDB retention job runs on the table (that job knows nothing of holds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..db.connection import connect
from ..errors import LifecycleError
from ..identifiers import TableName
from ..reconcile import archive_stores, caggs
from ..reconcile.locks import lock_table
from .archive import export, holds
from .archive.archiver import time_axis
from .archive.catalog import store_for
from .archive.load import load_temp
from .archive.store import ArchiveStore
from .archive.timeaxis import Bound, LenientTimestamptz, TimeAxis
from .archive.verify import object_problems
from .archive.workdir import scratch
from .progress import StepProgress


@dataclass
class Restored:
    chunk: str
    location: str
    rows_loaded: int

    def describe(self) -> str:
        return f"{self.chunk}: {self.rows_loaded} rows loaded from {self.location}"


@dataclass
class AggregateRefreshed(Restored):
    """A continuous aggregate refreshed after the load (restore --refresh-aggregates): `chunk` names the view."""

    def describe(self) -> str:
        return self.location


def _objects(conn: psycopg.Connection, table: TableName, axis: TimeAxis, start: Bound,
             end: Bound) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.adapters.register_loader("timestamptz", LenientTimestamptz)  # recorded integer bounds may pass 9999
        return cur.execute(sql.SQL(
            "SELECT * FROM lifecycle.archives WHERE hypertable = %(t)s AND state IN ('verified', 'dropped') "
            "AND range_start < {end} AND range_end > {start} ORDER BY range_start, chunk_name").format(
                end=axis.recorded(sql.Placeholder("end")), start=axis.recorded(sql.Placeholder("start"))),
            {"t": table.qualified, "end": end, "start": start}).fetchall()


def _target(conn: psycopg.Connection, table: TableName, axis: TimeAxis, into: str | None, lo: Bound,
            hi: Bound) -> TableName:
    target = TableName.parse(into, table.schema) if into else TableName(table.schema, f"{table.name}_restored")
    if target == table:
        _check_into_hypertable(conn, table, axis, lo, hi)
        return target
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)").format(
        target.ident, table.ident))
    return target


def _check_into_hypertable(conn: psycopg.Connection, table: TableName, axis: TimeAxis, lo: Bound, hi: Bound) -> None:
    where = f"restore --into {table.qualified} (the archived hypertable itself) of [{lo}, {hi})"
    if not holds.holds_installed(conn) or holds.covering(conn, table, lo, hi, axis) is None:
        raise LifecycleError(f"{where}: refused without an active hold covering the range (the next run would "
                             "archive these rows again and drop them); add one first: `lifecycle hold add --table "
                             f"{table.qualified} --from .. --to ..`, or restore into a side table (the default is "
                             "<table>_restored)")
    job = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                       "AND hypertable_schema = %s AND hypertable_name = %s", (table.schema, table.name)).fetchone()
    if job is not None:
        raise LifecycleError(f"{where}: refused: TimescaleDB retention job {job[0]} runs on the table and ignores "
                             "holds (it would drop the restored rows); declare its RetentionPolicy with "
                             "archive=ArchiveStore(...) so that only `lifecycle run` drops, or restore into a side "
                             "table")


def restore(dsn: str, table: str, start: str | Bound, end: str | Bound, into: str | None = None,
            stores: dict[str, ArchiveStore] | None = None, progress: StepProgress | None = None,
            refresh_aggregates: bool = False, **store_options: Any) -> list[Restored]:
    """Load the archived rows of `table` in [start, end) into `into`; what each object added. `progress` hears
    of 2 steps per object: its verification, then its load. `refresh_aggregates` (a restore into the hypertable
    itself only): then refresh every continuous aggregate reading it over [start, end), each an AggregateRefreshed
    entry (0 rows) at the end."""
    stores = dict(stores or {})
    with connect(dsn) as conn, scratch("lifecycle-restore-") as tmp:
        name, axis = time_axis(conn, table)
        lo, hi = holds.bounds(conn, axis, start, end, "restore")
        if refresh_aggregates and (TableName.parse(into, name.schema) if into else None) != name:
            raise LifecycleError(f"restore --refresh-aggregates of {name.qualified}: only with --into "
                                 f"{name.qualified} (the hypertable itself): the aggregates read it, not a side table")
        objects = _objects(conn, name, axis, lo, hi)
        registered = archive_stores.registered_options(conn)
        problems: list[str] = []
        steps = 2 * len(objects)
        for i, obj in enumerate(objects, 1):
            store = store_for(stores, obj["store_url"], store_options, registered)
            if progress:
                progress(i, steps, f"verify {obj['chunk_name']}", None)
            found = object_problems(store, obj["object_key"], size=obj["bytes"], sha256=obj["sha256"],
                                    rows=obj["row_count"], workdir=tmp)
            problems += found
            if progress:
                progress(i, steps, f"verify {obj['chunk_name']}",
                         f"{store.location(obj['object_key'])}: " + ("; ".join(found) if found else "verified"))
        if problems:
            raise LifecycleError("restore refused, nothing loaded: " + "; ".join(problems) +
                                 " (run `lifecycle archive verify` for the whole archive)")
        with conn.transaction():
            target = _target(conn, name, axis, into, lo, hi)
        done = []
        for i, obj in enumerate(objects, len(objects) + 1):
            if progress:
                progress(i, steps, f"load {obj['chunk_name']}", None)
            done.append(_load(conn, name, axis, target, obj, stores[obj["store_url"]], lo, hi, tmp))
            if progress:
                progress(i, steps, f"load {obj['chunk_name']}", done[-1].describe())
        if refresh_aggregates:
            done += _refresh_aggregates(conn, name, lo, hi)
        return done


def _refresh_aggregates(conn: psycopg.Connection, table: TableName, lo: Bound,
                        hi: Bound) -> list[AggregateRefreshed]:
    """TimescaleDB refreshes the buckets lying wholly inside [lo, hi) from the raw rows now there (each call
    commits on its own: refresh_continuous_aggregate cannot run inside a transaction)."""
    done = []
    for view in caggs.aggregates_over(conn, table):
        conn.execute(sql.SQL("CALL refresh_continuous_aggregate({}::regclass, %s, %s)").format(
            sql.Literal(TableName.parse(view).ident.as_string(conn))), (lo, hi))
        done.append(AggregateRefreshed(view, f"continuous aggregate {view} refreshed over [{lo}, {hi})", 0))
    return done


def _load(conn: psycopg.Connection, table: TableName, axis: TimeAxis, target: TableName, obj: dict[str, Any],
          store: ArchiveStore, lo: Bound, hi: Bound, workdir: Path) -> Restored:
    local = store.fetch(obj["object_key"], workdir)
    if local is None:
        raise LifecycleError(f"{store.location(obj['object_key'])}: vanished after it was verified")
    cols = [c.name for c in export.columns(conn, table.ident.as_string(conn))]
    col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    t = sql.Identifier(axis.column)
    with conn.transaction():
        lock_table(conn, target)
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        loaded_rows = load_temp(conn, table.ident, cols, local)
        loaded = conn.execute(sql.SQL(
            "INSERT INTO {target} ({cols}) SELECT {cols} FROM {loaded} x WHERE x.{t} >= %(lo)s "
            "AND x.{t} < %(hi)s AND NOT EXISTS (SELECT 1 FROM lifecycle.archive_restores r WHERE r.hypertable = "
            "%(ht)s AND r.chunk_name = %(chunk)s AND r.into_table = %(into)s AND x.{t} >= {r_from} "
            "AND x.{t} < {r_to})").format(target=target.ident, cols=col_list, t=t, loaded=loaded_rows,
                                          r_from=axis.decoded(sql.SQL("r.range_from")),
                                          r_to=axis.decoded(sql.SQL("r.range_to"))),
            {"lo": lo, "hi": hi, "ht": table.qualified, "chunk": obj["chunk_name"], "into": target.qualified}).rowcount
        conn.execute(sql.SQL("INSERT INTO lifecycle.archive_restores (hypertable, chunk_name, object_key, into_table, "
                             "range_from, range_to, rows_loaded) VALUES (%(ht)s, %(chunk)s, %(key)s, %(into)s, {lo}, "
                             "{hi}, %(rows)s)").format(lo=axis.recorded(sql.Placeholder("lo")),
                                                       hi=axis.recorded(sql.Placeholder("hi"))),
                     {"ht": table.qualified, "chunk": obj["chunk_name"], "key": obj["object_key"],
                      "into": target.qualified, "lo": lo, "hi": hi, "rows": loaded})
        conn.execute("INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, range_start, "
                     "range_end, row_count, bytes, location, checksum, state, object_key) VALUES (clock_timestamp(), "
                     "%s, %s, %s, %s, %s, %s, %s, %s, 'restored', %s)",
                     (table.qualified, obj["chunk_name"], obj["range_start"], obj["range_end"], loaded, obj["bytes"],
                      store.location(obj["object_key"]), obj["sha256"], obj["object_key"]))
    return Restored(obj["chunk_name"], store.location(obj["object_key"]), loaded)
