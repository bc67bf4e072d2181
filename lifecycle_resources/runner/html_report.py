"""`lifecycle report --html FILE`: one self-contained HTML page of what the lifecycle did to a database.

Plotly draws the charts; its JavaScript is embedded once in the page, so the file opens offline (no CDN at view
time). Each section also carries its figures as a plain table (id'd by section), the numbers as the database
holds them: people can read exact values, and tests can check them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import psycopg
from psycopg.rows import dict_row

from .manager import human_bytes

SECTIONS = ("storage", "compression-over-time", "executions", "archive-cleanup", "statistics")

_QUERIES = {
    "storage": "SELECT hypertable, total_chunks, compressed_chunks, before_bytes, after_bytes, compression_ratio, "
               "space_saved_pct FROM lifecycle.compression_statistics ORDER BY hypertable",
    "metrics": "SELECT captured_at, hypertable, compressed_chunks, before_bytes, after_bytes, "
               "CASE WHEN after_bytes > 0 THEN round(before_bytes::numeric / after_bytes, 2) END AS ratio "
               "FROM lifecycle.compression_metrics ORDER BY hypertable, captured_at",
    "executions": "SELECT started_at, finished_at, policy_name, hypertable, kind, status, chunks_affected, error, "
                  "dry_run FROM lifecycle.lifecycle_executions ORDER BY started_at",
    "archives": "SELECT hypertable, state, count(*) AS chunks, coalesce(sum(row_count), 0)::bigint AS row_count, "
                "coalesce(sum(bytes), 0)::bigint AS bytes FROM lifecycle.archive_metadata "
                "GROUP BY hypertable, state ORDER BY hypertable, state",
    "cleanups": "SELECT rule_name, hypertable, runs, dry_runs, failures, rows_matched_total, rows_deleted_total, "
                "last_status FROM lifecycle.cleanup_statistics ORDER BY hypertable, rule_name",
    "statistics": "SELECT * FROM lifecycle.get_lifecycle_statistics() ORDER BY hypertable",
}


@dataclass(frozen=True)
class ReportData:
    rows: dict[str, list[dict[str, Any]]]
    generated_at: datetime
    database: str


def collect(conn: psycopg.Connection, database: str = "") -> ReportData:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = {key: cur.execute(query).fetchall() for key, query in _QUERIES.items()}
    return ReportData(rows, datetime.now(timezone.utc), database)


def _table(section: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    empty = "" if rows else f'<tr><td colspan="{len(headers)}" class="none">(none recorded)</td></tr>'
    return f'<table id="{section}-table"><thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table>'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


class _Figures:
    """Plotly's JavaScript goes into the first figure only; the others reuse it."""

    def __init__(self) -> None:
        self._first = True

    def html(self, fig: go.Figure) -> str:
        fig.update_layout(template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50})
        out = pio.to_html(fig, include_plotlyjs=self._first, full_html=False, config={"displaylogo": False})
        self._first = False
        return out


def _storage(data: ReportData, figs: _Figures) -> str:
    rows = data.rows["storage"]
    fig = go.Figure([go.Bar(name="before compression", x=[r["hypertable"] for r in rows],
                            y=[r["before_bytes"] for r in rows]),
                     go.Bar(name="after compression", x=[r["hypertable"] for r in rows],
                            y=[r["after_bytes"] for r in rows])])
    fig.update_layout(barmode="group", title="Compressed chunks: bytes before and after compression",
                      yaxis_title="bytes")
    table = _table("storage", ["hypertable", "chunks", "compressed chunks", "before bytes", "after bytes",
                               "before", "after", "ratio", "space saved %"],
                   [(r["hypertable"], r["total_chunks"], r["compressed_chunks"], r["before_bytes"], r["after_bytes"],
                     human_bytes(r["before_bytes"]), human_bytes(r["after_bytes"]), r["compression_ratio"],
                     r["space_saved_pct"]) for r in rows])
    return figs.html(fig) + table


def _compression_over_time(data: ReportData, figs: _Figures) -> str:
    rows = data.rows["metrics"]
    fig = go.Figure()
    for table in sorted({r["hypertable"] for r in rows}):
        mine = [r for r in rows if r["hypertable"] == table]
        fig.add_trace(go.Scatter(name=table, mode="lines+markers", x=[r["captured_at"] for r in mine],
                                 y=[None if r["ratio"] is None else float(r["ratio"]) for r in mine]))
    fig.update_layout(title="Compression ratio over time (lifecycle.compression_metrics)",
                      yaxis_title="before / after")
    return figs.html(fig) + _table(
        "compression-over-time", ["captured at", "hypertable", "compressed chunks", "before bytes", "after bytes",
                                  "ratio"],
        [(r["captured_at"], r["hypertable"], r["compressed_chunks"], r["before_bytes"], r["after_bytes"], r["ratio"])
         for r in rows])


