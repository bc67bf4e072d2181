"""The pure parts of `make bench` (scripts/bench_report.py): the N -> tables split, the timing file, the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench_cpu import CpuWatch, kind_of  # noqa: E402
from bench_report import (DbTiming, expected_objects, markdown, markdown_cpu, markdown_ours, median,  # noqa: E402
                          median_cpu, median_fields, read_timing, shape, shaped_resources, split)


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
    assert read_timing(path) == DbTiming(seconds=0.0425, operations=2, statements=5, cpu_seconds=0.0)
    records[1]["cpu_seconds"] = 0.25
    records.append({"op": "configure", "kind": "Hypertable", "resource": "", "db_seconds": 0.0, "statements": 0,
                    "cpu_seconds": 0.125})
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert read_timing(path) == DbTiming(seconds=0.0425, operations=3, statements=5, cpu_seconds=0.375)


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


def test_bench_median_fields_of_runs_none_when_no_run_recorded() -> None:
    runs = [{"import": 0.1, "declare": 0.5}, None, {"import": 0.3, "declare": 0.4}, {"import": 0.2, "declare": 0.9}]
    assert median_fields(runs) == {"import": 0.2, "declare": 0.5}
    assert median_fields([None, None]) is None
    assert median_fields([]) is None


def test_bench_markdown_ours_program_body_provider_calls_and_state() -> None:
    row = _row(12, {"seconds": 0.5, "operations": 24, "statements": 81, "cpu_seconds": 0.3})
    row["provider_db"]["preview"] = {"seconds": 0.06, "operations": 24, "statements": 14}  # written before cpu
    for stack, body, size in (("product", {"import": 0.07, "declare": 0.031}, 46210), ("shaped", None, 44000),
                              ("floor", {"import": 0.0, "declare": 0.012}, None)):
        row[stack].update({"up_program": body, "preview_program": body, "state_bytes": size})
    lines = markdown_ours("native", [row]).splitlines()
    assert lines[0] == "**native**, seconds inside our own code"
    assert lines[2].startswith("| N (tables) | step | program body, import + declarations: product / shaped / floor")
    assert lines[3].count("|") == lines[2].count("|") == lines[4].count("|")
    assert lines[4] == "| 12 (3) | up | 0.07 + 0.03 / n/a / 0.00 + 0.01 | 0.30 (0.50) | 81 in 24 calls | 46 / 44 / n/a |"
    assert lines[5] == "| 12 (3) | preview | 0.07 + 0.03 / n/a / 0.00 + 0.01 | 0.00 (0.06) | 14 in 24 calls |  |"
    assert lines[6] == "| 12 (3) | refresh | n/a / n/a / n/a | n/a | n/a |  |"


def _row(n: int, db: dict | None) -> dict:
    return {"n": n, "tables": 3, "product": {"up": 6.0, "preview": 3.0, "refresh": 4.5},
            "floor": {"up": 3.0, "preview": 2.0, "refresh": 3.0}, "shaped": {"up": 4.0, "preview": 2.5, "refresh": 3.6},
            "sql": {"apply": 0.05, "read": 0.02, "apply_per_resource": 0.08, "replay_up": 0.02},
            "provider_db": {"up": db, "preview": None, "refresh": None}}


def test_bench_markdown_table_ratios_and_na() -> None:
    text = markdown("embedded", [_row(10, None), _row(12, {"seconds": 0.1, "operations": 10, "statements": 30})])
    lines = text.splitlines()
    assert lines[0] == "**embedded**"
    assert lines[2].startswith("| N (tables) | `up`: product / floor = ratio | preview | preview --refresh |")
    assert lines[3].count("|") == lines[2].count("|")
    assert lines[2].endswith("| shaped floor `up` (product x) | shaped preview | shaped preview --refresh |")
    assert lines[4] == ("| 10 (3) | 6.00 s / 3.00 s = 2.00x | 3.00 s / 2.00 s = 1.50x | 4.50 s / 3.00 s = 1.50x "
                        "| 0.05 s (0.08 s) / 0.02 s | n/a | 0.02 s (0.40x) | 4.00 s (1.50x) | 2.50 s (1.20x) "
                        "| 3.60 s (1.25x) |")
    assert "| 0.10 s (2.00x; 1.25x) | 0.02 s (0.40x) | 4.00 s (1.50x) |" in lines[5]


def test_bench_markdown_results_without_a_commit_per_resource_na() -> None:
    row = _row(12, {"seconds": 0.1, "operations": 10, "statements": 30})
    del row["sql"]["apply_per_resource"]  # a latest.json written before the script ran with a commit per resource
    del row["sql"]["replay_up"]  # ... and before the product's statements were replayed alone
    assert "| 0.05 s (n/a) / 0.02 s | 0.10 s (2.00x; n/a) | n/a |" in markdown("native", [row]).splitlines()[-1]


def test_bench_markdown_results_without_shaped_floor_na() -> None:
    row = _row(10, None)
    del row["shaped"]  # a latest.json written before the shaped floor existed
    assert markdown("native", [row]).splitlines()[-1].endswith("| 0.02 s (0.40x) | n/a | n/a | n/a |")


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


@pytest.mark.parametrize(("argv", "kind"), [
    (["/root/.cache/timescale-lifecycle/pulumi-v3/bin/pulumi", "preview", "--stack", "bench"], "engine"),
    (["/repo/.venv/bin/python", "-u", "/cache/bin/pulumi-language-python-exec", "--monitor", "x"], "program"),
    (["/repo/.venv/bin/python", "-u", "-m", "pulumi.dynamic", "127.0.0.1:4000"], "provider"),
    (["/cache/bin/pulumi-language-python", "127.0.0.1:4000"], "other"),
    (["/bin/sh", "/cache/bin/pulumi-resource-pulumi-python-sdk", "127.0.0.1:4000"], "other"),
    (["bash", "/repo/bin/pulumi", "up"], "other"),  # the wrapper: its engine is the child it starts
    ([], "other"),
])
def test_bench_cpu_kind_of_a_pulumi_commands_processes(argv: list[str], kind: str) -> None:
    assert kind_of(argv) == kind


def test_bench_cpu_watch_counts_the_sessions_processes_by_kind(tmp_path: Path) -> None:
    """A real session: a parent (kind `other`) starting a child that runs as `-m pulumi.dynamic` would (named
    so by a module of that name) and burns CPU; both are found and the child's CPU is the provider's."""
    import subprocess

    (tmp_path / "pulumi").mkdir()
    (tmp_path / "pulumi" / "__init__.py").write_text("")
    (tmp_path / "pulumi" / "dynamic.py").write_text(
        "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end:\n    pass\n")
    parent = ("import subprocess, sys\n"
              "subprocess.run([sys.executable, '-u', '-m', 'pulumi.dynamic', 'x'], check=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path, start_new_session=True)
    with CpuWatch(proc.pid) as watch:
        proc.wait(timeout=60)
    seconds = watch.seconds()
    assert proc.returncode == 0
    assert seconds["provider"] >= 0.2, seconds  # 0.4 s burnt, read every 50 ms
    assert seconds["engine"] == seconds["program"] == 0.0, seconds
    assert seconds["total"] == round(sum(seconds[k] for k in ("engine", "program", "provider", "other")), 2)


def test_bench_cpu_watch_follows_an_exec(tmp_path: Path) -> None:
    """bin/pulumi is a shell script that execs the engine: the process is the engine's once it has."""
    import subprocess

    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text("sleep 0.3\nexec -a /cache/bin/pulumi " + sys.executable + " -c 'import time\n"
                       "end = time.process_time() + 0.3\nwhile time.process_time() < end: pass'\n")
    proc = subprocess.Popen(["bash", str(wrapper)], start_new_session=True)
    with CpuWatch(proc.pid) as watch:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert watch.seconds()["engine"] >= 0.15, watch.seconds()


