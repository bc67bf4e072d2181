"""db.metering.operation: the line each provider call appends to $LIFECYCLE_DB_TIMING, its CPU seconds included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lifecycle_resources.db import metering


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_operation_records_its_thread_cpu_from_the_callers_start(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "timing.jsonl"
    monkeypatch.setenv(metering.TIMING_ENV, str(path))
    with metering.operation("check", "Hypertable", "t000"):
        _burn(0.02)
    started = time.thread_time()
    _burn(0.05)  # the caller's imports, before the operation begins: counted from `started`
    with metering.operation("configure", "Hypertable", None, started):
        time.sleep(0.05)  # waiting is no CPU
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert (first["op"], first["kind"], first["resource"], first["statements"]) == ("check", "Hypertable", "t000", 0)
    assert 0.02 <= first["cpu_seconds"] < 0.2, first
    assert (second["op"], second["resource"]) == ("configure", "")
    assert 0.05 <= second["cpu_seconds"] < 0.09, second


def test_operation_writes_nothing_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metering.TIMING_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with metering.operation("check", "Hypertable", "t000"):
        pass
    assert list(tmp_path.iterdir()) == []
