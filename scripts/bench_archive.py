"""Archive throughput against a plain COPY of the same rows, in the same run. Not part of `make test`.

    .venv/bin/python scripts/bench_archive.py [--rows 2000000] [--servers "native embedded"] [--compressed 2]
    .venv/bin/python scripts/bench_archive.py --dsn DSN      # a TimescaleDB you own (schema bench_archive)

Per server (started in a temporary directory on a free port, removed afterwards) it builds a trading-like
hypertable, bench_archive.trades (ts timestamptz, symbol text, price float8, size bigint, bid/ask float8,
exchange text, trade_id bigint, conditions int), `--rows` rows in 10 one-day chunks, all older than 30 days,
`--compressed` of them compressed. Then, in this order:

1. COPY: `COPY (SELECT <columns> FROM trades) TO STDOUT` read by psql into a pipe this script drains (text, the
   plain COPY, then FORMAT BINARY); a warm-up run first. COPY and export take turns, `--repeat` times (median). psql is the fastest client there is, so this is the
   server's own speed: the figure to beat.
2. export: each chunk to a Parquet file as the archive exports it (its snapshot's row count and hash, then the
   rows), nothing uploaded or dropped.
3. archive: `DataLifecycleManager.archive(older_than='30 days')` to a local directory store: snapshot, export,
   upload, verify (size, sha256, footer rows), manifest, and the drop after re-checking the chunk; of a fresh
   copy of the table each time (archiving drops its chunks), `--repeat` times, taking turns with the same run with
   the chunks' stages in sequence (the archiver before the export of chunk k+1 overlapped chunk k's upload,
   verification and drop).

Rows/s, MB/s (of the COPY text of the same rows, so that every line divides the same bytes) and the ratios to
the plain COPY (text: the issue's figure, target 70 %) and to COPY BINARY (faster on a native server) are printed, with the Parquet bytes and this process's peak RSS (the export streams record
batches: memory stays bounded whatever the row count).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import CREATED, embedded, given, native  # noqa: E402
from lifecycle_resources.db import migrations  # noqa: E402
from lifecycle_resources.db.native import pg_bindir  # noqa: E402
from lifecycle_resources.runner.archive import archiver, export, pipeline  # noqa: E402
from lifecycle_resources.runner.archive.store import LocalStore  # noqa: E402
from lifecycle_resources.runner.manager import DataLifecycleManager  # noqa: E402

SCHEMA = "bench_archive"
TABLE = f"{SCHEMA}.trades"
ARCHIVED = f"{SCHEMA}.trades_archived"  # a fresh copy of TABLE for each archive run
DAYS = 10
OLDER_THAN = "30 days"
COLUMNS = "ts, symbol, price, size, bid, ask, exchange, trade_id, conditions"


def build(dsn: str, rows: int, compressed: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            planned = migrations.plan(migrations.load(), migrations.applied(conn))
            migrations.apply(conn, planned.pending)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        conn.execute(f"CREATE TABLE {TABLE} (ts timestamptz NOT NULL, symbol text NOT NULL, price float8, "
                     "size bigint, bid float8, ask float8, exchange text, trade_id bigint, conditions int)")
        conn.execute("SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (TABLE,))
        per_day = rows // DAYS
        for day in range(DAYS):  # a day per statement: bounded memory in the embedded server
            conn.execute(
                f"INSERT INTO {TABLE} SELECT date_trunc('day', now()) - interval '40 days' "
                "- make_interval(days => %s) + g * (interval '1 day' / %s), "
                "(ARRAY['AAPL','MSFT','GOOG','AMZN','TSLA','NVDA','META','BRK.B'])[1 + g %% 8], "
                "round((100 + random() * 50)::numeric, 2)::float8, (random() * 1000)::bigint, "
                "100 + random() * 50, 100 + random() * 50, (ARRAY['XNAS','XNYS','ARCX'])[1 + g %% 3], "
                "g + %s::bigint * 100000000, g %% 16 FROM generate_series(0, %s - 1) g",
                (day, per_day, day, per_day))
        if compressed:
            conn.execute(f"ALTER TABLE {TABLE} SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')")
            conn.execute(f"SELECT compress_chunk(c) FROM (SELECT c FROM show_chunks('{TABLE}') c ORDER BY 1 "
                         "LIMIT %s) x", (compressed,))
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def fresh_copy(dsn: str, compressed: int) -> None:
    """ARCHIVED: the rows, chunks and compressed chunks of TABLE, for one archive run (it drops the chunks)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {ARCHIVED}")
        conn.execute(f"CREATE TABLE {ARCHIVED} (LIKE {TABLE})")
        conn.execute("SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (ARCHIVED,))
        conn.execute(f"INSERT INTO {ARCHIVED} SELECT * FROM {TABLE}")
        if compressed:
            conn.execute(f"ALTER TABLE {ARCHIVED} SET (timescaledb.compress, "
                         "timescaledb.compress_segmentby = 'symbol')")
            conn.execute(f"SELECT compress_chunk(c) FROM (SELECT c FROM show_chunks('{ARCHIVED}') c ORDER BY 1 "
                         "LIMIT %s) x", (compressed,))
        conn.execute(f"VACUUM ANALYZE {ARCHIVED}")


def psql() -> str:
    with contextlib.suppress(Exception):
        return str(pg_bindir() / "psql")
    return "psql"


def copy(dsn: str, fmt: str) -> tuple[float, int]:
    """(seconds, bytes) of `COPY (SELECT ..) TO STDOUT` read by psql, whose output this process drains."""
    statement = f"COPY (SELECT {COLUMNS} FROM {TABLE}) TO STDOUT{fmt}"
    start = time.perf_counter()
    with subprocess.Popen([psql(), dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "SET TimeZone = 'UTC'",
                           "-c", statement], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        size = 0
        while block := proc.stdout.read(1 << 20):
            size += len(block)
    if proc.returncode != 0:
        raise SystemExit(f"psql failed ({proc.returncode}) on {statement}")
    return time.perf_counter() - start, size


def export_only(dsn: str, workdir: Path) -> tuple[float, int, int]:
    """(seconds, rows, Parquet bytes) of exporting every chunk as the archiver does, nothing published."""
    start = time.perf_counter()
    rows = size = 0
    with psycopg.connect(dsn, autocommit=True) as conn, export.Exporter(dsn) as exporter:
        name, _ = archiver.hypertable_label(conn, TABLE)
        cols = export.columns(conn, name.ident.as_string(conn))
        for chunk in archiver.expiring_chunks(conn, name, OLDER_THAN):
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                n, b, _, snap = exporter.export_chunk(conn, archiver._ident(chunk["chunk"]), cols,
                                                      workdir / "x.parquet",
                                                      alongside=lambda: archiver._snapshot(conn, name, chunk, cols))
                assert snap is not None and n == snap.row_count, (n, snap)
                rows, size = rows + n, size + b
    return time.perf_counter() - start, rows, size


def archive(dsn: str, store: Path, *, overlap: bool = True) -> tuple[float, int, int]:
    """(seconds, rows, Parquet bytes) of archiving ARCHIVED; `overlap` False: the chunks' stages in sequence."""
    stages, archiver.overlapped = archiver.overlapped, pipeline.overlapped if overlap else pipeline.in_sequence
    try:
        start = time.perf_counter()
        results = DataLifecycleManager(dsn).archive(ARCHIVED, OLDER_THAN, f"file://{store}")
        seconds = time.perf_counter() - start
    finally:
        archiver.overlapped = stages
    failed = [r.describe() for r in results if r.error]
    if failed:
        raise SystemExit("archive failed:\n" + "\n".join(failed))
    return seconds, sum(r.rows or 0 for r in results), sum(r.bytes or 0 for r in results)


def line(label: str, seconds: float, rows: int, text_bytes: int, copy: tuple[float, float], extra: str = "") -> str:
    return (f"  {label:<24} {seconds:7.2f} s  {rows / seconds:>10,.0f} rows/s  {text_bytes / seconds / 1e6:7.1f} MB/s"
            f"  {copy[0] / seconds:6.1%} of COPY  {copy[1] / seconds:6.1%} of COPY BINARY{extra}")


def bench(kind: str, dsn: str, rows: int, compressed: int, repeat: int) -> None:
    print(f"\n[{kind}] building {rows:,} rows in {DAYS} chunks ({compressed} compressed) ...", flush=True)
    build(dsn, rows, compressed)
    copy(dsn, "")  # warm-up: the rows in the server's cache, for every measurement alike
    runs: dict[str, list[float]] = {"text": [], "binary": [], "export": [], "archive": [], "sequence": []}
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        for i in range(repeat):  # taking turns: a machine busy with other work weighs on every line alike
            text_s, text_bytes = copy(dsn, "")
            bin_s, bin_bytes = copy(dsn, " (FORMAT BINARY)")
            ex_s, ex_rows, ex_bytes = export_only(dsn, Path(tmp))
            fresh_copy(dsn, compressed)
            ar_s, ar_rows, ar_bytes = archive(dsn, Path(tmp) / f"store{i}")
            fresh_copy(dsn, compressed)
            seq_s, seq_rows, _ = archive(dsn, Path(tmp) / f"sequence{i}", overlap=False)
            for k, v in (("text", text_s), ("binary", bin_s), ("export", ex_s), ("archive", ar_s),
                         ("sequence", seq_s)):
                runs[k].append(v)
        objects = len([k for k in LocalStore(Path(tmp) / "store0").keys() if k.endswith(".parquet")])
    text_s, bin_s, ex_s, ar_s, seq_s = (statistics.median(runs[k]) for k in runs)
    copies = (text_s, bin_s)  # the figure is the plain COPY (text); BINARY is the stricter one
    print(f"[{kind}] seconds of each run: " + ", ".join(f"{k} {' '.join(f'{v:.2f}' for v in vs)}"
                                                        for k, vs in runs.items()))
    assert ex_rows == ar_rows == seq_rows == rows // DAYS * DAYS, (ex_rows, ar_rows, seq_rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[{kind}] {ar_rows:,} rows, COPY text {text_bytes / 1e6:.0f} MB, binary {bin_bytes / 1e6:.0f} MB, "
          f"Parquet {ar_bytes / 1e6:.0f} MB in {objects} objects (zstd {export.ZSTD_LEVEL})")
    print(line("COPY TO STDOUT (text)", text_s, ar_rows, text_bytes, copies))
    print(line("COPY (FORMAT BINARY)", bin_s, ar_rows, text_bytes, copies))
    print(line("export to Parquet", ex_s, ex_rows, text_bytes, copies))
    print(line("archive, in sequence", seq_s, ar_rows, text_bytes, copies, "  (stages of the chunks one by one)"))
    print(line("archive (whole run)", ar_s, ar_rows, text_bytes, copies, "  <- ratio archive / COPY"))
    print(f"  archive / plain COPY: {text_s / ar_s:.1%} (target 70 %); archive / COPY BINARY: {bin_s / ar_s:.1%}")
    print(f"  peak RSS of this process: {peak:.0f} MB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--servers", default="native embedded")
    parser.add_argument("--compressed", type=int, default=2, help="chunks compressed (of 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each line (median)")
    parser.add_argument("--dsn", default=None, help="a TimescaleDB you own (schema bench_archive, dropped after)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}")
    kinds = ["given"] if args.dsn else args.servers.split()
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"bench-archive-{kind}-") as tmp:
            if kind == "given":
                CREATED.append(SCHEMA)  # dropped by given() at the end
                server = given(args.dsn)
            else:
                server = {"native": native, "embedded": embedded}[kind](Path(tmp))
            with server as dsn:
                bench(kind, dsn, args.rows, args.compressed, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
