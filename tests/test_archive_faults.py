"""Crash the archiver (SIGKILL, through LIFECYCLE_ARCHIVE_FAULT) at each step, run it again: it converges with
nothing lost and nothing archived twice."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from lifecycle_resources.runner.archive.archiver import FAULT_ENV, STEPS
from lifecycle_resources.runner.archive.store import LocalStore
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import before_expiring_end, chunks, lifecycle, make_ticks, rows_text
from tests.conftest import sql_run

pytestmark = pytest.mark.integration

# The state the first chunk is left in by a crash at each step (None: not recorded at all).
LEFT = {"exported": "pending", "uploaded": "pending", "published": "pending", "verified": "verified",
        "dropping": "verified"}


@pytest.mark.parametrize("step", STEPS)
def test_archive_fault_at_each_step_converges(step: str, tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                             tmp_path: Path) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=1)
    where = before_expiring_end(tsdb_dsn, schema, "16 days")
    original = rows_text(tsdb_dsn, rel, where)
    first = chunks(tsdb_dsn, schema)[0]
    args = ("archive", "run", "--table", f"{schema}.ticks", "--older-than", "16 days", "--to", f"file://{tmp_path}/s")
    tmp = tmp_path / "tmp"  # the runs' own temp dir: what a killed run leaves there is seen, and must go
    tmp.mkdir()

    crashed = lifecycle(tsdb_dsn, *args, env={FAULT_ENV: step, "TMPDIR": str(tmp)})
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    # The killed chunk's export, and the next chunk's when the kill came in its upload's stage (the export of
    # chunk k+1 overlaps it): never more than two.
    leftovers = list(tmp.iterdir())
    assert 1 <= len(leftovers) <= 2 and all(p.name.startswith("lifecycle-archive-") for p in leftovers), leftovers
    assert any((p / "export.parquet").is_file() for p in leftovers), leftovers
    assert first in chunks(tsdb_dsn, schema)  # killed before (or inside) the drop's transaction: still there
    assert rows_text(tsdb_dsn, rel, where) == original
    assert sql_run(tsdb_dsn, "SELECT state FROM lifecycle.archives WHERE chunk_name = %s", (first,)) == [(LEFT[step],)]

    again = lifecycle(tsdb_dsn, *args, env={"TMPDIR": str(tmp)})
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(tmp.iterdir()) == []  # the killed run's export removed, the rerun's own too
    reused = step in ("published", "verified", "dropping")  # a manifest was written: the object is reused
    assert ("reused" in again.stdout.splitlines()[0]) is reused, again.stdout
    assert rows_text(tsdb_dsn, rel, where) == []
    states = sql_run(tsdb_dsn, "SELECT state, count(*) FROM lifecycle.archives WHERE hypertable = %s GROUP BY 1",
                     (f"{schema}.ticks",))
    n = len(again.stdout.splitlines()) - 1
    assert states == [("dropped", n)] and n >= 3
    keys = LocalStore(tmp_path / "s").keys()
    assert len([k for k in keys if k.endswith(".parquet")]) == n  # nothing archived twice
    assert len([k for k in keys if k.endswith(".manifest.json")]) == n

    restored = DataLifecycleManager(tsdb_dsn).restore(f"{schema}.ticks", "2000-01-01", "2100-01-01")
    assert sum(r.rows_loaded for r in restored) == len(original)
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original


def test_archive_corrupted_manifest_is_never_trusted(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                     tmp_path: Path) -> None:
    """A crash after publishing, then a damaged manifest: the rerun refuses the object and drops nothing."""
    rel = make_ticks(tsdb_dsn, schema, compress=0)
    first = chunks(tsdb_dsn, schema)[0]
    first_rows = rows_text(tsdb_dsn, first)
    args = ("archive", "run", "--table", f"{schema}.ticks", "--older-than", "18 days", "--to", f"file://{tmp_path}/s")
    assert lifecycle(tsdb_dsn, *args, env={FAULT_ENV: "published"}).returncode == -signal.SIGKILL
    [manifest] = [k for k in LocalStore(tmp_path / "s").keys() if k.endswith(".manifest.json")]
    (tmp_path / "s" / manifest).write_bytes(b"{garbage")

    again = lifecycle(tsdb_dsn, *args)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "FAILED: the published object does not match: the manifest is not JSON" in again.stdout.splitlines()[0]
    assert first in chunks(tsdb_dsn, schema)
    assert sql_run(tsdb_dsn, "SELECT state, error LIKE '%%not JSON%%' FROM lifecycle.archives WHERE chunk_name = %s",
                   (first,)) == [("failed", True)]
    assert first_rows and rows_text(tsdb_dsn, first) == first_rows  # the refused chunk keeps every row
