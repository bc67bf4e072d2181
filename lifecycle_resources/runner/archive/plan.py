"""Pure planning of the archive: object keys, the states a slice goes through, and what a run does next.

A slice is one chunk's rows as they were in one snapshot. Its key is deterministic: the table, the chunk's time
range and name, and the fingerprint of its export (the row count and the sha256 of the Parquet file), so the same
rows exported alike land on the same key (a rerun finds and reuses them) and rows that changed after an export
land on another key (a manifest is never replaced). Rows exported in another order (a chunk rewritten in between)
land on another key too: written again, the old object superseded (`lifecycle archive gc`)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from .timeaxis import Bound, as_json

MANIFEST_SUFFIX = ".manifest.json"
FORMAT = "timescale-lifecycle-archive/1"


class State(StrEnum):
    """lifecycle.archives.state. pending: being exported or uploaded (its object, if any, is partial);
    verified: the object and its manifest are published and match the snapshot; dropped: the chunk is gone from
    the database, its rows live in the object; failed: the last attempt stopped (see error); nothing dropped."""

    PENDING = "pending"
    VERIFIED = "verified"
    DROPPED = "dropped"
    FAILED = "failed"


class Snapshot(BaseModel):
    """A chunk's content as counted in one snapshot."""

    model_config = ConfigDict(frozen=True)

    hypertable: str  # schema.table
    chunk: str       # schema.chunk
    range_start: Bound  # the chunk's range: timestamps, or integers for integer time
    range_end: Bound
    row_count: int | None = None      # None: not counted (the run failed before its snapshot)
    export_sha256: str | None = None  # the sha256 of the Parquet file these rows were exported to
    # The xmin of the snapshot that counted (xid8; not in the key nor the manifest): a row written since then
    # carries a newer xmin, so the drop can tell an untouched chunk without hashing it again (archiver._drop).
    snapshot_xmin: int | None = None
    columns: tuple[tuple[str, str], ...] = ()  # (name, type) of the columns counted and hashed

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.row_count}:{self.export_sha256}".encode()).hexdigest()[:16]


def _stamp(t: Bound) -> str:
    return str(t) if isinstance(t, int) else t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def table_prefix(hypertable: str) -> str:
    """Where the objects of one hypertable live in a store: <schema>.<table>/ (percent-quoted)."""
    return f"{quote(hypertable, safe='._-')}/"


def object_key(s: Snapshot) -> str:
    """<schema>.<table>/<range_start>_<range_end>_<chunk>_<fingerprint>.parquet (names percent-quoted)."""
    chunk = s.chunk.rpartition(".")[2]
    return (f"{table_prefix(s.hypertable)}{_stamp(s.range_start)}_{_stamp(s.range_end)}_"
            f"{quote(chunk, safe='._-')}_{s.fingerprint}.parquet")


def manifest_key(key: str) -> str:
    return key + MANIFEST_SUFFIX


def manifest(s: Snapshot, *, key: str, size: int, sha256: str, columns: list[dict[str, str]],
             exported_at: datetime) -> bytes:
    """The manifest, written after its object is uploaded and verified: its presence means "complete"."""
    body = {"format": FORMAT, "key": key, "hypertable": s.hypertable, "chunk": s.chunk,
            "range_start": as_json(s.range_start), "range_end": as_json(s.range_end),
            "row_count": s.row_count, "bytes": size, "sha256": sha256,
            "columns": columns, "exported_at": exported_at.isoformat()}
    return json.dumps(body, indent=2, sort_keys=True).encode()


def manifest_problems(raw: bytes, s: Snapshot, key: str) -> list[str]:
    """Why a manifest found at `key` does not describe snapshot `s` (empty: it does)."""
    try:
        body: dict[str, Any] = json.loads(raw)
    except ValueError:
        return ["the manifest is not JSON"]
    want = {"format": FORMAT, "key": key, "hypertable": s.hypertable, "chunk": s.chunk, "row_count": s.row_count,
            "sha256": s.export_sha256}
    return [f"manifest {k} is {body.get(k)!r}, expected {v!r}" for k, v in want.items() if body.get(k) != v]