def test_bench_cpu_watch_ignores_other_sessions() -> None:
    import subprocess

    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                             "while time.process_time() < end: pass"], start_new_session=True)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"], start_new_session=True)
    with CpuWatch(idle.pid) as watch:
        idle.wait(timeout=60)
    busy.wait(timeout=60)
    assert watch.seconds()["total"] < 0.1, watch.seconds()


def test_bench_cpu_median_per_kind_and_markdown() -> None:
    runs = [{"engine": 1.0, "program": 2.0, "provider": 0.5, "other": 0.0, "total": 3.5},
            {"engine": 3.0, "program": 1.0, "provider": 0.7, "other": 0.1, "total": 4.8},
            {"engine": 2.0, "program": 1.5, "provider": 0.6, "other": 0.0, "total": 4.1}]
    cpu = median_cpu(runs)
    assert cpu == {"engine": 2.0, "program": 1.5, "provider": 0.6, "other": 0.0, "total": 4.1}
    assert median_cpu([]) == {}
    row = _row(10, None)
    for side in ("product", "shaped", "floor"):
        for step in ("up", "preview", "refresh"):
            row[side][f"{step}_cpu"] = cpu
    del row["floor"]["refresh_cpu"]  # results from before the CPU was measured
    lines = markdown_cpu("native", [row]).splitlines()
    assert lines[0] == "**native**, CPU seconds"
    assert lines[2] == ("| N (tables) | step | engine CPU: product / shaped / floor | program | provider host "
                        "| all processes |")
    assert lines[3].count("|") == lines[2].count("|")
    assert lines[4] == "| 10 (3) | up | 2.00 / 2.00 / 2.00 | 1.50 / 1.50 / 1.50 | 0.60 / 0.60 / 0.60 | 4.10 / 4.10 / 4.10 |"
    assert lines[6] == ("| 10 (3) | refresh | 2.00 / 2.00 / n/a | 1.50 / 1.50 / n/a | 0.60 / 0.60 / n/a "
                        "| 4.10 / 4.10 / n/a |")
