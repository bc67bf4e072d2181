"""A smoke run of `make bench` at N=4 (one table), so the harness cannot rot silently. No timed assertion:
it checks that every step ran, the results were written, the checks that keep the bench honest hold, and
that it leaves nothing behind in a database it did not start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sql_run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def test_bench_smoke_n4(tsdb_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--dsn", tsdb_dsn, "--n", "4",
                           "--repeat", "1", "--no-warmup", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| N (tables) | `up`: product / floor = ratio |" in proc.stdout, proc.stdout
    (row,) = json.loads(out.read_text())["servers"]["given"]
    assert (row["n"], row["tables"], row["split"]) == (4, 1, [4])
    # Each stack's previews ran with --expect-no-changes (a change fails the bench): the shaped floor's too.
    for side in ("product", "floor", "shaped"):
        assert all(row[side][step] > 0 for step in ("up", "preview", "refresh")), row
        assert len(row[side]["preview_runs"]) == len(row[side]["refresh_runs"]) == 1, row
    # Each step's CPU per process kind: the engine, the program and the provider host each ran and spent some.
    for side in ("product", "floor", "shaped"):
        for step in ("up", "preview", "refresh"):
            cpu = row[side][f"{step}_cpu"]
            assert min(cpu["engine"], cpu["program"], cpu["provider"]) > 0, (side, step, cpu)
            assert cpu["total"] >= cpu["engine"] + cpu["program"] + cpu["provider"] - 0.02, (side, step, cpu)
    assert "| N (tables) | step | engine CPU: product / shaped / floor |" in proc.stdout, proc.stdout
    assert row["shaped_resources"] == 4, row
    assert min(row["shaped_shape"]["properties"]) > 0 and min(row["shaped_shape"]["input_bytes"]) > 0, row
    assert "| shaped floor `up` (product x) |" in proc.stdout, proc.stdout
    assert row["sql"]["apply"] > 0 and row["sql"]["read"] > 0 and row["sql"]["apply_per_resource"] > 0, row
    # The product's `up` statements replayed alone (each succeeding or failing as in the `up`, leaving what was
    # declared, or the bench fails); a statement log per `up`, BEGIN and COMMIT in it.
    assert row["sql"]["replay_up"] > 0, row
    assert "| its statements replayed alone (x SQL apply) |" in proc.stdout, proc.stdout
    # Each step's seconds inside our own code: the program's body (the three stacks), the provider's calls (ours).
    for step in ("up", "preview", "refresh"):
        for side in ("product", "floor", "shaped"):
            body = row[side][f"{step}_program"]
            assert body["import"] >= 0 and body["declare"] > 0, (side, step, body)
        db = row["provider_db"][step]
        # 4 checks (+ 4 creates in `up`, + 4 reads in a refresh), each provider's configure.
        assert db["operations"] >= 8 and db["cpu_seconds"] > 0, (step, db)
    assert row["product"]["preview_program"]["import"] > row["floor"]["preview_program"]["import"], row
    assert row["product"]["state_bytes"] > row["floor"]["state_bytes"] > 0, row
    assert "| N (tables) | step | program body, import + declarations: product / shaped / floor |" in proc.stdout
    assert sql_run(tsdb_dsn, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench%%'") == []
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM timescaledb_information.jobs "
                             "WHERE hypertable_schema LIKE 'bench%%'") == [(0,)]


def test_bench_catalog_check_fails_loudly(tsdb_dsn: str) -> None:
    """The honesty check: a schema without the declared hypertables and jobs fails the bench, saying what."""
    import bench

    with pytest.raises(bench.BenchError, match=r"found \{'hypertables': 0.*expected \{'hypertables': 1"):
        bench.check_catalog(tsdb_dsn, "bench_absent", [4], "the product stack")
