"""The pure parts of `make bench` (scripts/bench_report.py): the N -> tables split, the timing file, the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench_report import DbTiming, expected_objects, markdown, median, read_timing, split  # noqa: E402


@pytest.mark.parametrize(("n", "counts"), [(4, [4]), (10, [4, 4, 2]), (13, [4, 4, 4, 1]), (100, [4] * 25),
                                           (400, [4] * 100)])
def test_bench_split_full_tables_then_the_rest(n: int, counts: list[int]) -> None:
    assert split(n) == counts
    assert sum(counts) == n


def test_bench_split_refuses_no_resources() -> None:
    with pytest.raises(ValueError, match="N=0"):
        split(0)


def test_bench_expected_objects_by_kind() -> None:
    assert expected_objects([4, 4, 2]) == {"hypertables": 3, "compression_enabled": 3, "policy_compression": 2,
                                           "policy_retention": 2}
    assert expected_objects([4, 1]) == {"hypertables": 2, "compression_enabled": 1, "policy_compression": 1,
                                        "policy_retention": 1}


def test_bench_timing_file_summed(tmp_path: Path) -> None:
    path = tmp_path / "up.jsonl"
    records = [{"op": "create", "kind": "Hypertable", "resource": "t000", "db_seconds": 0.012, "statements": 3},
               {"op": "create", "kind": "RetentionPolicy", "resource": "t000-retention", "db_seconds": 0.0305,
                "statements": 2}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert read_timing(path) == DbTiming(seconds=0.0425, operations=2, statements=5)


def test_bench_timing_file_absent_is_none(tmp_path: Path) -> None:
    assert read_timing(tmp_path / "missing.jsonl") is None


def test_bench_timing_file_malformed_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "up.jsonl"
    path.write_text('{"db_seconds": 0.1}\n{"op": "create"}\n')
    with pytest.raises(ValueError, match=r"up\.jsonl:2: not a timing record"):
        read_timing(path)


def test_bench_median_of_runs() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([5.0]) == 5.0


def _row(n: int, db: dict | None) -> dict:
    return {"n": n, "tables": 3, "product": {"up": 6.0, "preview": 3.0, "refresh": 4.5},
            "floor": {"up": 3.0, "preview": 2.0, "refresh": 3.0}, "sql": {"apply": 0.05, "read": 0.02},
            "provider_db": {"up": db, "preview": None, "refresh": None}}


def test_bench_markdown_table_ratios_and_na() -> None:
    text = markdown("embedded", [_row(10, None), _row(12, {"seconds": 0.1, "operations": 10, "statements": 30})])
    lines = text.splitlines()
    assert lines[0] == "**embedded**"
    assert lines[2].startswith("| N (tables) | `up`: product / floor = ratio | preview | preview --refresh |")
    assert lines[3].count("|") == lines[2].count("|")
    assert lines[4] == ("| 10 (3) | 6.00 s / 3.00 s = 2.00x | 3.00 s / 2.00 s = 1.50x | 4.50 s / 3.00 s = 1.50x "
                        "| 0.05 s / 0.02 s | n/a |")
    assert lines[5].endswith("| 0.10 s (2.00x) |")
