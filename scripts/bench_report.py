"""The pure parts of `make bench`: how N resources split over tables, the provider's timing file, the tables.

No I/O beyond reading the timing file; unit-tested in tests/test_bench.py."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

# The resource kinds of one table, in the order a table with fewer than four declares them.
KINDS = ("Hypertable", "CompressionSettings", "CompressionPolicy", "RetentionPolicy")


def split(n: int) -> list[int]:
    """Resources per table for N resources: full tables of four, then one table with the rest."""
    if n < 1:
        raise ValueError(f"N={n}: the benchmark needs at least one resource")
    full, rest = divmod(n, len(KINDS))
    return [len(KINDS)] * full + ([rest] if rest else [])


def expected_objects(counts: list[int]) -> dict[str, int]:
    """What the catalog must hold after `up`: hypertables, compressed hypertables and policy jobs."""
    return {"hypertables": len(counts),
            "compression_enabled": sum(1 for c in counts if c >= 2),
            "policy_compression": sum(1 for c in counts if c >= 3),
            "policy_retention": sum(1 for c in counts if c >= 4)}


# How `pulumi stack export` marks a secret value (its ciphertext beside it).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
DYNAMIC = "pulumi-python:dynamic"


def _secret_at(value: object, path: str) -> str | None:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return path
        found = (_secret_at(item, f"{path}.{key}") for key, item in value.items())
    elif isinstance(value, list):
        found = (_secret_at(item, f"{path}[{i}]") for i, item in enumerate(value))
    else:
        return None
    return next((where for where in found if where), None)


def shaped_resources(export: dict) -> dict[str, dict]:
    """The product's dynamic resources from `pulumi stack export`, for the shaped floor, in the state's order:
    {name: {"type", "id", "inputs", "outputs", "dependencies" (names)}}, the pickled provider left out.

    A secret value is refused: the shaped floor would declare it in plain text (the bench sets none)."""
    resources = [r for r in export["deployment"].get("resources", []) if r["type"].startswith(DYNAMIC)]
    names = {r["urn"]: r["urn"].rsplit("::", 1)[1] for r in resources}
    shaped: dict[str, dict] = {}
    for r in resources:
        name = names[r["urn"]]
        props = {side: {k: v for k, v in r.get(side, {}).items() if k != "__provider"}
                 for side in ("inputs", "outputs")}
        if where := _secret_at(props, name):
            raise ValueError(f"{where} is a secret")
        shaped[name] = {"type": r["type"], "id": r["id"], **props,
                        "dependencies": [names[urn] for urn in r.get("dependencies", []) if urn in names]}
    return shaped


def shape(resources: dict[str, dict]) -> dict[str, list[int]]:
    """What the engine carries per resource of the shaped floor: properties (inputs and outputs by name, without
    the pickled provider), and the JSON bytes of the inputs and of the outputs; [least, most] of each."""
    def spread(values: list[int]) -> list[int]:
        return [min(values), max(values)] if values else [0, 0]

    rows = resources.values()
    return {"properties": spread([len(r["inputs"].keys() | r["outputs"].keys()) for r in rows]),
            "input_bytes": spread([len(json.dumps(r["inputs"])) for r in rows]),
            "output_bytes": spread([len(json.dumps(r["outputs"])) for r in rows])}


@dataclass(frozen=True)
class DbTiming:
    """The provider's own database time, summed over the JSON lines of LIFECYCLE_DB_TIMING, and the CPU seconds of
    its own code in those calls (0 in lines written before the provider recorded it)."""
    seconds: float
    operations: int
    statements: int
    cpu_seconds: float = 0.0


def read_timing(path: Path) -> DbTiming | None:
    """The summed timing file, or None when the provider wrote none (the hook is absent)."""
    if not path.exists():
        return None
    seconds, operations, statements, cpu = 0.0, 0, 0, 0.0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            seconds += float(record["db_seconds"])
            statements += int(record.get("statements") or 0)
            cpu += float(record.get("cpu_seconds") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a timing record {{\"db_seconds\": ...}}: {line[:200]!r}") from exc
        operations += 1
    return DbTiming(round(seconds, 4), operations, statements, round(cpu, 4))


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _pair(row: dict, step: str) -> str:
    product, floor = row["product"][step], row["floor"][step]
    return f"{seconds(product)} / {seconds(floor)} = {ratio(product, floor)}"


def _shaped(row: dict, step: str) -> str:
    """The shaped floor's seconds and the product's multiple of it (n/a in results from before it existed)."""
    shaped = row.get("shaped", {}).get(step)
    return "n/a" if shaped is None else f"{seconds(shaped)} ({ratio(row['product'][step], shaped)})"


STEPS = ("up", "preview", "refresh")
HEADER = ("| N (tables) | `up`: product / floor = ratio | preview | preview --refresh "
          "| SQL script: apply (a commit per resource) / read "
          "| provider DB time in `up` (x SQL apply; x with a commit per resource) "
          "| its statements replayed alone (x SQL apply) "
          "| shaped floor `up` (product x) | shaped preview | shaped preview --refresh |")


def markdown(server: str, rows: list[dict]) -> str:
    """One server's results as a markdown table (printed, and pasted into the README)."""
    lines = [f"**{server}**", "", HEADER, "|---" * HEADER.count(" | ") + "|---|"]
    for row in rows:
        db, script = row["provider_db"]["up"], row["sql"]
        per_resource = script.get("apply_per_resource")  # None in results from before it was measured
        db_cell = "n/a" if db is None else (f"{seconds(db['seconds'])} ({ratio(db['seconds'], script['apply'])}; "
                                            f"{ratio(db['seconds'], per_resource)})")
        replayed = script.get("replay_up")  # None in results from before it was measured
        replay_cell = "n/a" if replayed is None else f"{seconds(replayed)} ({ratio(replayed, script['apply'])})"
        lines.append(f"| {row['n']} ({row['tables']}) | {_pair(row, 'up')} | {_pair(row, 'preview')} "
                     f"| {_pair(row, 'refresh')} | {seconds(script['apply'])} ({seconds(per_resource)}) / "
                     f"{seconds(script['read'])} | {db_cell} | {replay_cell} | "
                     + " | ".join(_shaped(row, step) for step in STEPS) + " |")
    return "\n".join(lines)


