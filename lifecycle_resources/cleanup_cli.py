"""`lifecycle cleanup [--rule R] [--dry-run]` and `lifecycle cleanup restore --rule R`: the declared cleanup
rules' command line (cli.py adds it). Rules are declared with CleanupRule in the stack; this runs them."""

from __future__ import annotations

import argparse
from typing import Any


def _cleanup(args: argparse.Namespace) -> int:
    from .cli import _need_dsn
    from .runner.manager import DataLifecycleManager

    manager = DataLifecycleManager(_need_dsn(args))
    if args.cleanup_command == "restore":
        done = manager.restore_quarantine(args.rule)
        print(f"{done.rule_name}: {done.describe()}")
        return 0
    results = manager.cleanup(args.rule, dry_run=args.dry_run)
    if not results:
        print("no cleanup rules declared")
        return 0
    for r in results:
        print(f"{r.rule_name} ({r.hypertable}: {r.condition}): {r.describe()}", flush=True)
    failed = [r for r in results if r.status == "failed"]
    would = " (dry run: nothing changed)" if args.dry_run else ""
    print(f"{len(results)} cleanup rules run{would}: {sum(r.rows_matched for r in results)} rows matched, "
          f"{sum(r.rows_deleted for r in results)} removed ({sum(r.rows_quarantined or 0 for r in results)} into "
          f"quarantine), {len(failed)} failed")
    return 1 if failed else 0


def print_status(dsn: str) -> None:
    """`lifecycle status`'s section: each declared rule, its last run and what it holds in quarantine."""
    from .db.connection import connect
    from .reconcile.cleanup import has_registry
    from .runner import report

    with connect(dsn) as conn:
        if not has_registry(conn):
            return
        found = conn.execute("SELECT rule_name, hypertable, kind, action, stack, last_status, last_executed_at, "
                             "rows_quarantined_total, rows_restored_total, rows_in_quarantine "
                             "FROM lifecycle.cleanup_rule_status ORDER BY hypertable, rule_name").fetchall()
    print("\nCleanup rules (lifecycle.cleanup_rule_status; run them with `lifecycle cleanup`)")
    print(report.render_table(
        ["rule", "table", "kind", "action", "stack", "last status", "last run", "quarantined", "restored",
         "in quarantine"],
        [(*r[:5], r[5] or "never run", r[6].strftime("%Y-%m-%d %H:%M") if r[6] else "", *r[7:]) for r in found])
        if found else "none declared")


def add_commands(sub: Any, add_dsn_arguments: Any) -> None:
    clean = sub.add_parser("cleanup", help="apply the declared cleanup rules (CleanupRule) chunk by chunk; removed "
                                           "rows go to the quarantine unless the rule deletes")
    add_dsn_arguments(clean)
    clean.add_argument("--rule", default=None, help="only this rule (default: every declared rule)")
    clean.add_argument("--dry-run", action="store_true", help="count the matching rows; change nothing")
    csub = clean.add_subparsers(dest="cleanup_command", required=False)
    res = csub.add_parser("restore", help="move the rows a rule quarantined back into their table")
    add_dsn_arguments(res)
    res.add_argument("--rule", required=True, help="the rule whose quarantined rows come back")
    clean.set_defaults(func=_cleanup, state_dir=None)
