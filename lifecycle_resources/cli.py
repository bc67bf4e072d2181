"""The `lifecycle` command: the embedded TimescaleDB today; the lifecycle runner builds on it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from .errors import LifecycleError


def _server():
    from .embedded import server

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
    from .connection import connect

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


def _status(args: argparse.Namespace) -> int:
    from . import report
    from .connection import connect

    dsn = _resolve_dsn(args)
    if not dsn:
        print("no --dsn, no TSDB_DSN and no embedded TimescaleDB running", file=sys.stderr)
        return 1
    with connect(dsn) as conn:
        tables = report.hypertables(conn)
        jobs = report.policies(conn)
    print("Hypertables")
    print(report.render_table(*tables))
    print("\nPolicies")
    print(report.render_table(*jobs))
    return 0


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

    status = sub.add_parser("status", help="what the database holds: hypertables, chunks, sizes")
    status.add_argument("--dsn", default=None, help="default: $TSDB_DSN, else the embedded server")
    status.set_defaults(func=_status, state_dir=None)
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
