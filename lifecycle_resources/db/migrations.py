"""Ordered, versioned SQL migrations of the `lifecycle` schema: loaded from files (migration_files.py, which the
Pulumi program reads without this module's driver and pydantic), planned purely against what the database
recorded, applied in one transaction, each recorded with its checksum."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict

from . import migration_files
from .migration_files import DEFAULT_DIR, MigrationsMissing  # noqa: F401 (their old import path)

SCHEMA = "lifecycle"
LEDGER = sql.Identifier(SCHEMA, "schema_migrations")


class Migration(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    name: str
    checksum: str  # sha256 of the file's bytes
    sql: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.version, self.name, self.checksum)


def load(directory: Traversable | Path | str = DEFAULT_DIR) -> list[Migration]:
    """Every `NNN_name.sql` file of the directory, ordered by its number (`999_` before `1000_`)."""
    return [Migration(**found) for found in migration_files.load(directory)]


def applied(conn: psycopg.Connection) -> list[Migration]:
    """What the database recorded; nothing when the schema was never migrated."""
    row = conn.execute("SELECT to_regclass('lifecycle.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute(sql.SQL("SELECT version, name, checksum FROM {} ORDER BY version").format(LEDGER)).fetchall()
    return [Migration(version=v, name=n, checksum=c) for v, n, c in rows]


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    pending: list[Migration]
    problems: list[str]


def plan(declared: list[Migration], recorded: list[Migration]) -> Plan:
    """Pure. Applied migrations are immutable: a changed or vanished one is a problem, never re-applied."""
    by_version = {m.version: m for m in declared}
    problems = []
    for done in recorded:
        now = by_version.get(done.version)
        if now is None:
            problems.append(f"{done.name} (version {done.version}) was applied but its file is gone")
        elif now.checksum != done.checksum or now.name != done.name:
            problems.append(f"{done.name} was applied with checksum {done.checksum[:12]}, but {now.name} now has "
                            f"{now.checksum[:12]}: an applied migration is never changed; revert the file and add "
                            "a new migration instead")
    last = max((m.version for m in recorded), default=0)
    pending = [m for m in declared if m.version not in {r.version for r in recorded}]
    late = [m.name for m in pending if m.version < last]
    if late:
        problems.append(f"{', '.join(late)} would apply before already-applied version {last}: "
                        "number new migrations after the last one")
    return Plan(pending=pending, problems=problems)


def apply(conn: psycopg.Connection, pending: list[Migration]) -> None:
    """Run the pending migrations and record them, inside the caller's transaction."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL, "
                         "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())").format(LEDGER))
    for migration in pending:
        conn.execute(migration.sql.encode())
        conn.execute(sql.SQL("INSERT INTO {} (version, name, checksum) VALUES ({}, {}, {})").format(
            LEDGER, sql.Literal(migration.version), sql.Literal(migration.name), sql.Literal(migration.checksum)))
