"""Archive stores as the lifecycle schema records them (lifecycle.archive_stores, migration 009): where a retention
policy with an archive sends its chunks. One model for declared and read state; never credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from ..errors import InputError, LifecycleError

ACCEPTED_URL = "file:///absolute/path or s3://bucket/prefix (credentials as access_key_id/secret_access_key secrets)"


class StoreRecord(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="ignore")

    store_name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None

    def describe(self) -> str:
        where = f" via {self.endpoint_url}" if self.endpoint_url else ""
        return f"archive store {self.store_name} ({self.url}{where})"


def check_url(resource: str | None, field: str, url: Any) -> str:
    """The URL as recorded (a trailing '/' dropped), or InputError naming what is accepted. Never echoes a
    URL that carries credentials."""
    if not isinstance(url, str) or not url:
        raise InputError(resource, field, None if not isinstance(url, str) else url, "no store URL", ACCEPTED_URL)
    parsed = urlparse(url)
    if parsed.password or parsed.username:
        raise InputError(resource, field, "<a URL with credentials>", "credentials never go in the URL", ACCEPTED_URL)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path.startswith("/"):
        return "file://" + (parsed.path.rstrip("/") or "/")
    if parsed.scheme == "s3" and parsed.netloc and not parsed.query:
        return f"s3://{parsed.netloc}{parsed.path}".rstrip("/")
    raise InputError(resource, field, url, "not a store URL", ACCEPTED_URL)


def check_endpoint(resource: str | None, endpoint_url: Any) -> str | None:
    if endpoint_url is None:
        return None
    parsed = urlparse(str(endpoint_url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.password or parsed.username:
        shown = "<a URL with credentials>" if parsed.password or parsed.username else endpoint_url
        raise InputError(resource, "endpoint_url", shown, "not an endpoint URL",
                         "http(s)://host[:port] of an S3-compatible server, without credentials")
    return str(endpoint_url).rstrip("/")


def installed(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('lifecycle.archive_stores') IS NOT NULL").fetchone()
    return bool(row and row[0])


def require_installed(conn: psycopg.Connection, what: str) -> None:
    if not installed(conn):
        raise LifecycleError(f"{what}: this database's lifecycle schema has no lifecycle.archive_stores (migration "
                             "009): declare LifecycleSchema in the stack (or update it) so that `pulumi up` "
                             "migrates it first")


def read(conn: psycopg.Connection, project: str, stack: str, name: str) -> StoreRecord | None:
    """The live store of that stack, None when not registered (or removed)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT store_name, url, endpoint_url, region FROM lifecycle.archive_stores "
                          "WHERE project = %s AND stack = %s AND store_name = %s AND enabled",
                          (project, stack, name)).fetchone()
    return StoreRecord.model_validate(row) if row else None


def register(conn: psycopg.Connection, project: str, stack: str, store: StoreRecord) -> None:
    conn.execute(
        "INSERT INTO lifecycle.archive_stores AS s (project, stack, store_name, url, endpoint_url, region, enabled, "
        "registered_at) VALUES (%s, %s, %s, %s, %s, %s, true, clock_timestamp()) "
        "ON CONFLICT (project, stack, store_name) DO UPDATE SET url = EXCLUDED.url, "
        "endpoint_url = EXCLUDED.endpoint_url, region = EXCLUDED.region, enabled = true, "
        "registered_at = EXCLUDED.registered_at",
        (project, stack, store.store_name, store.url, store.endpoint_url, store.region))


def unregister(conn: psycopg.Connection, project: str, stack: str, name: str) -> None:
    """Marked removed, never deleted: lifecycle.archives keeps each object's own store_url."""
    conn.execute("UPDATE lifecycle.archive_stores SET enabled = false, registered_at = clock_timestamp() "
                 "WHERE project = %s AND stack = %s AND store_name = %s", (project, stack, name))


def users(conn: psycopg.Connection, project: str, stack: str, name: str) -> list[str]:
    """The live retention declarations of that stack archiving to the store."""
    rows = conn.execute("SELECT policy_name FROM lifecycle.policy_declarations WHERE project = %s AND stack = %s "
                        "AND enabled AND kind = 'retention' AND parameters ->> 'archive_store' = %s "
                        "ORDER BY policy_name", (project, stack, name)).fetchall()
    return [r[0] for r in rows]


def registered_options(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    """Per store URL, the endpoint and region its latest registration names: what restore and verify use for
    objects the runner wrote there, unless told another endpoint."""
    if not installed(conn):
        return {}
    rows = conn.execute("SELECT DISTINCT ON (url) url, endpoint_url, region FROM lifecycle.archive_stores "
                        "ORDER BY url, registered_at DESC").fetchall()
    return {url: {k: v for k, v in (("endpoint_url", endpoint), ("region", region)) if v}
            for url, endpoint, region in rows}