def median_fields(runs: list[dict | None]) -> dict | None:
    """Per field, the median of the runs' numbers; None when no run recorded any."""
    runs = [run for run in runs if run]
    return {key: median([run[key] for run in runs]) for key in runs[0]} if runs else None


def median_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per process kind, the median of the runs' CPU seconds (bench_cpu.CpuWatch.seconds())."""
    return {kind: median([run[kind] for run in runs]) for kind in (runs[0] if runs else {})}


CPU_KINDS = ("engine", "program", "provider", "total")
CPU_HEADER = ("| N (tables) | step | engine CPU: product / shaped / floor | program | provider host "
              "| all processes |")


def _cpu(row: dict, step: str, kind: str) -> str:
    """One kind's CPU seconds for the three stacks; n/a where a result holds none (results from before)."""
    values = [row.get(stack, {}).get(f"{step}_cpu", {}).get(kind) for stack in ("product", "shaped", "floor")]
    return " / ".join("n/a" if value is None else f"{value:.2f}" for value in values)


def markdown_cpu(server: str, rows: list[dict]) -> str:
    """One server's CPU seconds per process kind (the engine, the program, the provider host), per step."""
    lines = [f"**{server}**, CPU seconds", "", CPU_HEADER, "|---" * CPU_HEADER.count(" | ") + "|---|"]
    for row in rows:
        for step in STEPS:
            lines.append(f"| {row['n']} ({row['tables']}) | {step} | "
                         + " | ".join(_cpu(row, step, kind) for kind in CPU_KINDS) + " |")
    return "\n".join(lines)


OURS_HEADER = ("| N (tables) | step | program body, import + declarations: product / shaped / floor "
               "| provider, in our methods: CPU (database wait) | provider statements | state after `up`, KB: "
               "product / shaped / floor |")


def _body(row: dict, step: str) -> str:
    cells = []
    for stack in ("product", "shaped", "floor"):
        body = row.get(stack, {}).get(f"{step}_program")
        cells.append("n/a" if not body else f"{body['import']:.2f} + {body['declare']:.2f}")
    return " / ".join(cells)


def markdown_ours(server: str, rows: list[dict]) -> str:
    """One server's CPU seconds inside the product's own code, per step: the program's body (its imports, then its
    declarations, which include the SDK's synchronous part of each registration: compare the floors') and the
    provider's calls (bench: LIFECYCLE_DB_TIMING, the thread's CPU in each call of ours; the database's wall time
    beside it)."""
    lines = [f"**{server}**, seconds inside our own code", "", OURS_HEADER,
             "|---" * OURS_HEADER.count(" | ") + "|---|"]
    for row in rows:
        for step in STEPS:
            db = (row.get("provider_db") or {}).get(step)
            provider = "n/a" if not db else f"{db.get('cpu_seconds', 0):.2f} ({db['seconds']:.2f})"
            statements = "n/a" if not db else f"{db['statements']:.0f} in {db['operations']:.0f} calls"
            state = " / ".join("n/a" if not (size := row.get(stack, {}).get("state_bytes")) else f"{size / 1000:.0f}"
                               for stack in ("product", "shaped", "floor")) if step == "up" else ""
            lines.append(f"| {row['n']} ({row['tables']}) | {step} | {_body(row, step)} | {provider} | {statements} "
                         f"| {state} |")
    return "\n".join(lines)
