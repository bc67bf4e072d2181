"""`lifecycle report --html`: one self-contained page whose sections hold the database's own numbers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lifecycle_resources.runner.html_report import SECTIONS, STATISTICS_COLUMNS, _cell
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import sql_run
from tests.test_health import lifecycle

pytestmark = pytest.mark.integration


class Tables(HTMLParser):
    """The page's tables by id, as rows of cell texts; the ids of its sections; its script sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: list[str] = []
        self.script_sources: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "section":
            self.sections.append(a.get("id") or "")
        elif tag == "script" and a.get("src"):
            self.script_sources.append(a["src"] or "")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None


def rows_for(tables: Tables, table_id: str, first: str) -> list[list[str]]:
    return [r for r in tables.tables[table_id] if r and r[0] == first]


def test_report_html_sections_hold_the_database_numbers(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                        tmp_path: Path) -> None:
    rel, label = f'"{schema}".ticks', f"{schema}.ticks"
    sql_run(tsdb_dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, sym text, v int)")
    sql_run(tsdb_dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(tsdb_dsn, f"INSERT INTO {rel} SELECT now() - g * interval '10 minutes', 's' || (g % 5), g "
                      "FROM generate_series(1, 2880) g")
    sql_run(tsdb_dsn, f"ALTER TABLE {rel} SET (timescaledb.compress, timescaledb.compress_segmentby = 'sym')")
    compress = f"{schema}-compression"
    sql_run(tsdb_dsn, "SELECT lifecycle.create_lifecycle_compression_policy(%s::regclass, '7 days', NULL, "
                      "'proj/test', %s, %s)", (rel, schema, compress))
    broken = f"{schema}-broken"
    sql_run(tsdb_dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, 'retention', "
                      "'{\"drop_after\": \"not an interval\"}', NULL, 'proj', 'test', %s)", (broken, label, schema))
    manager = DataLifecycleManager(tsdb_dsn)
    assert manager.run(policy=compress)[0].status == "succeeded"
    assert manager.run(policy=broken)[0].status == "failed"
    sql_run(tsdb_dsn, "SELECT lifecycle.register_cleanup_rule(%s, %s, 'invalid', "
                      "'{\"checks\": [{\"column\": \"v\", \"check\": \"range\", \"min\": 10}]}')",
            (f"{schema}-cleanup", label))
    sql_run(tsdb_dsn, "SELECT lifecycle.execute_cleanup_operation(%s, false)", (f"{schema}-cleanup",))
    sql_run(tsdb_dsn, "INSERT INTO lifecycle.archive_metadata (archived_at, hypertable, chunk_name, row_count, bytes, "
                      "location, state) VALUES (now(), %s, 'chunk_1', 144, 65536, 'file:///x', 'verified')", (label,))

    out = lifecycle(tsdb_dsn, "report", "--html", str(tmp_path / "report.html"))
    assert out.returncode == 0, out.stderr
    page_path = Path(out.stdout.strip())
    assert page_path == (tmp_path / "report.html").resolve()
    page = page_path.read_text()
    parsed = Tables()
    parsed.feed(page)

    assert parsed.sections == list(SECTIONS)
    # self-contained: plotly.js is in the page, nothing is loaded from a network at view time
    assert parsed.script_sources == []
    # (the bundle mentions map-tile and topojson URLs: used by geo charts only, none of which is drawn here)
    assert not re.search(r"<(link|img|iframe)[^>]+(href|src)=", page)
    assert len(re.findall(r"Plotly\.newPlot\(", page)) == 4
    assert page.count("* plotly.js v") == 1 and len(page) > 3_000_000  # plotly.js itself, embedded once

    [(chunks, compressed, before, after, ratio)] = sql_run(
        tsdb_dsn, "SELECT total_chunks, compressed_chunks, before_bytes, after_bytes, compression_ratio "
                  "FROM lifecycle.compression_statistics WHERE hypertable = %s", (label,))
    assert compressed > 0 and before > 0
    [storage] = rows_for(parsed, "storage-table", label)
    assert storage[1:5] + [storage[7]] == [str(chunks), str(compressed), str(before), str(after), str(ratio)]

    metrics = sql_run(tsdb_dsn, "SELECT captured_at, before_bytes, after_bytes FROM lifecycle.compression_metrics "
                                "WHERE hypertable = %s ORDER BY captured_at", (label,))
    shown = [r for r in parsed.tables["compression-over-time-table"] if len(r) > 1 and r[1] == label]
    assert [(r[0], r[3], r[4]) for r in shown] == [(_cell(t), str(b), str(a)) for t, b, a in metrics]

    executions = [r for r in parsed.tables["executions-table"] if len(r) > 2 and r[2] == label]
    assert sorted((r[1], r[4]) for r in executions) == sorted([(compress, "succeeded"), (broken, "failed")])
    [failed] = [r for r in executions if r[4] == "failed"]
    assert "interval" in failed[6]

    assert rows_for(parsed, "archive-table", label) == [[label, "verified", "1", "144", "65536"]]
    [(matched, deleted)] = sql_run(tsdb_dsn, "SELECT rows_matched_total, rows_deleted_total "
                                             "FROM lifecycle.cleanup_statistics WHERE hypertable = %s", (label,))
    assert deleted == 9
    assert rows_for(parsed, "cleanup-table", f"{schema}-cleanup")[0][5:7] == [str(matched), str(deleted)]

    [stats] = [r for r in manager.statistics(label)]
    [shown_stats] = rows_for(parsed, "statistics-table", label)
    assert shown_stats == [_cell(stats[c]) for c in STATISTICS_COLUMNS]
    assert shown_stats[STATISTICS_COLUMNS.index("failed_executions")] == "1"


def test_report_html_without_the_lifecycle_schema_is_refused(tmp_path: Path) -> None:
    from tests.conftest import fresh_server

    with fresh_server(tmp_path / "server") as dsn:
        out = lifecycle(dsn, "report", "--html", str(tmp_path / "r.html"))
    assert out.returncode == 1 and "lifecycle schema is not installed" in out.stderr
    assert not (tmp_path / "r.html").exists()
