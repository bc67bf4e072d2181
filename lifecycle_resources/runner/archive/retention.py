"""`lifecycle run` of a retention policy declared with an archive (RetentionPolicy(archive=store)): every expiring
chunk outside an active hold is archived to the declaration's store, verified, and only then dropped (the
archiver's steps). The store's URL comes from lifecycle.archive_stores; its credentials from boto3's chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role), never from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from ...errors import LifecycleError
from ...reconcile import archive_stores
from . import refresh_guard
from .archiver import SliceResult, archive_on, expiring_chunks, hypertable_label, time_axis
from .store import open_store


@dataclass
class ArchivedRun:
    dropped: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    results: list[SliceResult] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        failed = [r.describe() for r in self.results if r.error]
        return ("; ".join(failed) + " (nothing dropped of these: see lifecycle.archives)") if failed else None

    def details(self, store: str) -> dict[str, Any]:
        return {"archive_store": store, "held_chunks": self.held,
                "archived": [{"chunk": r.chunk, "action": r.action, "state": r.state, "rows": r.rows,
                              "location": r.location, "error": r.error} for r in self.results]}


def store_of(conn: psycopg.Connection, key: dict[str, Any]) -> tuple[str, Any]:
    """(name, opened store) of the declaration's archive; refuses a store its stack no longer registers."""
    name = key["parameters"]["archive_store"]
    archive_stores.require_installed(conn, f"retention policy {key['policy_name']}")
    record = archive_stores.read(conn, key["project"], key["stack"], name)
    if record is None:
        raise LifecycleError(f"retention policy {key['policy_name']}: its archive store {name!r} is not registered "
                             f"(or was removed) for stack {key['project']}/{key['stack']}: nothing archived or "
                             "dropped; declare the ArchiveStore again and run `pulumi up`")
    return name, open_store(record.url, endpoint_url=record.endpoint_url, region=record.region)


def run(conn: psycopg.Connection, key: dict[str, Any], older_than: str, dry_run: bool,
        dsn: str | None = None) -> ArchivedRun:
    """Archive then drop (dry run: list) the expiring chunks of the declaration's table; with `dsn`, exported
    through ADBC where the server takes a second connection (archiver.archive_on)."""
    table, _ = hypertable_label(conn, key["hypertable"])
    chunks = expiring_chunks(conn, table, older_than)
    done = ArchivedRun(held=[c["chunk"] for c in chunks if c["held"]])
    if dry_run:
        refused = set(refresh_refusals(conn, key["hypertable"], older_than))
        done.dropped = [c["chunk"] for c in chunks if not c["held"] and c["chunk"] not in refused]
        return done
    _name, store = store_of(conn, key)
    problem = store.probe()
    if problem:
        raise LifecycleError(f"archive store {store.url} is not reachable: {problem}; nothing archived or dropped")
    done.results = archive_on(conn, key["hypertable"], older_than, store, dsn=dsn)
    done.dropped = [r.chunk for r in done.results if r.state == "dropped"]
    return done


def refresh_refusals(conn: psycopg.Connection, hypertable: str, older_than: str) -> dict[str, str]:
    """The expiring chunks a continuous aggregate's refresh policy still refreshes, each with why it stays (the
    runner drops none of them, archived or not: refresh_guard)."""
    table, axis = time_axis(conn, refresh_guard.stored_in(conn, hypertable))
    refreshes = refresh_guard.refreshes_over(conn, table, axis.integer)
    found = {c["chunk"]: refresh_guard.refusal(refreshes, c["chunk"], c["range_end"])
             for c in expiring_chunks(conn, table, older_than, axis)}
    return {chunk: why for chunk, why in found.items() if why}
