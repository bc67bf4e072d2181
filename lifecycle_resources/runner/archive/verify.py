"""An archived object against what was recorded of it: present, same size, same sha256, and a Parquet footer
declaring the recorded row count."""

from __future__ import annotations

from pathlib import Path

from .export import file_digest, parquet_rows
from .store import ArchiveStore


def object_problems(store: ArchiveStore, key: str, *, size: int | None, sha256: str | None, rows: int | None,
                    workdir: Path) -> list[str]:
    """Empty when the object matches; else what is wrong, one line each (never raises for a bad object)."""
    where = store.location(key)
    local = store.fetch(key, workdir)
    if local is None:
        return [f"{where}: missing"]
    got_size, got_sha = file_digest(local)
    problems = []
    if size is not None and got_size != size:
        problems.append(f"{where}: {got_size} bytes, recorded {size}")
    if sha256 is not None and got_sha != sha256:
        problems.append(f"{where}: sha256 {got_sha[:16]}.., recorded {sha256[:16]}..")
    try:
        footer = parquet_rows(local)
    except Exception as exc:  # noqa: BLE001 - any unreadable footer is a corrupted object
        problems.append(f"{where}: not a readable Parquet file ({exc})")
    else:
        if rows is not None and footer != rows:
            problems.append(f"{where}: the Parquet footer says {footer} rows, recorded {rows}")
    return problems
