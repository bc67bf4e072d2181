"""The archiver never drops raw rows a continuous aggregate's refresh policy would still refresh: a refresh over a
range whose raw rows are gone deletes the aggregated buckets of that range. The preview refuses such a retention
(reconcile/caggs.retention_overlap); this is the same rule at run time, read afresh from the catalog, so a refresh
policy added or widened by hand since `pulumi up` is seen: before a chunk is exported, and again inside the
drop's transaction.

A refresh policy reaches back to now() - start_offset (on integer time, the table's integer_now - start_offset;
an unbounded start_offset reaches everything). A chunk ending after that point holds rows it refreshes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from ...identifiers import TableName
from .timeaxis import Bound, show

# Every refresh policy of an aggregate reading the table directly (an aggregate on an aggregate reads the other's
# materialization hypertable), with how far back it reaches.
_REFRESHES = sql.SQL("""
SELECT ca.user_view_schema || '.' || ca.user_view_name, j.job_id, j.config ->> 'start_offset',
       CASE WHEN jsonb_typeof(j.config -> 'start_offset') IS DISTINCT FROM 'null'
                 AND j.config ? 'start_offset' THEN {reach} END
  FROM _timescaledb_catalog.continuous_agg ca
  JOIN _timescaledb_catalog.hypertable h ON h.id = ca.raw_hypertable_id
  JOIN timescaledb_information.jobs j ON j.proc_name = 'policy_refresh_continuous_aggregate'
   AND j.hypertable_schema = ca.user_view_schema AND j.hypertable_name = ca.user_view_name
 WHERE h.schema_name = %(schema)s AND h.table_name = %(name)s
 ORDER BY 1, 2
""")


@dataclass(frozen=True)
class Refresh:
    view: str
    job_id: int
    start_offset: str | None
    reach: Bound | None  # None: unbounded, every chunk

    def refreshes(self, range_end: Bound) -> bool:
        return self.reach is None or range_end > self.reach  # type: ignore[operator]

    def refusal(self, chunk: str, range_end: Bound) -> str:
        back = ("all the way back (start_offset unbounded)" if self.reach is None
                else f"from {self.start_offset} ago ({show(self.reach)})")
        return (f"chunk {chunk} (ending {show(range_end)}) not archived or dropped: the refresh policy (job "
                f"{self.job_id}) of continuous aggregate {self.view} refreshes {back}, and dropping these raw rows "
                "would erase its aggregated buckets at its next refresh; lengthen drop_after past the refresh "
                "policy's start_offset, or shorten its start_offset")


def refreshes_over(conn: psycopg.Connection, table: TableName, integer: bool) -> list[Refresh]:
    if integer:
        reach = sql.SQL("lifecycle._integer_now({}::regclass) - (j.config ->> 'start_offset')::bigint").format(
            sql.Literal(table.ident.as_string(conn)))
    else:
        reach = sql.SQL("now() - (j.config ->> 'start_offset')::interval")
    rows = conn.execute(_REFRESHES.format(reach=reach), {"schema": table.schema, "name": table.name}).fetchall()
    return [Refresh(r[0], r[1], r[2], r[3]) for r in rows]


def stored_in(conn: psycopg.Connection, relation: str) -> str:
    """The hypertable whose chunks a retention of `relation` drops: a continuous aggregate's are its
    materialization hypertable's (an aggregate reading that aggregate refreshes from them)."""
    name = TableName.parse(relation)
    row = conn.execute("SELECT materialization_hypertable_schema || '.' || materialization_hypertable_name FROM "
                       "timescaledb_information.continuous_aggregates WHERE view_schema = %s AND view_name = %s",
                       (name.schema, name.name)).fetchone()
    return row[0] if row else relation


def refusal(refreshes: list[Refresh], chunk: str, range_end: Bound) -> str | None:
    """Why `chunk` must stay (the first refresh policy reaching it), None when none does."""
    for refresh in refreshes:
        if refresh.refreshes(range_end):
            return refresh.refusal(chunk, range_end)
    return None


def chunk_refusal(conn: psycopg.Connection, table: TableName, chunk: str, range_end: Bound) -> str | None:
    """refusal() read now, for one chunk (inside the drop's transaction)."""
    return refusal(refreshes_over(conn, table, not isinstance(range_end, datetime)), chunk, range_end)
