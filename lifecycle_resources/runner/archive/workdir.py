"""Local scratch directories of archive, verify and restore runs, and the removal of those a killed run left.

A run's directory is <tmp>/<prefix><pid>-<random>; it holds `.owner`, a file the run keeps locked (flock) for
the directory's lifetime. The kernel releases the lock when the process dies (SIGKILL included), so a directory
whose lock can be taken belongs to no live run: `sweep` removes it. A reused pid cannot fool it, and a directory
of a live run is never touched. Directories of earlier versions (no pid in their name, no lock) are removed only
on request (`lifecycle archive gc`) and only once older than a grace period."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIXES = ("lifecycle-archive-", "lifecycle-verify-", "lifecycle-restore-")
OWNER = ".owner"
_PID = re.compile(r"^lifecycle-(?:archive|verify|restore)-(\d+)-")
_UNLOCKED_AGE = 60.0  # seconds


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private directory under the temp dir ($TMPDIR), removed on exit and by `sweep` once its process died."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    fd = os.open(path / OWNER, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _abandoned(path: Path, legacy_age: float | None) -> bool:
    try:
        fd = os.open(path / OWNER, os.O_RDWR)
    except FileNotFoundError:
        age = time.time() - path.stat().st_mtime
        if found := _PID.match(path.name):  # its run locks it right after creating it, or died in between
            return age > _UNLOCKED_AGE or not _alive(int(found.group(1)))
        return legacy_age is not None and age > legacy_age
    except PermissionError:
        return False  # another user's run
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # the lock (if taken) goes with it; a dead owner never takes it back
    return True


def _alive(pid: int) -> bool:
    """Whether a process of that pid exists (a reused pid counts: then the directory waits for its age)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: Path | None = None, *, legacy_age: float | None = None) -> list[Path]:
    """Remove the scratch directories under `root` (default: the temp dir) that no live run owns; with
    `legacy_age` (seconds), also those of earlier versions older than that. The directories removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(PREFIXES)]
    except OSError:
        return []
    for path in sorted(candidates):
        try:
            if path.is_symlink() or not path.is_dir() or not _abandoned(path, legacy_age):
                continue
        except OSError:
            continue  # removed meanwhile by its own run, or not ours to read
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed
