"""`make bench-archive` (scripts/bench_archive.py) run once on a small table, so that the harness cannot rot: its
figures are not asserted (no test asserts a time), its checks are (every row exported and archived)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, sql_run


@pytest.mark.integration
def test_bench_archive_runs_on_a_small_table(tsdb_dsn: str, lifecycle_schema: None) -> None:
    run = subprocess.run([sys.executable, "scripts/bench_archive.py", "--dsn", tsdb_dsn, "--rows", "3000",
                          "--repeat", "1", "--compressed", "1"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    for line in ("COPY TO STDOUT (text)", "COPY (FORMAT BINARY)", "export to Parquet", "archive (whole run)",
                 "3,000 rows", "of COPY", "of COPY BINARY", "archive / plain COPY", "peak RSS"):
        assert line in run.stdout, run.stdout
    assert sql_run(tsdb_dsn, "SELECT to_regnamespace('bench_archive')") == [(None,)]  # its schema dropped after
