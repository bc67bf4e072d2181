"""Progress of archive and restore: each chunk's step heard as it starts and ends, through runner/progress.py
(a bar on a terminal, plain lines otherwise)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lifecycle_resources.runner.archive.archiver import archive
from lifecycle_resources.runner.archive.store import open_store
from lifecycle_resources.runner.progress import Steps, printed
from lifecycle_resources.runner.restore import restore
from tests.archive_helpers import lifecycle, make_ticks


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_printed_plain_lines_and_terminal_bar() -> None:
    for tty in (False, True):
        err, out = (Terminal() if tty else io.StringIO()), io.StringIO()
        with Steps("archive", stream=err) as steps:
            said = printed(steps, out)
            said(1, 2, "chunk_a", None)
            said(1, 2, "chunk_a", "chunk_a: archived")
            said(2, 2, "chunk_b", None)
            said(2, 2, "chunk_b", "chunk_b: archived")
        # the finished steps are lines of the command's output either way; the bar lives on stderr only
        assert out.getvalue() == "chunk_a: archived\nchunk_b: archived\n"
        assert steps.tty is tty
        assert ("archive: chunk_b" in err.getvalue()) is tty, err.getvalue()


@pytest.mark.integration
def test_progress_archive_and_restore_each_chunk(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                 tmp_path: Path) -> None:
    make_ticks(tsdb_dsn, schema)
    heard: list[tuple[int, int, str, str | None]] = []
    store = open_store(f"file://{tmp_path}/store")
    results = archive(tsdb_dsn, f"{schema}.ticks", "15 days", store,
                      progress=lambda i, n, label, text: heard.append((i, n, label, text)))
    n = len(results)
    assert n >= 4
    # Each chunk is heard as it starts and as it ends, in order; the export of chunk k+1 overlaps the upload of
    # chunk k, so k+1 may start before k ends, never k+2.
    starts = [(i, n, r.chunk, None) for i, r in enumerate(results, 1)]
    ends = [(i, n, r.chunk, r.describe()) for i, r in enumerate(results, 1)]
    assert [h for h in heard if h[3] is None] == starts and [h for h in heard if h[3] is not None] == ends, heard
    for i in range(n):
        end = heard.index(ends[i])
        assert heard.index(starts[i]) < end and sum(h[3] is None for h in heard[:end]) <= i + 2, heard

    heard.clear()
    done = restore(tsdb_dsn, f"{schema}.ticks", "2000-01-01", "2100-01-01", f"{schema}.back",
                   progress=lambda i, n, label, text: heard.append((i, n, label, text)))
    assert len(done) == n and len(heard) == 4 * n
    assert [h[0] for h in heard[::2]] == list(range(1, 2 * n + 1)) and {h[1] for h in heard} == {2 * n}
    assert all(h[2].startswith("verify ") and h[3].endswith(": verified") for h in heard[1:2 * n:2])
    assert [h[3] for h in heard[2 * n + 1::2]] == [r.describe() for r in done]


@pytest.mark.integration
def test_progress_cli_archive_and_restore_plain_lines(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                      tmp_path: Path) -> None:
    """Not a terminal (captured): one line per chunk as it is done, no bar drawing in the output."""
    make_ticks(tsdb_dsn, schema, compress=0)
    url = f"file://{tmp_path}/store"
    run = lifecycle(tsdb_dsn, "archive", "run", "--table", f"{schema}.ticks", "--older-than", "15 days", "--to", url)
    assert run.returncode == 0, run.stderr
    archived = [line for line in run.stdout.splitlines() if ": archived" in line]
    assert len(archived) >= 4 and "\x1b" not in run.stdout + run.stderr, run.stdout
    back = lifecycle(tsdb_dsn, "restore", "--table", f"{schema}.ticks", "--from", "2000-01-01", "--to",
                     "2100-01-01", "--into", f"{schema}.back")
    assert back.returncode == 0, back.stderr
    lines = back.stdout.splitlines()
    assert sum(line.endswith(": verified") for line in lines) == len(archived)
    assert sum(" rows loaded from " in line for line in lines) == len(archived)
    assert "\x1b" not in back.stdout + back.stderr
