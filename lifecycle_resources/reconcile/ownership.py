"""One owner per managed object, recorded in the database where every stack and project sees it.

Like Helm 3's release labels on the objects it manages: each hypertable, each table's compression settings and
each policy job (keyed by job kind and table, not job id) names the project, stack and resource that own it.
A resource refuses, at preview, an object owned by another stack unless it says `adopt=True`; a delete acts
only on what its own resource owns. The ledger lives in its own schema, not in `lifecycle` (which a stack may
drop or never declare), and is created on demand inside the apply transaction that first records an owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import catalog
from ..errors import InputError

SCHEMA = "_timescale_lifecycle"
TABLE = "owners"
_LEDGER = sql.Identifier(SCHEMA, TABLE)


class Owner(BaseModel):
    """Who declares an object: a resource of one stack of one project."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    project: str
    stack: str
    resource_type: str
    resource_name: str

    @classmethod
    def from_props(cls, props: dict[str, Any]) -> Owner | None:
        raw = props.get("owner")
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValueError:
            return None

    def same_stack(self, other: Owner) -> bool:
        return (self.project, self.stack) == (other.project, other.stack)

    def describe(self) -> str:
        return f"{self.resource_type} {self.resource_name} of stack {self.project}/{self.stack}"


@dataclass(frozen=True)
class ManagedObject:
    """An object as the ledger keys it: ("hypertable", "s.t"), ("job:policy_retention", "s.t")."""

    kind: str
    key: str


@dataclass(frozen=True)
class Claim:
    """The operation that records `owner` for an object that exists already (adopted or taken over)."""

    destructive: ClassVar[bool] = False

    obj: ManagedObject
    what: str                 # the object in words: "job 1002 (RetentionPolicy on s.t)"
    owner: Owner
    previous: Owner | None

    def describe(self) -> str:
        if self.previous is None:
            return f"adopt {self.what} (made outside Pulumi)"
        if self.previous.same_stack(self.owner):
            return f"take over {self.what} from {self.previous.resource_type} {self.previous.resource_name} " \
                   "(renamed in this stack)"
        return f"take over {self.what} from {self.previous.describe()}"


def _ledger_exists(conn: psycopg.Connection) -> bool:
    def probe() -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{TABLE}",)).fetchone()
        return bool(row and row[0])
    return catalog.present(conn, "ownership ledger", probe)


def owner_read(conn: psycopg.Connection, obj: ManagedObject) -> catalog.Read | None:
    """read_owner()'s query of one object, for catalog.bundle(); None while no ledger exists (the first create
    makes it)."""
    if not _ledger_exists(conn):
        return None
    return catalog.Read("owners", f"{obj.kind}/{obj.key}", sql.SQL(
        "SELECT project, stack, resource_type, resource_name FROM {} WHERE object_kind = %s AND object_key = %s"
    ).format(_LEDGER), (obj.kind, obj.key))


def read_owner(conn: psycopg.Connection, obj: ManagedObject) -> Owner | None:
    """The recorded owner; None when nobody recorded one (or no stack ever used the ledger). Read-only.
    Outside a transaction, the whole ledger in one query (catalog.cached)."""
    def one() -> Owner | None:
        read = owner_read(conn, obj)
        found = catalog.rows(conn, read) if read is not None else []
        return Owner(project=found[0][0], stack=found[0][1], resource_type=found[0][2],
                     resource_name=found[0][3]) if found else None

    def ledger() -> dict[tuple[str, str], Owner]:
        if not _ledger_exists(conn):
            return {}
        rows = conn.execute(sql.SQL("SELECT object_kind, object_key, project, stack, resource_type, resource_name "
                                    "FROM {}").format(_LEDGER)).fetchall()
        return {(r[0], r[1]): Owner(project=r[2], stack=r[3], resource_type=r[4], resource_name=r[5]) for r in rows}

    if not catalog.shared_reads(conn):
        return one()
    return catalog.cached(conn, "owners", "", ledger).get((obj.kind, obj.key))


def ensure_ledger(conn: psycopg.Connection) -> None:
    """Create the ledger once; concurrent applies serialise on a lock so only one of them creates it."""
    if _ledger_exists(conn):
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle:ownership'))")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (object_kind text NOT NULL, object_key text NOT NULL, "
        "project text NOT NULL, stack text NOT NULL, resource_type text NOT NULL, resource_name text NOT NULL, "
        "recorded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (object_kind, object_key))").format(_LEDGER))


def decide(obj: ManagedObject, what: str, exists: bool, previous: Owner | None, owner: Owner | None,
           adopt: bool, resource: str | None) -> Claim | None:
    """Pure. The claim applying this resource makes, or a refusal when another stack owns the object."""
    if owner is None or previous == owner:
        return None
    if previous is not None and not previous.same_stack(owner) and not adopt:
        raise InputError(resource, "adopt", adopt, f"{what} is owned by {previous.describe()}",
                         "adopt=True to take it over from that stack, or remove it from that stack first")
    if previous is None and not exists:
        return None  # created by this resource: recording it is bookkeeping, not a change to show
    return Claim(obj, what, owner, previous)


def claim(conn: psycopg.Connection, obj: ManagedObject, owner: Owner | None) -> None:
    """Record `owner` for the object (inside the caller's apply transaction)."""
    record = claim_statement(conn, obj, owner)
    if record is not None:
        conn.execute(*record)


def claim_statement(conn: psycopg.Connection, obj: ManagedObject,
                    owner: Owner | None) -> tuple[sql.Composed, tuple[str, ...]] | None:
    """The INSERT that claim() runs, with its parameters (None without an owner), for a caller that sends it
    with another write in one statement (as a data-modifying WITH); the ledger is created first if missing."""
    if owner is None:
        return None
    ensure_ledger(conn)
    return (sql.SQL(
        "INSERT INTO {} (object_kind, object_key, project, stack, resource_type, resource_name) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (object_kind, object_key) DO UPDATE SET "
        "project = excluded.project, stack = excluded.stack, resource_type = excluded.resource_type, "
        "resource_name = excluded.resource_name, recorded_at = now()").format(_LEDGER),
        (obj.kind, obj.key, owner.project, owner.stack, owner.resource_type, owner.resource_name))


def release(conn: psycopg.Connection, obj: ManagedObject, owner: Owner | None) -> Owner | None:
    """Forget `owner`'s record before its delete acts. Returns the other owner when someone else owns the
    object now: the caller must then leave the object as it is."""
    current = read_owner(conn, obj)
    if current is None:
        return None
    if owner is not None and current == owner:
        conn.execute(sql.SQL("DELETE FROM {} WHERE object_kind = %s AND object_key = %s").format(_LEDGER),
                     (obj.kind, obj.key))
        return None
    return current
