"""`make bench-ab BASE=<rev>`: the product of another revision against this checkout's, taking turns.

    .venv/bin/python scripts/bench_ab.py --base REV [--n 100] [--rounds 3] [--server embedded|native] [--dsn DSN]

A change to the provider is judged by what it changes, and one run of `make bench` moves by more than most
changes do (the engine alone spends 25% more or less CPU on the same `up` from one run to the next). So this
runs both revisions on one server, round after round, in turns (base then this checkout, then the other way
round): each side's `up` from empty on tables of its own, then its clean preview and refresh. It prints every
round's seconds, and per side the median of the seconds, of the provider's database time, statements and CPU
(`$LIFECYCLE_DB_TIMING`), and this checkout's medians over the base's.

The base's `lifecycle_resources/` is exported (`git archive`) into a temporary directory put first on the
PYTHONPATH of its stack's commands: its program and its provider host run that code. Both sides declare the
same program (`PRODUCT` of scripts/bench.py), so the base must accept it. Results: .lifecycle/bench/ab.json.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402
from bench_report import median, ratio  # noqa: E402

SIDES = ("base", "head")
STEPS = {"up": ("up", "--yes", "--skip-preview"), "preview": bench.STEPS["preview"],
         "refresh": bench.STEPS["refresh"]}
ORIGIN_ENV = "BENCH_AB_ORIGIN"
# The product's program, saying which lifecycle_resources it imported (the base's export, or this checkout).
PROGRAM = bench.PRODUCT + """\
import lifecycle_resources
if os.environ.get("BENCH_AB_ORIGIN"):
    with open(os.environ["BENCH_AB_ORIGIN"], "w") as out:
        out.write(lifecycle_resources.__file__)
"""


def export(rev: str, dest: Path) -> str:
    """`lifecycle_resources/` of `rev` in dest, byte-compiled as the bench's own code is; its full commit id."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=bench.REPO,
                            capture_output=True, text=True)
    if commit.returncode != 0:
        raise bench.BenchError(f"--base {rev!r}: not a commit of this repository ({commit.stderr.strip()})")
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit.stdout.strip(), "lifecycle_resources"], cwd=bench.REPO,
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    compileall.compile_dir(str(dest / "lifecycle_resources"), quiet=1)
    return commit.stdout.strip()


def one_side(dsn: str, side: str, round_: int, counts: list[int], work: Path, env: dict[str, str]) -> dict:
    """One side's `up` from empty on fresh tables, then its clean preview and refresh: seconds, and the provider's
    own timing (bench_report.DbTiming) of each step."""
    schema = f"bench_ab_{side}_{round_}"
    bench.create_tables(dsn, schema, counts)
    timing = work / f"timing-{side}-{round_}"
    timing.mkdir(parents=True)
    origin = work / f"origin-{side}-{round_}"
    stack = bench.Stack(work / f"product-{side}-{round_}", program=PROGRAM,
                        config={"schema": schema, "split": counts},
                        env={**env, "TSDB_DSN": dsn, ORIGIN_ENV: str(origin)}, timing_dir=timing)
    result: dict = {"origin": None}
    for step, args in STEPS.items():
        result[step] = round(stack.run(*args, label=step), 3)
        result[f"{step}_db"] = stack.db
        result[f"{step}_cpu"] = stack.cpu
        if step == "up":
            bench.check_catalog(dsn, schema, counts, f"the {side} stack")
            result["origin"] = origin.read_text() if origin.exists() else None
    # The side's tables and owner records go: each run starts from the same catalog, whichever side ran before it
    # (measured: the second `up` of a round on a server already holding the first's 400 hypertables took 1 s more
    # of database time).
    bench.drop_objects(dsn, schema, f"bench-{stack.workdir.name}")
    return result


def summary(rounds: list[dict[str, dict]]) -> dict[str, dict[str, float | None]]:
    """Per side and step, the median over the rounds of the seconds, and of the provider's database seconds,
    statements and CPU seconds (None where the provider wrote no timing)."""
    out: dict[str, dict[str, float | None]] = {}
    for side in SIDES:
        runs = [r[side] for r in rounds]
        row: dict[str, float | None] = {}
        for step in STEPS:
            row[step] = median([run[step] for run in runs])
            for field in ("seconds", "statements", "cpu_seconds"):
                values = [run[f"{step}_db"][field] for run in runs if run.get(f"{step}_db")]
                row[f"{step}_db_{field}"] = median(values) if values else None
        out[side] = row
    return out


