"""Continuous aggregates: one model for declared and read state, the catalog reader, a pure planner and an
executor. The declared query is normalised by TimescaleDB itself: a probe aggregate is created WITH NO DATA in
a rolled-back savepoint and its stored definition is what the live aggregate's definition is compared with, so
spelling ('1 minute' or '00:01:00', `public.t` or `t`) is never a change, and what TimescaleDB refuses (no
time_bucket, a refresh window under two buckets) is refused at preview."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from .declared import Peers, Target
from .intervals import Window
from .jobs import FIRST_USER_JOB, JOBS_FROM, ONE_RELATION, delete_job, one_relation, _value as interval_value
from ..errors import InputError
from ..identifiers import TableName

REFRESH_PROC = "policy_refresh_continuous_aggregate"


class RefreshPolicy(BaseModel):
    """add_continuous_aggregate_policy's arguments; an offset None is unbounded (NULL)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    start_offset: Window | None
    end_offset: Window | None
    schedule_interval: Window
    job_id: int | None = None

    def same(self, other: RefreshPolicy) -> bool:
        return (self.start_offset, self.end_offset, self.schedule_interval) == (
            other.start_offset, other.end_offset, other.schedule_interval)

    def describe(self) -> str:
        return (f"start_offset {_text(self.start_offset)}, end_offset {_text(self.end_offset)}, "
                f"every {self.schedule_interval.text}")


def _text(window: Window | None) -> str:
    return "unbounded" if window is None else window.text


class CaggState(BaseModel):
    """A continuous aggregate, declared or read. `definition` is TimescaleDB's own text of the query."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    view: str
    definition: str
    materialized_only: bool = True
    compress: bool = False
    refresh: RefreshPolicy | None = None
    source: str | None = None       # the hypertable (or, hierarchical, the aggregate) it reads
    time_column: str | None = None  # the bucket column
    materialization: str | None = None


# --------------------------------------------------------------------------------------------------
# Reading

_READ = """
SELECT ca.view_definition, ca.materialized_only, ca.compression_enabled,
       coalesce(p.view_schema || '.' || p.view_name, ca.hypertable_schema || '.' || ca.hypertable_name),
       d.column_name, ca.materialization_hypertable_schema || '.' || ca.materialization_hypertable_name
  FROM timescaledb_information.continuous_aggregates ca
  LEFT JOIN timescaledb_information.continuous_aggregates p  -- hierarchical: the parent aggregate, by name
    ON (p.materialization_hypertable_schema, p.materialization_hypertable_name)
       = (ca.hypertable_schema, ca.hypertable_name)
  LEFT JOIN timescaledb_information.dimensions d
    ON (d.hypertable_schema, d.hypertable_name) = (ca.materialization_hypertable_schema,
                                                   ca.materialization_hypertable_name)
   AND d.dimension_number = 1
 WHERE ca.view_schema = %s AND ca.view_name = %s
"""

_REFRESH = """
SELECT j.id,
       CASE jsonb_typeof(j.config -> 'start_offset') WHEN 'string' THEN (j.config ->> 'start_offset')::interval::text
            WHEN 'number' THEN j.config ->> 'start_offset' END,
       CASE jsonb_typeof(j.config -> 'end_offset') WHEN 'string' THEN (j.config ->> 'end_offset')::interval::text
            WHEN 'number' THEN j.config ->> 'end_offset' END,
       jsonb_typeof(j.config -> 'start_offset') = 'number', j.schedule_interval::text""" + JOBS_FROM + """
 WHERE j.proc_name = %s""" + ONE_RELATION + """
   AND j.id >= %s
 ORDER BY j.id
