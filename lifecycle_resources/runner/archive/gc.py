"""Garbage collection of the archive stores (`lifecycle archive gc`).

Garbage is what no archived slice needs: an object under an archived table's prefix that no lifecycle.archives
row names (a partial object, one superseded by a new fingerprint, one whose record never committed), a manifest
without its object, and an upload that never completed (S3 multipart; locally a file still written aside).
Every row of lifecycle.archives protects its object and manifest, whatever its state: verified and dropped
objects hold the rows, a pending one may be being uploaded, a failed one is reused by the rerun of an unchanged
chunk.

Two guards, as Thanos' compactor (partial blocks deleted after a delay) and Iceberg's remove_orphan_files (files
younger than a grace period kept) have them: garbage younger than the grace is kept (a run of another database
or version may be about to record it), and a table is collected only under its lifecycle lock (no archive run of
this database is between the upload and the record of one of its objects). A manifest goes before its object:
data without a manifest is partial and never trusted, whereas a manifest left without its data would make the
rerun of that chunk trust a missing object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg

from ...db.connection import connect
from ...errors import LifecycleError
from ...identifiers import TableName
from ...reconcile import archive_stores
from .catalog import store_for
from .plan import MANIFEST_SUFFIX, manifest_key, table_prefix
from .store import ArchiveStore, PendingUpload, StoredObject
from .workdir import sweep

_DATA = ".parquet"
_LEGACY_SCRATCH = timedelta(hours=1)


@dataclass(frozen=True)
class Garbage:
    store_url: str
    key: str
    kind: str            # object | upload
    reason: str
    bytes: int | None
    modified: datetime   # an upload: when it started
    upload: PendingUpload | None = None

    def describe(self) -> str:
        size = "" if self.bytes is None else f", {self.bytes} bytes"
        what = "incomplete upload of" if self.kind == "upload" else "object"
        return f"{what} {self.store_url.rstrip('/')}/{self.key} ({self.reason}{size}, {self.modified:%Y-%m-%d %H:%M:%S}Z)"


@dataclass(frozen=True)
class Collected:
    garbage: Garbage
    action: str          # deleted | aborted | would delete | would abort | kept | failed
    error: str | None = None

    def describe(self) -> str:
        tail = f": {self.error}" if self.error else ""
        return f"{self.action}: {self.garbage.describe()}{tail}"


@dataclass
class GcReport:
    items: list[Collected] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # tables a run held the lock of
    errors: list[str] = field(default_factory=list)    # stores that could not be listed
    scratch_removed: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[Collected]:
        return [c for c in self.items if c.action == "failed"]


def _ours(key: str) -> bool:
    """<table>/<name>: one level, as object_key writes them (a deeper key belongs to another store's prefix)."""
    return key.count("/") == 1 and key.endswith((_DATA, _DATA + MANIFEST_SUFFIX))


def plan(store_url: str, objects: list[StoredObject], uploads: list[PendingUpload], referenced: set[str],
         superseded: set[str], cutoff: datetime) -> tuple[list[Garbage], list[Garbage]]:
    """(collect, keep): the garbage among `objects` and `uploads`, split at `cutoff` (older: collect). Pure.
    `referenced`: the object keys lifecycle.archives names; `superseded`: keys the slices' history once named.
    Keys outside the archive's layout (<table>/<...>.parquet and its manifest) are not garbage: not ours."""
    by_key = {o.key: o for o in objects if _ours(o.key)}
    collect: list[Garbage] = []
    keep: list[Garbage] = []
    data = sorted(k for k in by_key if k.endswith(_DATA))
    orphan_manifests = sorted(k for k in by_key if k.endswith(_DATA + MANIFEST_SUFFIX)
                              and k.removesuffix(MANIFEST_SUFFIX) not in by_key)
    for key in data + [m.removesuffix(MANIFEST_SUFFIX) for m in orphan_manifests]:
        if key in referenced:
            continue
        manifest = by_key.get(manifest_key(key))
        obj = by_key.get(key)
        reason = ("superseded: its chunk's record names another object" if key in superseded
                  else "partial: no manifest" if manifest is None
                  else "manifest without its object" if obj is None
                  else "unreferenced: never recorded")
        pair = [Garbage(store_url, o.key, "object", reason, o.size, o.modified) for o in (manifest, obj) if o]
        (collect if all(g.modified < cutoff for g in pair) else keep).extend(pair)
    for up in sorted((u for u in uploads if _ours(u.key)), key=lambda u: (u.key, u.started)):
        g = Garbage(store_url, up.key, "upload", "incomplete upload", None, up.started, up)
        (collect if up.started < cutoff else keep).append(g)
    return collect, keep


def _record(conn: psycopg.Connection, c: Collected) -> None:
    g = c.garbage
    conn.execute("INSERT INTO lifecycle.archive_gc (store_url, object_key, kind, reason, bytes, last_modified, "
                 "action, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (g.store_url, g.key, g.kind, g.reason, g.bytes, g.modified, c.action, c.error))


def _remove(store: ArchiveStore, g: Garbage) -> Collected:
    try:
        if g.upload is not None:
            store.abort(g.upload)
            return Collected(g, "aborted")
        store.delete(g.key)
        return Collected(g, "deleted")
    except LifecycleError as exc:
        return Collected(g, "failed", str(exc))


def grace_of(conn: psycopg.Connection, grace: str | timedelta) -> timedelta:
    """The grace as PostgreSQL reads an interval ('1h', '30 minutes', '2 days'); never negative."""
    if isinstance(grace, str):
        try:
            row = conn.execute("SELECT %s::interval", (grace,)).fetchone()
        except psycopg.errors.DataError:
            raise LifecycleError(f"--grace {grace!r}: not an interval; e.g. 1h, 30 minutes, 2 days") from None
        grace = row[0] if row else timedelta(0)
    if grace < timedelta(0):
        raise LifecycleError(f"--grace {grace}: a grace period is zero or more")
    return grace


def _targets(conn: psycopg.Connection, table: str | None) -> list[tuple[str, str]]:
    if conn.execute("SELECT to_regclass('lifecycle.archive_gc') IS NULL").fetchone() != (False,):
        raise LifecycleError("the lifecycle schema in this database has no lifecycle.archive_gc (its migration "
                             "*_archive_gc.sql is pending): run `pulumi up` to migrate it (LifecycleSchema) before "
                             "collecting archive garbage")
    label = TableName.parse(table).qualified if table else None
    rows = conn.execute("SELECT DISTINCT store_url, hypertable FROM lifecycle.archives WHERE store_url IS NOT NULL "
                        "AND (%(t)s::text IS NULL OR hypertable = %(t)s) ORDER BY 1, 2", {"t": label}).fetchall()
    return [(url, ht) for url, ht in rows]


def _keys(conn: psycopg.Connection, query: str, *params: str) -> set[str]:
    return {k for (k,) in conn.execute(query, params).fetchall() if k}


def _collect_table(conn: psycopg.Connection, store: ArchiveStore, hypertable: str, grace: timedelta,
                   dry_run: bool) -> list[Collected]:
    # Any store's references count (one location may be recorded under two spellings of its URL), and so does
    # any object the history says rows were dropped into: it may be their only copy, even if its current record
    # was deleted by hand.
    referenced = _keys(conn, "SELECT object_key FROM lifecycle.archives WHERE hypertable = %s UNION "
                             "SELECT object_key FROM lifecycle.archive_metadata WHERE hypertable = %s AND "
                             "state = 'dropped'", hypertable, hypertable)
    superseded = _keys(conn, "SELECT DISTINCT object_key FROM lifecycle.archive_metadata WHERE hypertable = %s",
                       hypertable)
    prefix = table_prefix(hypertable)
    now = datetime.now(timezone.utc)
    collect, keep = plan(store.url, store.objects(prefix), store.uploads(prefix), referenced, superseded, now - grace)
    done = [Collected(g, "kept") for g in keep]
    for g in collect:
        if dry_run:
            done.append(Collected(g, "would abort" if g.upload else "would delete"))
            continue
        done.append(_remove(store, g))
        _record(conn, done[-1])
    return done


def collect(dsn: str, table: str | None = None, *, grace: str | timedelta = timedelta(hours=1),
            dry_run: bool = False, stores: dict[str, ArchiveStore] | None = None,
            scratch_root: Path | None = None, **store_options: Any) -> GcReport:
    """Remove (`dry_run`: list) the garbage of every store this database archived `table` (default: every
    table) to, older than `grace`; each removal recorded in lifecycle.archive_gc. Also removes the local scratch
    directories of killed runs (under `scratch_root`, default the temp dir)."""
    stores = dict(stores or {})
    report = GcReport()
    with connect(dsn) as conn:
        grace = grace_of(conn, grace)
        targets = _targets(conn, table)
        registered = archive_stores.registered_options(conn)
        for url, hypertable in targets:
            lock = f"lifecycle:{hypertable}"
            if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (lock,)).fetchone() == (True,):
                report.skipped.append(hypertable)
                continue
            try:
                store = store_for(stores, url, store_options, registered)
                report.items += _collect_table(conn, store, hypertable, grace, dry_run)
            except LifecycleError as exc:  # an unreachable store: the others are still collected
                report.errors.append(f"{hypertable} in {url}: {exc}")
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
    if not dry_run:
        # Earlier versions' directories carry no lock: only their age says their run is over.
        report.scratch_removed = sweep(scratch_root, legacy_age=max(grace, _LEGACY_SCRATCH).total_seconds())
    return report
