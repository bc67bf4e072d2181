"""`lifecycle archive run|list|verify` and `lifecycle restore`: the archive's command line (cli.py adds them).

Object-store credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a profile),
never from the command line, where other local users would see them; the S3 endpoint from --endpoint-url or
$AWS_ENDPOINT_URL."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"endpoint_url": args.endpoint_url} if getattr(args, "endpoint_url", None) else {}


def _run(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .runner.archive.archiver import archive
    from .runner.archive.store import open_store
    from .runner.progress import Steps, printed

    dsn = _need_dsn(args)
    store = open_store(args.to, **_options(args))
    with Steps("archive") as steps:  # each chunk's result is printed as it is done
        results = archive(dsn, args.table, args.older_than, store, read_back=args.read_back,
                          progress=printed(steps))
    failed = [r for r in results if r.error]
    print(f"{len(results)} chunks older than {args.older_than}: {len(results) - len(failed)} archived and dropped"
          + (f", {len(failed)} FAILED (not dropped; see lifecycle.archives)" if failed else ""))
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .db.connection import connect
    from .runner import report
    from .runner.archive.catalog import entries
    from .runner.archive.timeaxis import show
    from .runner.manager import human_bytes

    with connect(_need_dsn(args)) as conn:
        rows = entries(conn, args.table)
    print(report.render_table(
        ["hypertable", "chunk", "from", "to", "state", "rows", "size", "object", "error"],
        [(r["hypertable"], r["chunk_name"], show(r["range_start"]), show(r["range_end"]),
          r["state"], r["row_count"], human_bytes(r["bytes"]),
          f"{r['store_url']}/{r['object_key']}" if r["object_key"] else "", r["error"] or "") for r in rows]))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .runner.archive.catalog import verify_all

    checked = verify_all(_need_dsn(args), args.table, **_options(args))
    bad = [(row, problems) for row, problems in checked if problems]
    for row, problems in checked:
        print(f"{row['hypertable']} {row['chunk_name']}: " + ("; ".join(problems) if problems else "ok"), flush=True)
    print(f"{len(checked)} archived objects checked, {len(bad)} with problems")
    if bad:
        print("lifecycle: archive verification FAILED: the objects above are missing or corrupted; their chunks' "
              "rows exist nowhere else when their state is 'dropped' (restore from a copy of the store)",
              file=sys.stderr)
    return 1 if bad else 0


def _gc(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .runner.archive.gc import collect

    report = collect(_need_dsn(args), args.table, grace=args.grace, dry_run=args.dry_run, **_options(args))
    for item in report.items:
        print(item.describe())
    for table in report.skipped:
        print(f"{table}: skipped, an archive run holds its lock (run gc again later)")
    for path in report.scratch_removed:
        print(f"removed the scratch directory of a killed run: {path}")
    for error in report.errors:
        print(f"lifecycle: archive gc: {error}", file=sys.stderr)
    counts = {a: sum(1 for i in report.items if i.action == a) for a in
              ("deleted", "aborted", "would delete", "would abort", "kept", "failed")}
    print(", ".join(f"{n} {a}" for a, n in counts.items() if n) or "no garbage",
          f"(grace {args.grace}{', dry run: nothing removed' if args.dry_run else ''})")
    return 1 if report.failed or report.errors else 0


def _restore(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .runner.progress import Steps, printed
    from .runner.restore import AggregateRefreshed, restore

    with Steps("restore") as steps:  # each object's verification, then its load, printed as done
        done = restore(_need_dsn(args), args.table, args.start, args.end, args.into, progress=printed(steps),
                       refresh_aggregates=args.refresh_aggregates, **_options(args))
    for refreshed in (r for r in done if isinstance(r, AggregateRefreshed)):
        print(refreshed.describe())
    loaded = [r for r in done if not isinstance(r, AggregateRefreshed)]
    print(f"{sum(r.rows_loaded for r in loaded)} rows restored from {len(loaded)} archived objects")
    return 0


def _hold(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .db.connection import connect
    from .runner import report
    from .runner.archive import holds

    with connect(_need_dsn(args)) as conn:
        if args.hold_command == "add":
            print(holds.add(conn, args.table, args.start, args.end, args.reason).describe())
        elif args.hold_command == "release":
            print(holds.release(conn, args.hold_id).describe())
        else:
            found = holds.listed(conn, args.table, include_released=args.all)
            print(report.render_table(["hold", "hypertable", "from", "to", "reason", "state"], holds.as_rows(found)))
    return 0


def _add_hold_commands(sub: Any, add_dsn_arguments: Any) -> None:
    hold = sub.add_parser("hold", help="keep a time range of a hypertable in the database: never archived or "
                                       "dropped while held; allows restoring into the hypertable itself")
    hsub = hold.add_subparsers(dest="hold_command", required=True)
    add = hsub.add_parser("add", help="hold [--from, --to) of --table")
    add_dsn_arguments(add)
    add.add_argument("--table", required=True, help="the hypertable (schema.table)")
    add.add_argument("--from", dest="start", required=True,
                     help="first instant held (inclusive; an integer on integer time)")
    add.add_argument("--to", dest="end", required=True, help="end of the range (exclusive)")
    add.add_argument("--reason", default=None, help="why (recorded with the hold)")
    ls = hsub.add_parser("list", help="the active holds (--all: released ones too)")
    add_dsn_arguments(ls)
    ls.add_argument("--table", default=None, help="only this hypertable (schema.table)")
    ls.add_argument("--all", action="store_true", help="also the released holds")
    rel = hsub.add_parser("release", help="release a hold: its range is archived and dropped again when expiring")
    add_dsn_arguments(rel)
    rel.add_argument("hold_id", type=int, help="the hold's number (lifecycle hold list)")
    for p in (add, ls, rel):
        p.set_defaults(func=_hold, state_dir=None)


def add_commands(sub: Any, add_dsn_arguments: Any) -> None:
    _add_hold_commands(sub, add_dsn_arguments)
    def endpoint(p: argparse.ArgumentParser) -> None:
        p.add_argument("--endpoint-url", default=None,
                       help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL, else AWS); credentials come from "
                            "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a profile")

    arch = sub.add_parser("archive", help="archive expiring chunks to object storage, then drop them; list and "
                                          "verify the archive")
    asub = arch.add_subparsers(dest="archive_command", required=True)
    run = asub.add_parser("run", help="export each chunk older than --older-than to Parquet, verify it, drop it")
    add_dsn_arguments(run)
    run.add_argument("--table", required=True, help="the hypertable (schema.table)")
    run.add_argument("--older-than", required=True,
                     help="chunks whose range ends before now() minus this interval (on integer time: an integer, "
                          "back from the table's integer_now)")
    run.add_argument("--to", required=True, help="the store: file:///absolute/path or s3://bucket/prefix")
    run.add_argument("--read-back", action="store_true",
                     help="before each drop, load every row of the object back and compare it with the chunk")
    endpoint(run)
    run.set_defaults(func=_run, state_dir=None)
    ls = asub.add_parser("list", help="archived chunks and their state (lifecycle.archives)")
    add_dsn_arguments(ls)
    ls.add_argument("--table", default=None, help="only this hypertable (schema.table)")
    ls.set_defaults(func=_list, state_dir=None)
    ver = asub.add_parser("verify", help="re-check every archived object against its record (size, sha256, rows, "
                                         "manifest); non-zero exit when one is missing or corrupted")
    add_dsn_arguments(ver)
    ver.add_argument("--table", default=None, help="only this hypertable (schema.table)")
    endpoint(ver)
    ver.set_defaults(func=_verify, state_dir=None)
    gc = asub.add_parser("gc", help="delete objects no archived slice refers to (partial, superseded) and abort "
                                    "incomplete uploads, once older than --grace; each recorded in "
                                    "lifecycle.archive_gc")
    add_dsn_arguments(gc)
    gc.add_argument("--table", default=None, help="only this hypertable's objects (schema.table)")
    gc.add_argument("--grace", default="1h", help="keep garbage younger than this interval (default 1h): a run "
                                                  "may be about to record it")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    endpoint(gc)
    gc.set_defaults(func=_gc, state_dir=None)

    res = sub.add_parser("restore", help="load archived rows of a time range into a side table (verified first)")
    add_dsn_arguments(res)
    res.add_argument("--table", required=True, help="the archived hypertable (schema.table)")
    res.add_argument("--from", dest="start", required=True, help="first instant restored (inclusive)")
    res.add_argument("--to", dest="end", required=True, help="end of the range (exclusive)")
    res.add_argument("--into", default=None, help="the table to load into (default: <table>_restored; the hypertable "
                                                  "itself only under an active hold covering the range)")
    res.add_argument("--refresh-aggregates", action="store_true",
                     help="with --into the hypertable itself: then refresh its continuous aggregates over the range")
    endpoint(res)
    res.set_defaults(func=_restore, state_dir=None)
