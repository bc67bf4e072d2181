"""The `lifecycle` command: the project's own TimescaleDB servers (embedded, native) and the lifecycle runner."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import psycopg

from .errors import LifecycleError

if TYPE_CHECKING:  # the runner's imports wait until a command needs them
    from .runner.manager import DataLifecycleManager


SERVERS = ("embedded", "native")


def _server(kind: str = "embedded"):
    """The module that starts, stops and finds a server of this kind (same functions in both)."""
    if kind == "native":
        from .db import native

        return native
    from .db.embedded import server

    return server


def _label(kind: str) -> str:
    return f"{kind} TimescaleDB"


def _db_start(args: argparse.Namespace) -> int:
    if args.server == "native":
        if args.data is not None:
            raise LifecycleError("--data is for the embedded server; the native cluster lives in "
                                 "<state dir>/native-data (choose it with --state-dir)")
        srv = _server("native").start(port=args.port or 0, state_dir=args.state_dir)
    else:
        srv = _server().start(data=args.data, port=5433 if args.port is None else args.port,
                              state_dir=args.state_dir)
    print(srv.dsn)
    return 0


def _db_stop(args: argparse.Namespace) -> int:
    stopped = _server(args.server).stop(state_dir=args.state_dir)
    print(f"stopped the {_label(args.server)} on port {stopped.port}" if stopped
          else f"no {_label(args.server)} running", file=sys.stderr)
    return 0


def _db_dsn(args: argparse.Namespace) -> int:
    current = _server(args.server).current(state_dir=args.state_dir)
    if current is None:
        print(f"no {_label(args.server)} running: start it with `lifecycle db start --server {args.server}`",
              file=sys.stderr)
        return 1
    print(current.dsn)
    return 0


def _db_exec(args: argparse.Namespace) -> int:
    from .db.connection import connect

    dsn = _resolve_dsn(args)
    if not dsn:
        print("no TSDB_DSN, no --dsn-file and no embedded TimescaleDB running", file=sys.stderr)
        return 1
    text = Path(args.file).read_text()
    with connect(dsn) as conn, conn.transaction():
        conn.execute(text.encode())
    return 0


def _read_dsn_file(path: Path) -> str:
    """The DSN in a file only its owner can read (as libpq demands of ~/.pgpass)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise LifecycleError(f"--dsn-file {path}: cannot read it ({exc.strerror})") from None
    if mode & 0o077:
        raise LifecycleError(f"--dsn-file {path}: readable by other users (mode {mode & 0o777:o}): it holds a "
                             f"password; make it private with `chmod 600 {path}`")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise LifecycleError(f"--dsn-file {path}: expected one connection string on one line, found {len(lines)} "
                             "lines")
    return lines[0]


def _resolve_dsn(args: argparse.Namespace) -> str | None:
    """--dsn-file, else --dsn (warned: other local users see it in the process list), else $TSDB_DSN, else the
    running server this project started. Remembered on args so that errors can be scrubbed of it."""
    from .db.connection import secrets_of

    dsn = None
    if getattr(args, "dsn_file", None):
        dsn = _read_dsn_file(args.dsn_file)
    elif getattr(args, "dsn", None):
        dsn = args.dsn
        if secrets_of(dsn):
            print("lifecycle: warning: --dsn puts its password on the command line, where other local users "
                  "see it (ps, /proc); use TSDB_DSN or --dsn-file instead", file=sys.stderr)
    else:
        dsn = os.environ.get("TSDB_DSN")
    if not dsn:
        for kind in SERVERS:  # a server this project started, if one runs
            current = _server(kind).current(state_dir=getattr(args, "state_dir", None))
            if current is not None:
                dsn = current.dsn
                break
    args.resolved_dsn = dsn
    return dsn


def _need_dsn(args: argparse.Namespace) -> str:
    dsn = _resolve_dsn(args)
    if not dsn:
        raise LifecycleError("no database: set TSDB_DSN, give --dsn-file, or start the embedded one with "
                             "`lifecycle db start`")
    return dsn


def add_dsn_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a command finds its database. Prefer TSDB_DSN or --dsn-file: --dsn shows in `ps`."""
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--dsn-file", type=Path, default=None, metavar="PATH",
                       help="a file (mode 600) holding the connection string")
    given.add_argument("--dsn", default=None,
                       help="the connection string: visible to other local users in the process list; prefer "
                            "TSDB_DSN or --dsn-file (default: $TSDB_DSN, else the embedded server)")


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
    from .cleanup_cli import print_status as print_cleanup_status

    print_cleanup_status(dsn)
    _print_health(dsn, args.stack)
    return 0


def _print_health(dsn: str, stack: str | None) -> None:
    from .db.connection import connect
    from .runner import health, report

    with connect(dsn) as conn:
        problems = health.check(conn, stack=stack)
    print("\nHealth (lifecycle health)")
    print(report.render_table(health.HEADERS, health.rows_of(problems)) if problems else "healthy")


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
    from .runner.progress import Steps, printed

    manager = DataLifecycleManager(_need_dsn(args))
    with Steps("run") as steps:
        said = printed(steps)  # a bar on a terminal; one line per policy everywhere

        def progress(i: int, n: int, status: PolicyStatus, done: Execution | None) -> None:
            head = f"[{i}/{n}] {status.policy_name} ({status.kind} of {status.hypertable})"
            said(i, n, status.policy_name, None if done is None else f"{head}: {done.describe()}")

        results = manager.run(stack=args.stack, policy=args.policy, dry_run=args.dry_run, progress=progress)
    if not results:
        print("nothing due" + (f" for stack {args.stack}" if args.stack else ""))
        return 0
    compressed = sum(r.chunks_affected for r in results if r.kind == "compression" and r.status != "failed")
    dropped = sum(r.chunks_affected for r in results if r.kind == "retention" and r.status != "failed")
    saved = sum(r.bytes_saved for r in results if r.kind == "compression" and r.status != "failed")
    failed = [r for r in results if r.status == "failed"]
    _alert_failed_runs(args, failed)
    would = " (dry run: nothing changed)" if args.dry_run else ""
    print(f"{len(results)} policies run{would}: {compressed} chunks compressed, {dropped} chunks dropped, "
          f"{human_bytes(saved)} saved by compression, {len(failed)} failed")
    return 1 if failed else 0


def _alert_failed_runs(args: argparse.Namespace, failed: list) -> None:
    from .runner import health

    problems = [health.Problem("failing", r.policy_name, r.hypertable, args.stack, r.started_at,
                               f"lifecycle run failed: {r.error}") for r in failed]
    _send_alerts(args, problems, "lifecycle run")


def _send_alerts(args: argparse.Namespace, problems: list, source: str) -> None:
    """Structured log lines on stderr, and the webhook when one is configured; a webhook that fails is said
    (without its URL) but does not hide the problems themselves."""
    from .runner import alerts

    try:
        alerts.alert(problems, source, url=alerts.webhook_url(getattr(args, "webhook_file", None)))
    except LifecycleError as exc:
        print(f"lifecycle: {exc}", file=sys.stderr)


def _health(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from .db.connection import connect
    from .runner import health, report

    with connect(_need_dsn(args)) as conn:
        problems = health.check(conn, stack=args.stack, failures=args.failures,
                                grace=None if args.grace is None else timedelta(minutes=args.grace))
    if not problems:
        print("healthy" + (f" (stack {args.stack})" if args.stack else ""))
        return 0
    print(report.render_table(health.HEADERS, health.rows_of(problems)))
    _send_alerts(args, problems, "lifecycle health")
    return 2


def _report(args: argparse.Namespace) -> int:
    from .db.connection import connect, endpoint
    from .runner import html_report
    from .runner.manager import DataLifecycleManager

    dsn = _need_dsn(args)
    with connect(dsn) as conn:
        DataLifecycleManager._require_schema(conn)
        written = html_report.write(conn, args.html, endpoint(dsn))
    print(written)
    return 0


def _advise(args: argparse.Namespace) -> int:
    from .runner import advisor, report
    from .runner.manager import human_bytes
    from .runner.progress import Steps

    with Steps("advise") as steps:
        def progress(i: int, n: int, cand: advisor.Candidate, done: advisor.Measurement | None) -> None:
            if done is None:
                steps.step(i, n, cand.label)
            else:
                steps.done(i, n, cand.label, f"{done.ratio:.2f}x in {done.seconds:.2f} s")

        advice = advisor.advise(_need_dsn(args), args.table, progress=progress)
    print(f"Compression of {advice.table}, measured on a copy of its chunk {advice.sample_chunk} "
          f"({advice.sample_rows} rows):")
    best = advice.best
    print(report.render_table(
        ["candidate", "segment by", "order by", "before", "after", "ratio", "saved", "compress time", ""],
        [(m.candidate.label, m.candidate.segment_text(), m.candidate.order_text(), human_bytes(m.before_bytes),
          human_bytes(m.after_bytes), f"{m.ratio:.2f}x", f"{m.saved_pct:.1f}%", f"{m.seconds:.3f} s",
          "<- best" if m is best else "") for m in advice.measurements]))
    print(advice.recommendation())
    return 0


def add_alert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--webhook-file", type=Path, default=None, metavar="PATH",
                        help="a file (mode 600) holding the alert webhook URL (default: "
                             "$LIFECYCLE_ALERT_WEBHOOK_FILE, else $LIFECYCLE_ALERT_WEBHOOK; none: log lines only)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A usage error quotes the words it did not understand: a connection string among them keeps its secret.
        from .db.connection import scrub

        super().error(scrub(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lifecycle", description="Timescale Lifecycle")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="a TimescaleDB server of the project's own: embedded (zero-install) or native")
    db.add_argument("--state-dir", type=Path, default=None,
                    help="where the server's pid, port and log are kept (default: ./.lifecycle)")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--server", choices=SERVERS, default=os.environ.get("LIFECYCLE_DB_SERVER", "embedded"),
                       help="embedded: PGlite + TimescaleDB 2.23 in Node.js, one connection at a time; native: "
                            "PostgreSQL with TimescaleDB installed, its scheduler and password auth "
                            "(default: $LIFECYCLE_DB_SERVER, else embedded)")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    start = dbsub.add_parser("start", parents=[which],
                             help="start the server, wait until TimescaleDB answers, print the DSN")
    start.add_argument("--data", default=None,
                       help="embedded only: data directory, or memory:// (default: .lifecycle/db-data)")
    start.add_argument("--port", type=int, default=None,
                       help="embedded: default 5433; native: default its last port if free, else a free one")
    start.set_defaults(func=_db_start)
    dbsub.add_parser("stop", parents=[which], help="stop the server").set_defaults(func=_db_stop)
    dbsub.add_parser("dsn", parents=[which], help="print the running server's DSN").set_defaults(func=_db_dsn)
    ex = dbsub.add_parser("exec", help="run a SQL file in one transaction")
    ex.add_argument("file")
    add_dsn_arguments(ex)
    ex.set_defaults(func=_db_exec)

    status = sub.add_parser("status", help="hypertables, policies, their last runs and compression figures")
    add_dsn_arguments(status)
    status.add_argument("--stack", default=None, help="only the policies declared by this stack/environment")
    status.set_defaults(func=_status, state_dir=None)

    stats = sub.add_parser("statistics", help="per hypertable: chunks, compression, live policies, runs "
                                               "(lifecycle.get_lifecycle_statistics)")
    add_dsn_arguments(stats)
    stats.add_argument("--table", default=None, help="only this hypertable (schema.table)")
    stats.set_defaults(func=_statistics, state_dir=None)

    run = sub.add_parser("run", help="execute the due lifecycle policies (or one) and record what they did")
    add_dsn_arguments(run)
    run.add_argument("--stack", default=None, help="only the policies declared by this stack/environment")
    run.add_argument("--policy", default=None, help="run this policy now, due or not")
    run.add_argument("--dry-run", action="store_true", help="measure what would change; change nothing")
    add_alert_arguments(run)
    run.set_defaults(func=_run, state_dir=None)

    hl = sub.add_parser("health", help="exit 0 when the lifecycle policies and their jobs are healthy, 2 with a "
                                       "table of what is wrong (failing, stuck); alerts the webhook")
    add_dsn_arguments(hl)
    add_alert_arguments(hl)
    hl.add_argument("--stack", default=None, help="only the policies declared by this stack/environment")
    hl.add_argument("--failures", type=int, default=1, metavar="N",
                    help="failing: the last N runs of a policy failed (default 1)")
    hl.add_argument("--grace", type=float, default=None, metavar="MINUTES",
                    help="stuck: not run although due this long ago (default: one schedule interval)")
    hl.set_defaults(func=_health, state_dir=None)

    rep = sub.add_parser("report", help="write one self-contained HTML report (storage, compression over time, "
                                        "executions, archive and cleanup totals, statistics); print its path")
    add_dsn_arguments(rep)
    rep.add_argument("--html", type=Path, required=True, metavar="FILE", help="the HTML file to write")
    rep.set_defaults(func=_report, state_dir=None)

    adv = sub.add_parser("advise", help="measure compression settings on a copy of a sample chunk (in a scratch "
                                        "schema, dropped after) and recommend the best")
    add_dsn_arguments(adv)
    adv.add_argument("table", help="the hypertable, schema.table")
    adv.set_defaults(func=_advise, state_dir=None)

    from .archive_cli import add_commands as add_archive_commands

    add_archive_commands(sub, add_dsn_arguments)
    from .cleanup_cli import add_commands as add_cleanup_commands

    add_cleanup_commands(sub, add_dsn_arguments)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LifecycleError as exc:
        print(f"lifecycle: {_scrubbed(exc, args)}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"lifecycle: database error: {_scrubbed(exc, args)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # the servers' errors
        print(f"lifecycle: {_scrubbed(exc, args)}", file=sys.stderr)
        return 1


def _scrubbed(exc: Exception, args: argparse.Namespace) -> str:
    from .db.connection import scrub

    return scrub(str(exc).strip(), getattr(args, "resolved_dsn", None), getattr(args, "dsn", None))


if __name__ == "__main__":
    sys.exit(main())
