"""Readable reports of what the database holds, for `lifecycle status` and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from ..reconcile import catalog

_HYPERTABLES = sql.SQL("""
SELECT format('%I.%I', h.hypertable_schema, h.hypertable_name) AS hypertable,
       d.column_name AS time_column,
       coalesce(d.time_interval::text, d.integer_interval::text) AS chunk_interval,
       (SELECT count(*) FROM timescaledb_information.chunks c
         WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name) AS chunks,
       (SELECT count(*) FROM timescaledb_information.chunks c
         WHERE c.hypertable_schema = h.hypertable_schema AND c.hypertable_name = h.hypertable_name
           AND c.is_compressed) AS compressed,
       pg_size_pretty({hypertable_size}(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass)) AS size
  FROM timescaledb_information.hypertables h
  JOIN timescaledb_information.dimensions d
    ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name
   AND d.dimension_number = 1
 ORDER BY 1
""")


def hypertables(conn: psycopg.Connection) -> tuple[list[str], list[tuple[Any, ...]]]:
    info = catalog.server_info(conn)
    catalog.require_timescaledb(info, "lifecycle status")
    cur = conn.execute(_HYPERTABLES.format(hypertable_size=info.fn("hypertable_size")))
    return [c.name for c in cur.description or ()], cur.fetchall()


_POLICIES = """
SELECT format('%I.%I', j.hypertable_schema, j.hypertable_name) AS hypertable,
       CASE j.proc_name WHEN 'policy_compression' THEN 'compression'
                        WHEN 'policy_retention' THEN 'retention' ELSE j.proc_name END AS policy,
       j.job_id,
       coalesce(j.config ->> 'compress_after', j.config ->> 'drop_after',
                j.config ->> 'compress_created_before', j.config ->> 'drop_created_before') AS older_than,
       j.schedule_interval::text AS every,
       j.scheduled,
       to_char(s.last_run_started_at, 'YYYY-MM-DD HH24:MI:SS TZ') AS last_run,
       s.last_run_status,
       s.total_runs AS runs,
       s.total_failures AS failures,
       (SELECT e.err_message FROM timescaledb_information.job_errors e
         WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC LIMIT 1) AS last_error
  FROM timescaledb_information.jobs j
  -- what TimescaleDB's own scheduler recorded (empty where no scheduler runs, as on the embedded server)
  LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
 WHERE j.job_id >= 1000 AND j.hypertable_name IS NOT NULL
 ORDER BY 1, 2
"""


def policies(conn: psycopg.Connection) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = conn.execute(_POLICIES)
    return [c.name for c in cur.description or ()], cur.fetchall()


def has_lifecycle_schema(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('lifecycle.lifecycle_policy_status') IS NOT NULL").fetchone()
    return bool(row and row[0])


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)
