"""Local scratch directories: removed by their run, and by the next run or gc once their run was killed; never
while their run lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lifecycle_resources.runner.archive.workdir import scratch, sweep
from tests.conftest import REPO

_KILLED = ("import os, signal, sys\nfrom lifecycle_resources.runner.archive.workdir import scratch\n"
           "with scratch('lifecycle-archive-') as d:\n    (d / 'export.parquet').write_bytes(b'x' * 100)\n"
           "    os.kill(os.getpid(), signal.SIGKILL)\n")


def test_unit_scratch_names_its_pid_and_is_removed_on_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    with scratch("lifecycle-archive-") as d:
        assert d.parent == tmp_path and d.name.startswith(f"lifecycle-archive-{os.getpid()}-")
        assert sweep(tmp_path) == [] and d.is_dir()  # its run lives: kept
    assert list(tmp_path.iterdir()) == []


def test_unit_sweep_removes_the_scratch_of_a_killed_run_only(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", _KILLED], cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert killed.returncode == -signal.SIGKILL
    [left] = tmp_path.iterdir()
    assert (left / "export.parquet").is_file()
    legacy = tmp_path / "lifecycle-archive-k3j2h1g0"  # an earlier version's: no pid, no lock
    legacy.mkdir()
    unrelated = tmp_path / "other-dir"
    unrelated.mkdir()

    assert sweep(tmp_path) == [left]
    assert sorted(tmp_path.iterdir()) == [legacy, unrelated]
    assert sweep(tmp_path, legacy_age=3600) == []  # young: maybe a run of that version
    stamp = time.time() - 7200
    os.utime(legacy, (stamp, stamp))
    assert sweep(tmp_path, legacy_age=3600) == [legacy]
    assert list(tmp_path.iterdir()) == [unrelated]


def test_unit_sweep_removes_a_killed_runs_scratch_it_had_not_locked_yet(tmp_path: Path) -> None:
    """Killed between creating its directory and locking it (CI caught one: a parallel export killed with its run):
    its pid is gone, so the next run removes it at once instead of a minute later; a live pid's waits."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"lifecycle-archive-{int(gone.stdout)}-abc123"
    dead.mkdir()
    live = tmp_path / f"lifecycle-archive-{os.getpid()}-def456"  # this process: between mkdtemp and its lock
    live.mkdir()
    assert sweep(tmp_path) == [dead]
    assert list(tmp_path.iterdir()) == [live]
    stamp = time.time() - 120
    os.utime(live, (stamp, stamp))
    assert sweep(tmp_path) == [live]  # past the minute a run takes to lock: abandoned, whoever has that pid now