def _executions(data: ReportData, figs: _Figures) -> str:
    rows = data.rows["executions"]
    fig = go.Figure()
    style = {"succeeded": ("circle", "#2a9d8f"), "dry_run": ("circle-open", "#8d99ae"), "failed": ("x", "#d62828")}
    for status, (symbol, color) in style.items():
        mine = [r for r in rows if r["status"] == status]
        if mine:
            fig.add_trace(go.Scatter(
                name=status, mode="markers", x=[r["started_at"] for r in mine], y=[r["policy_name"] for r in mine],
                marker={"symbol": symbol, "color": color, "size": 12 if status == "failed" else 9},
                text=[f"{r['kind']} of {r['hypertable']}: {r['chunks_affected']} chunks"
                      + (f"<br>{html.escape(r['error'] or '')}" if status == "failed" else "") for r in mine],
                hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>"))
    failed = sum(1 for r in rows if r["status"] == "failed")
    fig.update_layout(title=f"Executions over time ({len(rows)} runs, {failed} failed, marked x)")
    return figs.html(fig) + _table(
        "executions", ["started", "policy", "hypertable", "kind", "status", "chunks", "error"],
        [(r["started_at"], r["policy_name"], r["hypertable"], r["kind"], r["status"], r["chunks_affected"],
          r["error"]) for r in reversed(rows[-200:])])


def _archive_cleanup(data: ReportData, figs: _Figures) -> str:
    archives, cleanups = data.rows["archives"], data.rows["cleanups"]
    tables = sorted({r["hypertable"] for r in archives} | {r["hypertable"] for r in cleanups})
    fig = go.Figure([
        go.Bar(name="rows archived", x=tables,
               y=[sum(r["row_count"] for r in archives if r["hypertable"] == t and r["state"] != "failed")
                  for t in tables]),
        go.Bar(name="rows deleted by cleanup", x=tables,
               y=[sum(r["rows_deleted_total"] or 0 for r in cleanups if r["hypertable"] == t) for t in tables])])
    fig.update_layout(barmode="group", title="Archive and cleanup totals", yaxis_title="rows")
    return (figs.html(fig)
            + "<h3>Archives (lifecycle.archive_metadata)</h3>"
            + _table("archive", ["hypertable", "state", "chunks", "rows", "bytes"],
                     [(r["hypertable"], r["state"], r["chunks"], r["row_count"], r["bytes"]) for r in archives])
            + "<h3>Cleanups (lifecycle.cleanup_statistics)</h3>"
            + _table("cleanup", ["rule", "hypertable", "runs", "dry runs", "failures", "rows matched",
                                 "rows deleted", "last status"],
                     [(r["rule_name"], r["hypertable"], r["runs"], r["dry_runs"], r["failures"],
                       r["rows_matched_total"], r["rows_deleted_total"], r["last_status"]) for r in cleanups]))


STATISTICS_COLUMNS = ("hypertable", "total_chunks", "compressed_chunks", "before_bytes", "after_bytes",
                      "compression_ratio", "policies", "executions", "failed_executions", "last_execution_at",
                      "chunks_dropped", "chunks_compressed")


def _statistics(data: ReportData, _figs: _Figures) -> str:
    return _table("statistics", STATISTICS_COLUMNS,
                  [tuple(r[c] for c in STATISTICS_COLUMNS) for r in data.rows["statistics"]])


_TITLES = {"storage": ("Storage before and after compression", _storage),
           "compression-over-time": ("Compression ratio over time", _compression_over_time),
           "executions": ("Policy executions", _executions),
           "archive-cleanup": ("Archive and cleanup totals", _archive_cleanup),
           "statistics": ("Statistics (lifecycle.get_lifecycle_statistics)", _statistics)}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .3em; }
section { margin-top: 2.5em; } table { border-collapse: collapse; font-size: 13px; margin-top: .6em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; } th { background: #f4f4f4; }
td.none { color: #888; font-style: italic; }
"""


def render(data: ReportData) -> str:
    figs = _Figures()
    parts = []
    for section in SECTIONS:
        title, build = _TITLES[section]
        parts.append(f'<section id="{section}"><h2>{html.escape(title)}</h2>{build(data, figs)}</section>')
    where = f" of {html.escape(data.database)}" if data.database else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Timescale Lifecycle report"
            f"</title><style>{_STYLE}</style></head><body><h1>Timescale Lifecycle report{where}</h1>"
            f"<p class=\"meta\">generated {_cell(data.generated_at)}</p>{''.join(parts)}</body></html>\n")


def write(conn: psycopg.Connection, path: Path, database: str = "") -> Path:
    path.write_text(render(collect(conn, database)), encoding="utf-8")
    return path.resolve()
