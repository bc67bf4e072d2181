"""The pure parts of `make bench` (scripts/bench_report.py): the N -> tables split, the timing file, the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench_report import (DbTiming, expected_objects, markdown, median, read_timing, shape,  # noqa: E402
                          shaped_resources, split)


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
            "floor": {"up": 3.0, "preview": 2.0, "refresh": 3.0}, "shaped": {"up": 4.0, "preview": 2.5, "refresh": 3.6},
            "sql": {"apply": 0.05, "read": 0.02}, "provider_db": {"up": db, "preview": None, "refresh": None}}


def test_bench_markdown_table_ratios_and_na() -> None:
    text = markdown("embedded", [_row(10, None), _row(12, {"seconds": 0.1, "operations": 10, "statements": 30})])
    lines = text.splitlines()
    assert lines[0] == "**embedded**"
    assert lines[2].startswith("| N (tables) | `up`: product / floor = ratio | preview | preview --refresh |")
    assert lines[3].count("|") == lines[2].count("|")
    assert lines[2].endswith("| shaped floor `up` (product x) | shaped preview | shaped preview --refresh |")
    assert lines[4] == ("| 10 (3) | 6.00 s / 3.00 s = 2.00x | 3.00 s / 2.00 s = 1.50x | 4.50 s / 3.00 s = 1.50x "
                        "| 0.05 s / 0.02 s | n/a | 4.00 s (1.50x) | 2.50 s (1.20x) | 3.60 s (1.25x) |")
    assert "| 0.10 s (2.00x) | 4.00 s (1.50x) |" in lines[5]


def test_bench_markdown_results_without_shaped_floor_na() -> None:
    row = _row(10, None)
    del row["shaped"]  # a latest.json written before the shaped floor existed
    assert markdown("native", [row]).splitlines()[-1].endswith("| n/a | n/a | n/a | n/a |")


def _exported(urn_name: str, type_: str, deps: list[str], **extra: object) -> dict:
    urn = f"urn:pulumi:bench::bench-product-4::{type_}::{urn_name}"
    return {"urn": urn, "type": type_, "id": f"id-{urn_name}", "custom": True,
            "dependencies": [f"urn:pulumi:bench::bench-product-4::pulumi-python:dynamic/timescale:Hypertable::{d}"
                             for d in deps], **extra}


def test_bench_shaped_resources_from_export() -> None:
    ht, cs = "pulumi-python:dynamic/timescale:Hypertable", "pulumi-python:dynamic/timescale:CompressionSettings"
    export = {"deployment": {"resources": [
        {"urn": "urn:pulumi:bench::bench-product-4::pulumi:pulumi:Stack::bench-product-4-bench",
         "type": "pulumi:pulumi:Stack", "custom": False},
        _exported("t000", ht, [], inputs={"table": "s.t000", "__provider": "pickled", "__lifecycle": {"v": 1}},
                  outputs={"table": "s.t000", "__provider": "pickled", "adopted": False}),
        _exported("t000-compression", cs, ["t000"], inputs={"hypertable": "s.t000"},
                  outputs={"hypertable": "s.t000", "enabled": True}),
    ]}}
    assert shaped_resources(export) == {
        "t000": {"type": ht, "id": "id-t000", "inputs": {"table": "s.t000", "__lifecycle": {"v": 1}},
                 "outputs": {"table": "s.t000", "adopted": False}, "dependencies": []},
        "t000-compression": {"type": cs, "id": "id-t000-compression", "inputs": {"hypertable": "s.t000"},
                             "outputs": {"hypertable": "s.t000", "enabled": True}, "dependencies": ["t000"]},
    }
    assert list(shaped_resources(export)) == ["t000", "t000-compression"]  # the state's order: dependencies first


def test_bench_shape_counts_properties_and_bytes() -> None:
    resources = {"a": {"inputs": {"x": 1, "y": "ab"}, "outputs": {"x": 1, "z": True}},
                 "b": {"inputs": {"x": 1}, "outputs": {}}}
    assert shape(resources) == {"properties": [1, 3], "input_bytes": [8, 19], "output_bytes": [2, 19]}


def test_bench_shaped_resources_secret_refused() -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "x"}
    export = {"deployment": {"resources": [
        _exported("t000", "pulumi-python:dynamic/timescale:Hypertable", [], inputs={"table": "s.t000"},
                  outputs={"table": "s.t000", "dsn": secret})]}}
    with pytest.raises(ValueError, match=r"t000\.outputs\.dsn is a secret"):
        shaped_resources(export)


def test_bench_shaped_provider_returns_the_product_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench_noop

    # Two resources of one table share its id, as the product's do: inputs and outputs tell them apart.
    recorded = {"t000": {"type": "t", "id": "s.t000", "inputs": {"table": "s.t000", "retries": 3, "x": None},
                         "outputs": {"table": "s.t000", "retries": 3, "adopted": False}, "dependencies": []},
                "t000-c": {"type": "t", "id": "s.t000", "inputs": {"hypertable": "s.t000", "retries": 3},
                           "outputs": {"hypertable": "s.t000", "retries": 3, "adopted": True},
                           "dependencies": ["t000"]}}
    path = tmp_path / "shaped.json"
    path.write_text(json.dumps(recorded))
    monkeypatch.setenv(bench_noop.SHAPED_ENV, str(path))
    bench_noop._recorded.cache_clear()
    provider = bench_noop.ShapedProvider()
    # As the engine gives them: numbers as doubles, the pickled provider, the unset properties dropped.
    news = {"table": "s.t000", "retries": 3.0, "__provider": "pickled"}
    checked = provider.check({}, news)
    assert (checked.inputs, checked.failures) == (recorded["t000"]["inputs"], [])
    created = provider.create({**checked.inputs, "__provider": "pickled"})
    assert (created.id, created.outs) == ("s.t000", recorded["t000"]["outputs"])
    assert created.outs is not recorded["t000"]["outputs"]
    olds = {**created.outs, "__provider": "pickled"}
    assert provider.diff("s.t000", olds, news).changes is False
    assert provider.diff("s.t000", olds, {**news, "retries": 4.0}).changes is True
    read = provider.read("s.t000", {**recorded["t000-c"]["outputs"], "__provider": "pickled"})
    assert (read.id, read.outs, read.inputs) == ("s.t000", recorded["t000-c"]["outputs"],
                                                 recorded["t000-c"]["inputs"])
    bench_noop._recorded.cache_clear()
