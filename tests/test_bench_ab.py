"""`make bench-ab`: another revision's product against this checkout's. The pure parts (medians, the table, a
bad revision) as unit tests; one smoke run at N=4 against a server of the tests, so that the harness cannot rot.
No timed assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sql_run

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import bench  # noqa: E402
import bench_ab  # noqa: E402


def _side(up: float, db: float | None) -> dict:
    timing = None if db is None else {"seconds": db, "statements": 40, "cpu_seconds": 0.3, "operations": 8}
    return {"origin": "x", "up": up, "preview": 2.0, "refresh": 3.0,
            "up_db": timing, "preview_db": timing, "refresh_db": timing}


def test_bench_ab_summary_takes_medians_per_side() -> None:
    rounds = [{"base": _side(5.0, 1.0), "head": _side(4.0, 0.5)},
              {"base": _side(7.0, 3.0), "head": _side(4.4, 0.7)},
              {"base": _side(6.0, 2.0), "head": _side(9.0, 0.6)}]
    med = bench_ab.summary(rounds)
    assert (med["base"]["up"], med["head"]["up"]) == (6.0, 4.4)
    assert (med["base"]["up_db_seconds"], med["head"]["up_db_seconds"]) == (2.0, 0.6)
    assert med["head"]["refresh_db_statements"] == 40


def test_bench_ab_markdown_rounds_medians_and_ratios() -> None:
    rounds = [{"base": _side(5.0, 1.0), "head": _side(4.0, 0.5)}, {"base": _side(7.0, 3.0), "head": _side(5.0, 1.5)}]
    lines = bench_ab.markdown(rounds, "a" * 40, "b" * 40).splitlines()
    assert lines[2] == "| base (aaaaaaa) | up | 5.00 / 7.00 | 6.00 s | 2.00 / 40 / 0.30 |"
    assert lines[5] == "| head (bbbbbbb) | up | 4.00 / 5.00 | 4.50 s | 1.00 / 40 / 0.30 |"
    assert "| up | 0.75x | 0.50x | 1.00x | 1.00x |" in lines


def test_bench_ab_markdown_without_provider_timing_na() -> None:
    rounds = [{"base": _side(5.0, None), "head": _side(4.0, 0.5)}]
    text = bench_ab.markdown(rounds, "a" * 40, "b" * 40)
    assert "| base (aaaaaaa) | up | 5.00 | 5.00 s | n/a |" in text
    assert "| up | 0.80x | n/a | n/a | n/a |" in text


def test_bench_ab_refuses_a_revision_that_is_not_a_commit(tmp_path: Path) -> None:
    with pytest.raises(bench.BenchError, match=r"--base 'no-such-rev': not a commit of this repository"):
        bench_ab.export("no-such-rev", tmp_path / "base")
    assert not (tmp_path / "base").exists()


@pytest.mark.e2e
def test_bench_ab_smoke_n4_against_head(tsdb_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_ab.py"), "--base", "HEAD", "--n", "4",
                           "--rounds", "1", "--dsn", tsdb_dsn, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| step | head / base, seconds | database seconds | statements | provider CPU |" in proc.stdout
    result = json.loads(out.read_text())
    (round_,) = result["rounds"]
    for side in ("base", "head"):
        assert all(round_[side][step] > 0 for step in ("up", "preview", "refresh")), round_[side]
        assert round_[side]["up_db"]["statements"] > 0, round_[side]
    # Each side ran its own code: the base from its export, this checkout from the repository.
    assert "lifecycle-bench-ab-" in round_["base"]["origin"], round_["base"]["origin"]
    assert round_["head"]["origin"].startswith(str(REPO)), round_["head"]["origin"]
    # Nothing left behind in a database it did not start: its schemas and its stacks' owner records.
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench_ab_%'") == [(0,)]
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM _timescale_lifecycle.owners WHERE project LIKE 'bench-%'") == [(0,)]