def markdown(rounds: list[dict[str, dict]], base: str, head: str) -> str:
    """Each round's seconds and the medians per side, then this checkout's medians over the base's."""
    med = summary(rounds)
    lines = ["| side | step | seconds, each round | median | provider: database s / statements / CPU s (median) |",
             "|---|---|---|---|---|"]
    for side, rev in zip(SIDES, (base, head)):
        for step in STEPS:
            each = " / ".join(f"{r[side][step]:.2f}" for r in rounds)
            m = med[side]
            db = ("n/a" if m[f"{step}_db_seconds"] is None else
                  f"{m[f'{step}_db_seconds']:.2f} / {m[f'{step}_db_statements']:.0f} / {m[f'{step}_db_cpu_seconds']:.2f}")
            lines.append(f"| {side} ({rev[:7]}) | {step} | {each} | {m[step]:.2f} s | {db} |")
    lines += ["", "| step | head / base, seconds | database seconds | statements | provider CPU |", "|---|---|---|---|---|"]
    for step in STEPS:
        cells = [ratio(med["head"][key], med["base"][key])
                 for key in (step, f"{step}_db_seconds", f"{step}_db_statements", f"{step}_db_cpu_seconds")]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare this checkout with")
    parser.add_argument("--n", type=int, default=100, help="resources per side (4 a table), default 100")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each side once per round, default 3")
    parser.add_argument("--server", choices=sorted(bench.SERVERS), default="embedded")
    parser.add_argument("--dsn", help="a TimescaleDB you own instead of a server started here (schemas "
                                      "bench_ab_*, dropped after)")
    parser.add_argument("--json", default=str(bench.REPO / ".lifecycle" / "bench" / "ab.json"))
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    signal.signal(signal.SIGTERM, bench._interrupted)
    bench.compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="lifecycle-bench-ab-"))
    os.chmod(tmp, 0o711)  # the native server's user must traverse it (as root it runs as `postgres`)
    try:
        base = export(args.base, tmp / "base")
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=bench.REPO, capture_output=True,
                              text=True).stdout.strip() or "working tree"
        print(f"bench-ab {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {bench.machine()}: base {base[:7]} "
              f"against this checkout ({head[:7]}, working tree as it is), N={args.n}, {args.rounds} rounds, "
              f"{'a server you gave' if args.dsn else args.server}", flush=True)
        env = bench.pulumi_env(tmp)
        envs = {"base": {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp / "base"),
                                                                            env.get("PYTHONPATH")]))},
                "head": env}
        counts = bench.split(args.n)
        rounds: list[dict[str, dict]] = []
        with _server(args, tmp) as dsn:
            for r in range(args.rounds):
                measured: dict[str, dict] = {}
                for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
                    measured[side] = one_side(dsn, side, r, counts, tmp / "work", envs[side])
                    print(f"round {r + 1} {side}: " + ", ".join(f"{s} {measured[side][s]:.2f} s" for s in STEPS),
                          flush=True)
                rounds.append(measured)
        _check_origins(rounds, tmp / "base")
    except bench.BenchError as exc:
        print(f"\nbench-ab FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench-ab interrupted: server stopped, temporary stacks removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": base, "head": head, "n": args.n, "server": args.server if not args.dsn
                               else "given", "rounds": rounds, "median": summary(rounds)}, indent=2) + "\n")
    print("\n" + markdown(rounds, base, head) + f"\n\nresults: {out}")
    return 0


def _check_origins(rounds: list[dict[str, dict]], base_dir: Path) -> None:
    """Each side ran the code it stands for: the base's export, or this checkout."""
    for r in rounds:
        for side in SIDES:
            origin = r[side]["origin"] or ""
            inside = origin.startswith(str(base_dir) + os.sep)
            if inside != (side == "base"):
                raise bench.BenchError(f"the {side} side's program imported lifecycle_resources from {origin!r}")


@contextlib.contextmanager
def _server(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    if args.dsn:
        with bench.given(args.dsn) as dsn:
            yield dsn
        return
    state = tmp / "server"
    state.mkdir()
    with bench.SERVERS[args.server](state) as dsn:
        yield dsn
    bench.CREATED.clear()  # gone with their server


if __name__ == "__main__":
    sys.exit(main())
