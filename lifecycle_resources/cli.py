"""The `lifecycle` command: the embedded TimescaleDB today; the lifecycle runner builds on it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from .errors import LifecycleError

if TYPE_CHECKING:  # the runner's imports wait until a command needs them
    from .runner.manager import DataLifecycleManager


def _server():
    from .db.embedded import server

    return server


def _db_start(args: argparse.Namespace) -> int:
    srv = _server().start(data=args.data, port=args.port, state_dir=args.state_dir)
    print(srv.dsn)
    return 0


def _db_stop(args: argparse.Namespace) -> int:
    stopped = _server().stop(state_dir=args.state_dir)
    print(f"stopped the embedded TimescaleDB on port {stopped.port}" if stopped else "no embedded TimescaleDB running",
          file=sys.stderr)
    return 0


def _db_dsn(args: argparse.Namespace) -> int:
    current = _server().current(state_dir=args.state_dir)
    if current is None:
        print("no embedded TimescaleDB running: start it with `lifecycle db start`", file=sys.stderr)
        return 1
    print(current.dsn)
    return 0


def _db_exec(args: argparse.Namespace) -> int:
    from .db.connection import connect

    dsn = _resolve_dsn(args)
    if not dsn:
        print("no --dsn, no TSDB_DSN and no embedded TimescaleDB running", file=sys.stderr)
        return 1
    text = Path(args.file).read_text()
    with connect(dsn) as conn, conn.transaction():
        conn.execute(text.encode())
    return 0


def _resolve_dsn(args: argparse.Namespace) -> str | None:
    dsn = getattr(args, "dsn", None) or os.environ.get("TSDB_DSN")
    if dsn:
        return dsn
    current = _server().current(state_dir=getattr(args, "state_dir", None))
    return current.dsn if current else None


def _need_dsn(args: argparse.Namespace) -> str:
    dsn = _resolve_dsn(args)
    if not dsn:
        raise LifecycleError("no database: give --dsn, set TSDB_DSN, or start the embedded one with "
                             "`lifecycle db start`")
    return dsn


def _status(args: argparse.Namespace) -> int:
    from .db.connection import connect
    from .runner import report
    from .runner.manager import DataLifecycleManager

    dsn = _need_dsn(args)
    with connect(dsn) as conn:
        tables = report.hypertables(conn)
        jobs = report.policies(conn)
        has_schema = report.has_lifecycle_schema(conn)
    print("Hypertables")
    print(report.render_table(*tables))
    print("\nTimescaleDB policy jobs")
    print(report.render_table(*jobs))
    if not has_schema:
        print("\n(the lifecycle schema is not installed: no declared policies or run history to show)")
        return 0
    manager = DataLifecycleManager(dsn)
    rows = [(p.policy_name, p.kind, p.hypertable, p.stack or "", p.job_id,
             "yes" if p.enabled else "removed", p.last_status or "never run",
             p.last_started_at.strftime("%Y-%m-%d %H:%M") if p.last_started_at else "",
             p.next_due.strftime("%Y-%m-%d %H:%M") if p.next_due else "")
            for p in manager.status(args.stack)]
    print("\nLifecycle policies (lifecycle.lifecycle_policy_status)")
    print(report.render_table(["policy", "kind", "hypertable", "stack", "job", "declared", "last status",
                               "last run", "next due"], rows))
    print("\nStatistics (lifecycle.get_lifecycle_statistics)")
    print(_statistics_table(manager, None))
    return 0


def _statistics_table(manager: DataLifecycleManager, table: str | None) -> str:
    from .runner import report
    from .runner.manager import human_bytes

    rows = [(s["hypertable"], s["total_chunks"], s["compressed_chunks"], human_bytes(s["before_bytes"]),
             human_bytes(s["after_bytes"]), "-" if s["compression_ratio"] is None else f"{s['compression_ratio']:.2f}x",
             s["policies"], s["executions"], s["failed_executions"], s["chunks_dropped"], s["chunks_compressed"],
             s["last_execution_at"].strftime("%Y-%m-%d %H:%M") if s["last_execution_at"] else "")
            for s in manager.statistics(table)]
    return report.render_table(
        ["hypertable", "chunks", "compressed", "compressed before", "compressed after", "ratio", "policies",
         "runs", "failed", "chunks dropped", "chunks compressed", "last run"], rows) + (
        "\n(compressed before/after: the compressed chunks only, before and after compression; "
        "policies: live declarations)")


def _statistics(args: argparse.Namespace) -> int:
    from .runner.manager import DataLifecycleManager

    print(_statistics_table(DataLifecycleManager(_need_dsn(args)), args.table))
    return 0


def _run(args: argparse.Namespace) -> int:
    from .runner.manager import DataLifecycleManager, Execution, PolicyStatus, human_bytes

    manager = DataLifecycleManager(_need_dsn(args))
    tty = sys.stderr.isatty()

    def progress(i: int, n: int, status: PolicyStatus, done: Execution | None) -> None:
        head = f"[{i}/{n}] {status.policy_name} ({status.kind} of {status.hypertable})"
        if done is None:
            if tty:  # a live line on a terminal; logs get one line per policy
                print(f"{head} ...", end="\r", file=sys.stderr, flush=True)
        else:
            print(f"{head}: {done.describe()}", flush=True)

    results = manager.run(stack=args.stack, policy=args.policy, dry_run=args.dry_run, progress=progress)
    if not results:
        print("nothing due" + (f" for stack {args.stack}" if args.stack else ""))
        return 0
    compressed = sum(r.chunks_affected for r in results if r.kind == "compression" and r.status != "failed")
    dropped = sum(r.chunks_affected for r in results if r.kind == "retention" and r.status != "failed")
    saved = sum(r.bytes_saved for r in results if r.kind == "compression" and r.status != "failed")
    failed = [r for r in results if r.status == "failed"]
    would = " (dry run: nothing changed)" if args.dry_run else ""
    print(f"{len(results)} policies run{would}: {compressed} chunks compressed, {dropped} chunks dropped, "
          f"{human_bytes(saved)} saved by compression, {len(failed)} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecycle", description="Timescale Lifecycle")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded TimescaleDB server (for development and tests)")
    db.add_argument("--state-dir", type=Path, default=None,
                    help="where the server's pid, port and log are kept (default: ./.lifecycle)")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    start = dbsub.add_parser("start", help="start the server, wait until TimescaleDB answers, print the DSN")
    start.add_argument("--data", default=None, help="data directory, or memory:// (default: .lifecycle/db-data)")
    start.add_argument("--port", type=int, default=5433)
    start.set_defaults(func=_db_start)
    dbsub.add_parser("stop", help="stop the server").set_defaults(func=_db_stop)
    dbsub.add_parser("dsn", help="print the running server's DSN").set_defaults(func=_db_dsn)
    ex = dbsub.add_parser("exec", help="run a SQL file in one transaction")
    ex.add_argument("file")
    ex.add_argument("--dsn", default=None, help="default: $TSDB_DSN, else the embedded server")
    ex.set_defaults(func=_db_exec)

    status = sub.add_parser("status", help="hypertables, policies, their last runs and compression figures")
    status.add_argument("--dsn", default=None, help="default: $TSDB_DSN, else the embedded server")
    status.add_argument("--stack", default=None, help="only the policies declared by this stack/environment")
    status.set_defaults(func=_status, state_dir=None)

    stats = sub.add_parser("statistics", help="per hypertable: chunks, compression, live policies, runs "
                                               "(lifecycle.get_lifecycle_statistics)")
    stats.add_argument("--dsn", default=None, help="default: $TSDB_DSN, else the embedded server")
    stats.add_argument("--table", default=None, help="only this hypertable (schema.table)")
    stats.set_defaults(func=_statistics, state_dir=None)

    run = sub.add_parser("run", help="execute the due lifecycle policies (or one) and record what they did")
    run.add_argument("--dsn", default=None, help="default: $TSDB_DSN, else the embedded server")
    run.add_argument("--stack", default=None, help="only the policies declared by this stack/environment")
    run.add_argument("--policy", default=None, help="run this policy now, due or not")
    run.add_argument("--dry-run", action="store_true", help="measure what would change; change nothing")
    run.set_defaults(func=_run, state_dir=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LifecycleError as exc:
        print(f"lifecycle: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"lifecycle: database error: {str(exc).strip()}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the embedded server's errors
        print(f"lifecycle: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