"""


def _window(text: str | None, integer: bool) -> Window | None:
    if text is None:
        return None
    return Window.of_integer(int(text)) if integer else Window.from_output(text)


def read_refresh(conn: psycopg.Connection, view: TableName) -> list[RefreshPolicy]:
    rows = conn.execute(_REFRESH, (REFRESH_PROC, *one_relation(view.schema, view.name), FIRST_USER_JOB)).fetchall()
    return [RefreshPolicy(job_id=r[0], start_offset=_window(r[1], bool(r[3])), end_offset=_window(r[2], bool(r[3])),
                          schedule_interval=Window.from_output(r[4])) for r in rows]


def read(conn: psycopg.Connection, view: TableName) -> CaggState | None:
    """The aggregate as TimescaleDB holds it; None when there is none of that name (gone)."""
    row = conn.execute(_READ, (view.schema, view.name)).fetchone()
    if row is None:
        return None
    refresh = read_refresh(conn, view)
    return CaggState(view=view.qualified, definition=row[0], materialized_only=bool(row[1]), compress=bool(row[2]),
                     refresh=refresh[0] if refresh else None, source=row[3], time_column=row[4],
                     materialization=row[5])


# Which names are continuous aggregates, and which aggregates read a hypertable, from TimescaleDB's own catalog
# tables: each policy asks both, and the information views (_READ) cost ten times more on the embedded server.
_AGGREGATES = sql.SQL("""
SELECT ca.user_view_schema, ca.user_view_name, h.schema_name, h.table_name
  FROM _timescaledb_catalog.continuous_agg ca
  JOIN _timescaledb_catalog.hypertable h ON h.id = ca.raw_hypertable_id
 WHERE {where}
 ORDER BY 1, 2
""")


_read_once = threading.local()


@contextmanager
def aggregates_read_once() -> Iterator[None]:
    """Within the block (one policy's plan, which asks whether its target is an aggregate and then which
    aggregates read it), both questions about a name are answered by one query, asked once."""
    outer = getattr(_read_once, "memo", None)
    _read_once.memo = {}
    try:
        yield
    finally:
        _read_once.memo = outer


def near_read(name: TableName) -> catalog.Read:
    """The query of _near(), for catalog.bundle()."""
    where = sql.SQL("(ca.user_view_schema = %s AND ca.user_view_name = %s) OR (h.schema_name = %s AND h.table_name = %s)")
    return catalog.Read("aggregates near", name.qualified, _AGGREGATES.format(where=where), (name.schema, name.name) * 2)


def _near(conn: psycopg.Connection, name: TableName) -> list[tuple[str, str, str, str]]:
    """The aggregates named `name` and those reading `name`: (view schema, view, source schema, source)."""
    def load() -> list[tuple[str, str, str, str]]:
        return catalog.rows(conn, near_read(name))  # type: ignore[return-value]
    memo: dict[tuple[str, str], list[tuple[str, str, str, str]]] | None = getattr(_read_once, "memo", None)
    if memo is None:
        return load()
    if (name.schema, name.name) not in memo:
        memo[(name.schema, name.name)] = load()
    return memo[(name.schema, name.name)]


def is_aggregate(conn: psycopg.Connection, view: TableName) -> bool:
    def one() -> bool:
        return any((r[0], r[1]) == (view.schema, view.name) for r in _near(conn, view))

    def schema() -> dict[str, bool]:
        rows = conn.execute(_AGGREGATES.format(where=sql.SQL("ca.user_view_schema = %s")), (view.schema,))
        return {row[1]: True for row in rows.fetchall()}

    return bool(catalog.per_schema(conn, "continuous aggregates", view, one, schema))


def aggregates_over(conn: psycopg.Connection, source: TableName) -> list[str]:
    """The aggregates reading `source` directly, 'schema.view', in name order."""
    def one() -> list[str]:
        return [f"{r[0]}.{r[1]}" for r in _near(conn, source) if (r[2], r[3]) == (source.schema, source.name)]

    def schema() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for row in conn.execute(_AGGREGATES.format(where=sql.SQL("h.schema_name = %s")), (source.schema,)).fetchall():
            out.setdefault(row[3], []).append(f"{row[0]}.{row[1]}")
        return out

    return catalog.per_schema(conn, "aggregates by source", source, one, schema) or []


def policy_target(conn: psycopg.Connection, name: str, peers: Peers) -> Target | None:
    """A continuous aggregate as the target of a compression or retention policy (None: not an aggregate)."""
    try:
        view = TableName.parse(name)
    except ValueError:
        return None
    row = conn.execute(_READ, (view.schema, view.name)).fetchone() if is_aggregate(conn, view) else None
    promised = peers.promised or {}
    declared_compress = promised.get("continuous_aggregate") == "true" and promised.get("compress") == "true"
    if row is None:
        if promised.get("continuous_aggregate") == "true":
            return Target(table=view, time_column=promised["time_column"], column_type=promised["column_type"],
                          compression_enabled=declared_compress)
        return None
    return Target(table=view, time_column=row[4] or "bucket", column_type="timestamptz",
                  compression_enabled=bool(row[2]) or declared_compress)


@dataclass(frozen=True)
class Cost:
    """What recreating an aggregate throws away and recomputes."""

    rows: int
    first_bucket: datetime | None
    last_bucket: datetime | None
    source: str | None
    source_from: datetime | None  # the oldest raw row left: buckets before it cannot be recomputed

    def describe(self) -> str:
        if not self.rows:
            return "it holds no materialized rows"
        text = (f"drops its {self.rows} materialized rows (buckets {self.first_bucket:%Y-%m-%d %H:%M} to "
                f"{self.last_bucket:%Y-%m-%d %H:%M}) and recomputes them from {self.source}")
        if self.source_from is None:
            return text + ", which holds no rows now: all of them are lost"
        if self.first_bucket is not None and self.source_from > self.first_bucket:
            return text + (f"; {self.source} only holds rows from {self.source_from:%Y-%m-%d %H:%M}: the buckets "
                           "before that are lost")
        return text


def dependents(conn: psycopg.Connection, state: CaggState) -> tuple[str, ...]:
    """The aggregates that read this one (hierarchical): dropping it would need CASCADE."""
    if state.materialization is None:
        return ()
    mat = TableName.parse(state.materialization)
    rows = conn.execute("SELECT view_schema || '.' || view_name FROM timescaledb_information.continuous_aggregates "
                        "WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY 1",
                        (mat.schema, mat.name)).fetchall()
    return tuple(r[0] for r in rows)


def cost(conn: psycopg.Connection, state: CaggState) -> Cost:
    """Counted now, at preview, from the materialization hypertable and the source."""
    if state.materialization is None or state.time_column is None:
        return Cost(0, None, None, state.source, None)
    mat = TableName.parse(state.materialization)
    row = conn.execute(sql.SQL("SELECT count(*), min({c}), max({c}) FROM {t}").format(
        c=sql.Identifier(state.time_column), t=sql.Identifier(mat.schema, mat.name))).fetchone()
    assert row is not None
    source_from = None
    if state.source:
        src = TableName.parse(state.source)
        dim = conn.execute("SELECT column_name FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                           "AND hypertable_name = %s ORDER BY dimension_number LIMIT 1",
                           (src.schema, src.name)).fetchone()
        parent = read(conn, src) if dim is None else None
        column = dim[0] if dim else (parent.time_column if parent else None)
        if column:
            found = conn.execute(sql.SQL("SELECT min({}) FROM {}").format(
                sql.Identifier(column), sql.Identifier(src.schema, src.name))).fetchone()
            source_from = found[0] if found else None
    return Cost(int(row[0]), row[1], row[2], state.source, source_from)


# --------------------------------------------------------------------------------------------------
# Normalising a declared query, checked by TimescaleDB


class ProbeFailed(Exception):
    def __init__(self, field: str, message: str, missing_relation: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.missing_relation = missing_relation


class _Rollback(Exception):
    pass


def probe(conn: psycopg.Connection, info: catalog.ServerInfo, view: TableName, query: str,
          refresh: RefreshPolicy | None) -> tuple[str, str | None, str | None]:
    """(definition, source, time column) TimescaleDB gives the declared query, from an aggregate created WITH
    NO DATA (with the refresh policy) in a savepoint that is rolled back: nothing stays in the database."""
    name = "_lifecycle_probe_" + hashlib.sha1(f"{view.qualified}\0{query}".encode()).hexdigest()[:12]
    probe_view = TableName(view.schema, name)
    found: list[CaggState | None] = []
    try:
        with conn.transaction():
            _create(conn, probe_view, query)
            if refresh is not None:
                with conn.transaction():
                    _add_refresh(conn, info, probe_view, refresh)
            found.append(read(conn, probe_view))
            raise _Rollback
    except _Rollback:
        pass
    except psycopg.errors.UndefinedTable as exc:
        raise ProbeFailed("query", _first_line(exc), missing_relation=True) from None
    except psycopg.Error as exc:
        field = "refresh_policy" if "refresh" in str(exc) or "offset" in str(exc) else "query"
        raise ProbeFailed(field, _first_line(exc)) from None
    state = found[0]
    assert state is not None
    return state.definition, state.source, state.time_column


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Operations


@dataclass(frozen=True)
class CreateCagg:
    view: TableName
    query: str
    declared: CaggState

    def describe(self) -> str:
        return (f"create continuous aggregate {self.view} WITH NO DATA "
                f"(materialized_only={str(self.declared.materialized_only).lower()})")


@dataclass(frozen=True)
class RecreateCagg:
    destructive: ClassVar[bool] = True
    view: TableName
    query: str
    declared: CaggState
    cost: Cost
    dropped_jobs: tuple[int, ...]

    def describe(self) -> str:
        jobs = (f"; its other policy jobs {list(self.dropped_jobs)} are dropped with it (their resources add them "
                "again at the next up)") if self.dropped_jobs else ""
        return (f"recreate continuous aggregate {self.view} (its query changed: cannot be altered in place): "
                f"{self.cost.describe()}{jobs}")


@dataclass(frozen=True)
class SetOption:
    view: TableName
    option: str     # materialized_only, compress
    value: bool
    existing: bool

    def describe(self) -> str:
        return f"set timescaledb.{self.option} = {str(self.value).lower()} on {self.view} " \
               f"(was {str(self.existing).lower()})"


@dataclass(frozen=True)
class AddRefresh:
    view: TableName
    policy: RefreshPolicy

    def describe(self) -> str:
        return f"add refresh policy on {self.view} ({self.policy.describe()})"


@dataclass(frozen=True)
class AlterRefresh:
    view: TableName
    job_id: int
    policy: RefreshPolicy
    existing: RefreshPolicy

    def describe(self) -> str:
        changes = [f"{f} {_text(getattr(self.existing, f))} -> {_text(getattr(self.policy, f))}"
                   for f in ("start_offset", "end_offset", "schedule_interval")
                   if getattr(self.existing, f) != getattr(self.policy, f)]
        return f"alter job {self.job_id} (refresh policy of {self.view}): {', '.join(changes)}"


@dataclass(frozen=True)
class RemoveRefresh:
    destructive: ClassVar[bool] = True
    view: TableName
    job_id: int

    def describe(self) -> str:
        return f"delete job {self.job_id} (refresh policy of {self.view}); the materialized rows stay"


@dataclass(frozen=True)
class Refresh:
    """Run after the apply transaction commits (refresh_continuous_aggregate cannot run inside one)."""

    view: TableName
    start_offset: Window | None  # None and whole: everything the source holds
    end_offset: Window | None
    whole: bool

    def describe(self) -> str:
        if self.whole:
            return f"refresh {self.view} over all the rows of its source (first materialization)"
        return (f"refresh {self.view} from {_text(self.start_offset)} ago to {_text(self.end_offset)} ago "
                "(first materialization, the refresh policy's window)")


@dataclass(frozen=True)
class DropCagg:
    destructive: ClassVar[bool] = True
    view: TableName

    def describe(self) -> str:
        return f"drop continuous aggregate {self.view} and its materialized rows (drop_on_delete=True)"


CaggOperation = CreateCagg | RecreateCagg | SetOption | AddRefresh | AlterRefresh | RemoveRefresh | Refresh


def plan(declared: CaggState, query: str, actual: CaggState | None, *, with_data: bool,
         allow_recreate: bool, resource: str | None, recreate_cost: Cost | None = None,
         other_jobs: tuple[int, ...] = (), readers: tuple[str, ...] = ()) -> list[CaggOperation]:
    """Pure. Create when absent; recreate (only when allowed) when the query changed; otherwise converge the
    options and the refresh policy in place (alter_job keeps the job id)."""
    view = TableName.parse(declared.view)
    if actual is None or actual.definition != declared.definition:
        ops: list[CaggOperation] = []
        if actual is None:
            ops.append(CreateCagg(view, query, declared))
        else:
            assert recreate_cost is not None
            op = RecreateCagg(view, query, declared, recreate_cost, other_jobs)
            if not allow_recreate:
                raise InputError(resource, "query", query, f"{op.describe()}",
                                 "allow_recreate=True to recreate it, or the query it has now")
            if readers:
                raise InputError(resource, "query", query,
                                 f"{view} cannot be recreated while the continuous aggregates {list(readers)} read it "
                                 "(it would drop them too)",
                                 "drop those first (drop_on_delete=True on their resource, then remove it), or "
                                 "the query it has now")
            ops.append(op)
        if declared.compress:
            ops.append(SetOption(view, "compress", True, False))
        if not declared.materialized_only:
            ops.append(SetOption(view, "materialized_only", False, True))
        if declared.refresh is not None:
            ops.append(AddRefresh(view, declared.refresh))
        if with_data or actual is not None:
            ops.append(Refresh(view, None, None, whole=True))
        elif declared.refresh is not None:
            ops.append(Refresh(view, declared.refresh.start_offset, declared.refresh.end_offset, whole=False))
        return ops
    ops = [SetOption(view, option, getattr(declared, option), getattr(actual, option))
           for option in ("materialized_only", "compress") if getattr(declared, option) != getattr(actual, option)]
    if declared.refresh is None and actual.refresh is not None:
        assert actual.refresh.job_id is not None
        ops.append(RemoveRefresh(view, actual.refresh.job_id))
    elif declared.refresh is not None and actual.refresh is None:
        ops.append(AddRefresh(view, declared.refresh))
    elif declared.refresh is not None and actual.refresh is not None and not declared.refresh.same(actual.refresh):
        assert actual.refresh.job_id is not None
        ops.append(AlterRefresh(view, actual.refresh.job_id, declared.refresh, actual.refresh))
    return ops


def retention_overlap(resource: str | None, field: str, value: Any, drop_after: Window, view: str,
                      start_offset: Window | None, source: str) -> InputError | None:
    """Retention on the source erasing what the aggregate still refreshes over: buckets older than drop_after
    would be recomputed from no raw rows, and a refresh deletes them from the aggregate."""
    if start_offset is not None and drop_after.span >= start_offset.span:
        return None
    reach = "all the way back (start_offset unbounded)" if start_offset is None else \
        f"from {start_offset} ago"
    overlap = "everything older than" if start_offset is None else f"between {start_offset} ago and"
    return InputError(resource, field, value,
                      f"the retention policy of {source} drops chunks older than {drop_after}, but the refresh "
                      f"policy of continuous aggregate {view} refreshes {reach}: the aggregated buckets {overlap} "
                      f"{drop_after} ago would be erased at its next refresh",
                      f"drop_after at least the refresh policy's start_offset, or a start_offset of at most "
                      f"{drop_after}")


def refreshed_over(conn: psycopg.Connection, source: TableName) -> list[tuple[str, RefreshPolicy]]:
    """The aggregates reading `source` directly, with their refresh policy: (view, policy)."""
    out = []
    for view in aggregates_over(conn, source):
        for policy in read_refresh(conn, TableName.parse(view))[:1]:
            out.append((view, policy))
    return out


# --------------------------------------------------------------------------------------------------
# Executor


def _regclass(view: TableName) -> sql.Composable:
    return sql.SQL("format('%I.%I', {}::text, {}::text)::regclass").format(sql.Literal(view.schema),
                                                                            sql.Literal(view.name))


def _offset(window: Window | None) -> sql.Composable:
    return sql.SQL("NULL") if window is None else interval_value(window)


def _create(conn: psycopg.Connection, view: TableName, query: str) -> None:
    # The query is the user's SQL by design (as a view's body it cannot be a parameter); it runs with the
    # rights of the stack's connection, like any migration the user would write.
    conn.execute(sql.SQL("CREATE MATERIALIZED VIEW {} WITH (timescaledb.continuous) AS {} WITH NO DATA").format(
        sql.Identifier(view.schema, view.name), sql.SQL(query.strip().rstrip(";"))))  # type: ignore[arg-type]


def _add_refresh(conn: psycopg.Connection, info: catalog.ServerInfo, view: TableName, policy: RefreshPolicy) -> None:
    conn.execute(sql.SQL("SELECT {}({}, start_offset => {}, end_offset => {}, schedule_interval => {})").format(
        info.fn("add_continuous_aggregate_policy"), _regclass(view), _offset(policy.start_offset),
        _offset(policy.end_offset), _offset(policy.schedule_interval)))


def _config_value(window: Window | None) -> sql.Composable:
    if window is None:
        return sql.SQL("'null'::jsonb")
    if window.integer:
        return sql.SQL("to_jsonb({})").format(sql.Literal(window.micros))
    return sql.SQL("to_jsonb(({})::text)").format(_offset(window))


@functools.singledispatch
def execute(op: Any, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    raise TypeError(f"no executor for {op!r}")


@execute.register
def _(op: CreateCagg, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    _create(conn, op.view, op.query)


@execute.register
def _(op: RecreateCagg, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(op.view.schema, op.view.name)))
    _create(conn, op.view, op.query)


@execute.register
def _(op: SetOption, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("ALTER MATERIALIZED VIEW {} SET ({} = {})").format(
        sql.Identifier(op.view.schema, op.view.name), sql.SQL(f"timescaledb.{op.option}"),
        sql.Literal(op.value)))


@execute.register
def _(op: AddRefresh, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    _add_refresh(conn, info, op.view, op.policy)


@execute.register
def _(op: AlterRefresh, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL(
        "SELECT {}({job}, schedule_interval => {si}, config => j.config || jsonb_build_object("
        "'start_offset', {start}, 'end_offset', {end}))"
        " FROM timescaledb_information.jobs j WHERE j.job_id = {job}").format(
        info.fn("alter_job"), job=sql.Literal(op.job_id), si=_offset(op.policy.schedule_interval),
        start=_config_value(op.policy.start_offset), end=_config_value(op.policy.end_offset)))


@execute.register
def _(op: RemoveRefresh, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    delete_job(conn, info, op.job_id)


@execute.register
def _(op: DropCagg, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    conn.execute(sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(op.view.schema, op.view.name)))


@execute.register
def _(op: Refresh, conn: psycopg.Connection, info: catalog.ServerInfo) -> None:
    """Outside any transaction (autocommit connection)."""
    if op.whole:
        window = (sql.SQL("NULL"), sql.SQL("NULL"))
    else:
        window = tuple(sql.SQL("now() - {}").format(_offset(w)) if w is not None else sql.SQL("NULL")
                       for w in (op.start_offset, op.end_offset))  # type: ignore[assignment]
    conn.execute(sql.SQL("CALL {}({}, {}, {})").format(
        info.fn("refresh_continuous_aggregate"), _regclass(op.view), *window))
