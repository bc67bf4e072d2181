"""`make bench`: `pulumi up`, preview and preview --refresh of the product against two no-op floors and SQL.

    .venv/bin/python scripts/bench.py [--n "10 100 400"] [--servers "embedded native"] [--repeat auto|K]

For each server (started here in a temporary directory on a free port, stopped at the end) and each N it
builds, in temporary directories:
  product  a Pulumi project declaring N resources of this checkout (Hypertable, CompressionSettings,
           CompressionPolicy, RetentionPolicy per table; the last table takes the remainder) over tables
           created first, the DSN in TSDB_DSN;
  floor    a Pulumi project of N no-op Python dynamic resources (scripts/bench_noop.py) of similar inputs,
           with the same dependency shape;
  shaped   the shaped floor: the product's N resources as its state holds them after `up` (checked inputs,
           property names, outputs, dependencies) on a provider that does no work (scripts/bench_noop.py);
           product minus shaped is our provider's own work, shaped minus floor the engine's and the SDK's
           cost of bigger resources;
  SQL      the same TimescaleDB work as one SQL script over one psycopg connection, in one transaction
           ("apply") and again with a commit per resource ("apply_per_resource": what each create of a
           provider must commit before the engine records it), and the read of the catalog state of those
           objects in three queries ("read", the refresh analogue).
It times `pulumi up` (from empty, once, after a warm-up preview), `pulumi preview --expect-no-changes` and
`pulumi preview --refresh --expect-no-changes` (median of --repeat runs after a warm-up run: `auto` is 3
for N <= 100, else 1). The provider's own database time during `up` is the sum of the lines the provider
appends to $LIFECYCLE_DB_TIMING (n/a when the provider writes none). It fails loudly (exit 1, the pulumi
output shown) when a pulumi command fails, when the preview after `up` is not clean, or when the catalog does
not hold the hypertables and jobs declared. Results: a table per server, a markdown table, and
.lifecycle/bench/latest.json. The repository's own .lifecycle/state and ~/.pulumi are never touched.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_cpu import CpuWatch  # noqa: E402
from bench_noop import SHAPED_ENV  # noqa: E402
from bench_report import (expected_objects, markdown, markdown_cpu, markdown_ours, median, median_cpu,  # noqa: E402
                          median_fields, read_timing, shape, shaped_resources, split)

PASSPHRASE = "bench-passphrase"  # throwaway stacks in a temporary directory; nothing secret is stored
PULUMI_TIMEOUT = 1800

# Each program times its own body (the CPU of its thread): the imports of what it declares, then its declarations
# (the constructors, with the SDK's synchronous part of each registration). BENCH_PROGRAM_CPU names the file.
CPU_START = """\
import json, os, time
_cpu = [time.thread_time()]
"""
CPU_IMPORTED = "_cpu.append(time.thread_time())\n"
CPU_END = """\
if os.environ.get("BENCH_PROGRAM_CPU"):
    with open(os.environ["BENCH_PROGRAM_CPU"], "w") as out:
        json.dump({"import": _cpu[1] - _cpu[0], "declare": time.thread_time() - _cpu[1]}, out)
"""

PRODUCT = CPU_START + """\
import pulumi
from lifecycle_resources import CompressionPolicy, CompressionSettings, Hypertable, RetentionPolicy
""" + CPU_IMPORTED + """
cfg = pulumi.Config("bench")
schema = cfg.require("schema")
for i, count in enumerate(cfg.require_object("split")):
    name = f"t{i:03d}"
    ht = Hypertable(name, table=f"{schema}.{name}", time_column="ts", chunk_interval="1 day")
    if count > 1:
        CompressionSettings(f"{name}-compression", ht, segment_by=["device"], order_by=["ts DESC"])
    if count > 2:
        CompressionPolicy(f"{name}-compress", ht, compress_after="7 days")
    if count > 3:
        RetentionPolicy(f"{name}-retention", ht, drop_after="30 days")
""" + CPU_END

FLOOR = CPU_START + """\
import pulumi
from bench_noop import Noop
""" + CPU_IMPORTED + """
cfg = pulumi.Config("bench")
schema = cfg.require("schema")
for i, count in enumerate(cfg.require_object("split")):
    name = f"t{i:03d}"
    ht = Noop(name, {"table": f"{schema}.{name}", "time_column": "ts", "chunk_interval": "1 day",
                     "migrate_data": True, "adopt": False})
    if count > 1:
        Noop(f"{name}-compression", {"hypertable": ht.id, "segment_by": ["device"], "order_by": ["ts DESC"],
                                     "adopt": False})
    if count > 2:
        Noop(f"{name}-compress", {"hypertable": ht.id, "compress_after": "7 days", "adopt": False})
    if count > 3:
        Noop(f"{name}-retention", {"hypertable": ht.id, "drop_after": "30 days", "adopt": False})
""" + CPU_END


SHAPED = CPU_START + """\
from pathlib import Path

import pulumi
from bench_noop import Shaped

# The product's resources in the order of its state (each after those it depends on), with its dependencies.
product = json.loads(Path(pulumi.Config("bench").require("resources")).read_text())
""" + CPU_IMPORTED + """
declared = {}
for name, recorded in product.items():
    deps = [declared[dep] for dep in recorded["dependencies"]]
    declared[name] = Shaped(name, recorded, pulumi.ResourceOptions(depends_on=deps) if deps else None)
""" + CPU_END


class BenchError(RuntimeError):
    """A pulumi command failed, or a check that keeps the benchmark honest did not hold."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Servers -------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def embedded(state: Path) -> Iterator[str]:
    from lifecycle_resources.db.embedded import server

    # A file data directory: the WASM build is 32-bit, and a file keeps memory low at N=400.
    dsn = server.start(data=str(state / "data"), port=_free_port(), state_dir=state / "state").dsn
    try:
        yield dsn
    finally:
        server.stop(state_dir=state / "state")


@contextlib.contextmanager
def native(state: Path) -> Iterator[str]:
    from lifecycle_resources.db import native as native_db

    os.chmod(state, 0o711)  # as root the server runs as `postgres`, which must reach its directory
    try:
        dsn = native_db.start(state_dir=state).dsn
        # TimescaleDB's scheduler would run each new policy at once, in the middle of the timings.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT _timescaledb_functions.stop_background_workers()")
        yield dsn
    finally:
        native_db.destroy(state)


@contextlib.contextmanager
def given(dsn: str) -> Iterator[str]:
    """A server the user owns: only the bench's own schemas are created in it, and dropped afterwards."""
    try:
        yield dsn
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while CREATED:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(CREATED.pop())))
            # The ownership ledger's rows of the bench's own stacks (project bench-product-N, stack bench).
            if conn.execute("SELECT to_regclass('_timescale_lifecycle.owners')").fetchone()[0] is not None:
                conn.execute("DELETE FROM _timescale_lifecycle.owners WHERE project LIKE 'bench-product-%' "
                             "AND stack = 'bench'")


SERVERS = {"embedded": embedded, "native": native}


# -- The tables and the SQL script ---------------------------------------------------------------------------

CREATED: list[str] = []  # the schemas this run created: the only ones it drops in a server it did not start


def create_tables(dsn: str, schema: str, counts: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        except psycopg.errors.DuplicateSchema:
            raise BenchError(f"schema {schema} already exists in the database: the bench creates its own schemas "
                             "and drops nothing it did not create; drop it or use another database") from None
        CREATED.append(schema)
        for i in range(len(counts)):
            conn.execute(sql.SQL("CREATE TABLE {} (ts timestamptz NOT NULL, device int NOT NULL, value float8)")
                         .format(sql.Identifier(schema, f"t{i:03d}")))


def sql_apply(dsn: str, schema: str, counts: list[int], *, per_resource: bool = False) -> float:
    """The product's `up` as one SQL script over one connection, in one transaction; its seconds. `per_resource`:
    each statement commits on its own, as each resource's create must (the engine records a step once its
    provider call returned: what it recorded must be durable), so a commit per resource on the server."""
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn, (
            contextlib.nullcontext() if per_resource else conn.transaction()):
        for i, count in enumerate(counts):
            table = sql.Identifier(schema, f"t{i:03d}")
            regclass = f"{schema}.t{i:03d}"
            conn.execute("SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (regclass,))
            if count > 1:
                conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = "
                                     "'device', timescaledb.compress_orderby = 'ts DESC')").format(table))
            if count > 2:
                conn.execute("SELECT add_compression_policy(%s::regclass, interval '7 days')", (regclass,))
            if count > 3:
                conn.execute("SELECT add_retention_policy(%s::regclass, interval '30 days')", (regclass,))
    return time.perf_counter() - start


READ = (
    """SELECT h.hypertable_name, d.column_name, d.time_interval, h.compression_enabled
         FROM timescaledb_information.hypertables h
         JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
        WHERE h.hypertable_schema = %s""",
    """SELECT s.hypertable, s.segmentby, s.orderby FROM timescaledb_information.hypertable_compression_settings s
         JOIN pg_class c ON c.oid = s.hypertable WHERE c.relnamespace = %s::regnamespace""",
    """SELECT hypertable_name, proc_name, schedule_interval, config, scheduled
         FROM timescaledb_information.jobs WHERE hypertable_schema = %s""",
)


def sql_read(dsn: str, schema: str) -> float:
    """The refresh analogue: the catalog state of every declared object, three queries, one connection."""
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for query in READ:
            conn.execute(query, (schema,)).fetchall()
    return time.perf_counter() - start


def catalog_counts(dsn: str, schema: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        hypertables, compressed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE compression_enabled) FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = %s", (schema,)).fetchone()
        jobs = dict(conn.execute("SELECT proc_name, count(*) FROM timescaledb_information.jobs "
                                 "WHERE hypertable_schema = %s GROUP BY proc_name", (schema,)).fetchall())
    return {"hypertables": hypertables, "compression_enabled": compressed,
            "policy_compression": jobs.get("policy_compression", 0),
            "policy_retention": jobs.get("policy_retention", 0)}


def check_catalog(dsn: str, schema: str, counts: list[int], what: str) -> None:
    found, wanted = catalog_counts(dsn, schema), expected_objects(counts)
    if found != wanted:
        raise BenchError(f"{what}: the database does not hold what was declared in schema {schema}: "
                         f"found {found}, expected {wanted}")


def drop_objects(dsn: str, schema: str, project: str) -> None:
    """A stack's tables (their hypertables and jobs with them) and its owner records."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        if conn.execute("SELECT to_regclass('_timescale_lifecycle.owners')").fetchone()[0] is not None:
            conn.execute("DELETE FROM _timescale_lifecycle.owners WHERE project = %s", (project,))
    CREATED.remove(schema)


def replay(dsn: str, log: Path, schema: str, counts: list[int], project: str) -> float:
    """The product's `up` statements again, alone: in their order, on one connection, prepared as the provider's
    pooled connections prepare them (db.pool.prepare), with nothing else running; their seconds. What they cost the
    server and the driver, without what the provider's time in `up` also holds: waiting for a core the engine, the
    program and the provider's other calls share. The product's tables and owner records are dropped first and the
    tables made again empty, so the statements meet the catalog the product's `up` met (a job's id aside: the
    read-backs of its `up` ask for the ids it got). Each statement must succeed or fail as it did in the `up`, and
    the replay must leave what was declared; else the replay is not the same work and the bench fails."""
    try:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise BenchError(f"the product's statement log {log} cannot be read: {exc}") from None
    if not lines or any(line.get("sql") is None for line in lines):
        raise BenchError(f"the product's statement log {log} is empty or holds a statement it could not log")
    drop_objects(dsn, schema, project)
    create_tables(dsn, schema, counts)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        start = time.perf_counter()
        for number, line in enumerate(lines, 1):
            # Threshold None for the unprepared ones, as db.pool.keeping_prepared: psycopg would otherwise drop
            # every prepared statement after an ALTER.
            conn.prepare_threshold = 0 if line["prepare"] else None
            try:
                conn.execute(line["sql"], line["params"], prepare=line["prepare"])
                ok, error = True, ""
            except psycopg.Error as exc:
                ok, error = False, str(exc).strip()
            if ok != line["ok"]:
                raise BenchError(f"replay of the product's `up`, statement {number} of {len(lines)} "
                                 f"{'succeeded' if ok else 'failed'} where the provider's "
                                 f"{'failed' if ok else 'succeeded'}: {line['sql'][:300]!r} {error}")
        seconds = time.perf_counter() - start
    check_catalog(dsn, schema, counts, "the replay of the product's statements")
    return seconds


# -- Pulumi stacks --------------------------------------------------------------------------------------------

class Stack:
    """A throwaway Pulumi project and stack, driven through bin/pulumi with a file backend of its own."""

    def __init__(self, workdir: Path, *, program: str, config: dict, env: dict[str, str],
                 timing_dir: Path | None = None, before_up: Callable[[], None] | None = None) -> None:
        self.workdir = workdir
        self.before_up = before_up  # what the stack needs from another one's `up` before its first run
        self.cpu: dict[str, float] = {}  # the last command's CPU seconds per process kind (bench_cpu)
        self.program: dict[str, float] | None = None  # the last labelled run's program body CPU (_program_cpu)
        self.db: dict | None = None  # the last labelled run's provider timing (bench_report.DbTiming)
        self.timing_dir = timing_dir  # where the provider writes its database time per step, if it does
        workdir.mkdir(parents=True)
        (workdir / "state").mkdir()
        (workdir / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
            name: bench-{workdir.name}
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {REPO / '.venv'}
            """))
        (workdir / "__main__.py").write_text(program)
        self.env = {**env, "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}"}
        self.run("stack", "init")
        # Plain config written directly: `pulumi config set` costs a second per key.
        (workdir / "Pulumi.bench.yaml").write_text(
            (workdir / "Pulumi.bench.yaml").read_text() + "config:\n"
            + "".join(f"  bench:{key}: {json.dumps(value)}\n" for key, value in config.items()))

    def run(self, *args: str, env: dict[str, str] | None = None, label: str | None = None) -> float:
        """Runs bin/pulumi; its seconds. A failure raises BenchError with the command's output. With a `label`,
        the run's own code is timed: the program's body (self.program) and the provider's calls (self.db,
        when this stack has a timing_dir), each in a file of that label."""
        cmd = [str(REPO / "bin" / "pulumi"), *args, "--stack", "bench", "--non-interactive"]
        probes = self.probes(label) if label else {}
        for path in probes.values():
            Path(path).unlink(missing_ok=True)
        env = {**probes, **(env or {})}
        start = time.perf_counter()
        # A session of its own: on Ctrl-C or a timeout the engine, its language host and the provider
        # processes go together (killing only `pulumi` would leave its plugins running).
        proc = subprocess.Popen(cmd, cwd=self.workdir, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        watch = CpuWatch(proc.pid)
        try:
            with watch:
                output, _ = proc.communicate(timeout=PULUMI_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop_session(proc)
            raise BenchError(f"`pulumi {' '.join(args)}` in {self.workdir} took over {PULUMI_TIMEOUT} s: "
                             "stopped") from None
        except BaseException:
            _stop_session(proc)
            raise
        elapsed = time.perf_counter() - start
        self.cpu = watch.seconds()
        self.program = _program_cpu(Path(probes[PROGRAM_CPU_ENV])) if probes else None
        timing = read_timing(Path(probes[TIMING_ENV])) if TIMING_ENV in probes else None
        self.db = dataclasses.asdict(timing) if timing else None
        if proc.returncode != 0:
            out = output.strip().splitlines()
            raise BenchError(f"`pulumi {' '.join(args)}` in {self.workdir} failed (exit {proc.returncode}):\n"
                             + "\n".join(out[-150:]))
        return elapsed

    def state_bytes(self) -> int | None:
        """The size of this stack's state file, which the engine writes whole after each step of an `up`."""
        files = list((self.workdir / "state" / ".pulumi" / "stacks").rglob("bench.json"))
        return files[0].stat().st_size if len(files) == 1 else None

    def probes(self, label: str) -> dict[str, str]:
        """The files a labelled run's program and provider write their own timings to."""
        probes = {PROGRAM_CPU_ENV: str(self.workdir / f"program-{label}.json")}
        if self.timing_dir:
            probes[TIMING_ENV] = str(self.timing_dir / f"{label}.jsonl")
            if label == "up":  # its statements, replayed alone after the timings (replay())
                probes[SQL_LOG_ENV] = str(self.timing_dir / "up.sql.jsonl")
        return probes


PROGRAM_CPU_ENV = "BENCH_PROGRAM_CPU"
TIMING_ENV = "LIFECYCLE_DB_TIMING"
SQL_LOG_ENV = "LIFECYCLE_SQL_LOG"


def _program_cpu(path: Path) -> dict[str, float] | None:
    """The program body's CPU seconds, {"import", "declare"}, None when it wrote none."""
    try:
        return {key: round(float(value), 3) for key, value in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return None


STEPS = {"preview": ("preview", "--expect-no-changes"), "refresh": ("preview", "--refresh", "--expect-no-changes")}


def measure(stacks: dict[str, Stack], repeat: int, warmup: bool) -> dict[str, dict]:
    """`up` from empty, then the clean preview and refresh (median of `repeat`), for each stack.

    The stacks take turns (product, floor, shaped, product, floor, shaped ...) so that a machine busy with
    something else weighs on all sides of a ratio alike. A preview that is not clean fails: --expect-no-changes.
    A stack with a `before_up` (the shaped floor, made of the product's state) gets its warm-up after it."""
    result: dict[str, dict] = {name: {} for name in stacks}
    for stack in stacks.values():
        if warmup and stack.before_up is None:
            stack.run("preview")
    for name, stack in stacks.items():
        if stack.before_up is not None:
            stack.before_up()
            if warmup:
                stack.run("preview")
        result[name]["up"] = round(stack.run("up", "--yes", "--skip-preview", label="up"), 3)
        result[name]["up_cpu"] = stack.cpu
        result[name]["up_program"] = stack.program
        result[name]["up_db"] = stack.db
        result[name]["state_bytes"] = stack.state_bytes()
    for step, args in STEPS.items():
        runs: dict[str, list[float]] = {name: [] for name in stacks}
        cpu: dict[str, list[dict[str, float]]] = {name: [] for name in stacks}
        programs: dict[str, list[dict[str, float] | None]] = {name: [] for name in stacks}
        dbs: dict[str, list[dict | None]] = {name: [] for name in stacks}
        for i in range(int(warmup) + repeat):
            for name, stack in stacks.items():
                timed = i >= int(warmup)
                seconds = stack.run(*args, label=f"{step}-{i}" if timed else None)
                if timed:
                    runs[name].append(round(seconds, 3))
                    cpu[name].append(stack.cpu)
                    programs[name].append(stack.program)
                    dbs[name].append(stack.db)
        for name in stacks:
            result[name][step] = median(runs[name])
            result[name][f"{step}_runs"] = runs[name]
            result[name][f"{step}_cpu"] = median_cpu(cpu[name])
            result[name][f"{step}_cpu_runs"] = cpu[name]
            result[name][f"{step}_program"] = median_fields(programs[name])
            result[name][f"{step}_db"] = median_fields(dbs[name])
    return result


def _session(sid: int) -> list[int]:
    """The processes of a session: the engine's plugins put themselves in process groups of their own."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) == sid:
                pids.append(int(stat.parent.name))
    return pids


def _stop_session(proc: subprocess.Popen) -> None:
    """SIGINT to the command's session (pulumi cancels cleanly), then SIGKILL to whatever is left of it."""
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
        for pid in _session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            if sig == signal.SIGINT:
                time.sleep(1.0)  # the plugins exit after the engine: give them a moment, then kill the rest


def compile_bytecode() -> None:
    """Both sides' Python compiled once, as a pip-installed package is: with PYTHONDONTWRITEBYTECODE in the
    environment, every `pulumi` command would otherwise compile the product's modules again, in the program and
    in the provider host (about 0.4 s each), and only the floor's one small module."""
    for folder in (REPO / "lifecycle_resources", REPO / "scripts"):
        compileall.compile_dir(str(folder), quiet=1)


def pulumi_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "PULUMI_HOME": str(tmp / "pulumi-home"), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
           "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
           "NO_COLOR": "1"}
    for name in ("TSDB_DSN", "LIFECYCLE_DB_TIMING", "LIFECYCLE_SQL_LOG", "PULUMI_CONFIG_PASSPHRASE_FILE",
                 "PULUMI_ACCESS_TOKEN"):
        env.pop(name, None)
    return env


def bench_one(dsn: str, n: int, workdir: Path, env: dict[str, str], repeat: int, warmup: bool) -> dict:
    counts = split(n)
    product_schema, sql_schema, steps_schema = f"bench_product_{n}", f"bench_sql_{n}", f"bench_sql_steps_{n}"
    for schema in (product_schema, sql_schema, steps_schema):
        create_tables(dsn, schema, counts)
    if warmup:  # the first statements of a fresh server load TimescaleDB's catalog caches
        create_tables(dsn, f"bench_warmup_{n}", counts[:1])
        sql_apply(dsn, f"bench_warmup_{n}", counts[:1])
    apply_seconds = sql_apply(dsn, sql_schema, counts)
    check_catalog(dsn, sql_schema, counts, "the SQL script")
    per_resource_seconds = sql_apply(dsn, steps_schema, counts, per_resource=True)
    check_catalog(dsn, steps_schema, counts, "the SQL script with a commit per resource")
    read_seconds = median([sql_read(dsn, sql_schema) for _ in range(max(repeat, 3))])

    timing_dir = workdir / f"timing-{n}"
    timing_dir.mkdir(parents=True)
    product = Stack(workdir / f"product-{n}", program=PRODUCT, config={"schema": product_schema, "split": counts},
                    env={**env, "TSDB_DSN": dsn}, timing_dir=timing_dir)
    noop_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "scripts"), env.get("PYTHONPATH")]))}
    floor = Stack(workdir / f"floor-{n}", program=FLOOR, config={"schema": product_schema, "split": counts},
                  env=noop_env)
    recorded = workdir / f"shaped-{n}.json"

    def record_product() -> None:
        product.run("stack", "export", "--file", str(workdir / f"product-{n}.json"))
        try:
            resources = shaped_resources(json.loads((workdir / f"product-{n}.json").read_text()))
        except ValueError as exc:
            raise BenchError(f"the product stack's state cannot make the shaped floor: {exc}") from None
        if len(resources) != n:
            raise BenchError(f"the product stack's state holds {len(resources)} resources, expected {n}")
        recorded.write_text(json.dumps(resources))

    shaped = Stack(workdir / f"shaped-{n}", program=SHAPED, config={"resources": str(recorded)},
                   env={**noop_env, SHAPED_ENV: str(recorded)}, before_up=record_product)
    times = measure({"product": product, "floor": floor, "shaped": shaped}, repeat, warmup)
    check_catalog(dsn, product_schema, counts, "the product stack")
    resources = json.loads(recorded.read_text())
    shaped_count = check_shaped(shaped, resources)
    replayed = replay(dsn, timing_dir / "up.sql.jsonl", product_schema, counts, f"bench-{product.workdir.name}")
    db = {step: times["product"].get(f"{step}_db") for step in ("up", "preview", "refresh")}
    return {"n": n, "tables": len(counts), "split": counts, "repeat": repeat, "product": times["product"],
            "floor": times["floor"], "shaped": times["shaped"], "shaped_resources": shaped_count,
            "shaped_shape": shape(resources), "sql": {"apply": round(apply_seconds, 3), "read": read_seconds,
                                                     "apply_per_resource": round(per_resource_seconds, 3),
                                                     "replay_up": round(replayed, 3)},
            "provider_db": db}


def check_shaped(shaped: Stack, product: dict[str, dict]) -> int:
    """The shaped stack holds each of the product's resources with the product's outputs; their count."""
    shaped.run("stack", "export", "--file", str(shaped.workdir / "export.json"))
    held = shaped_resources(json.loads((shaped.workdir / "export.json").read_text()))
    differ = sorted(name for name in product.keys() | held.keys()
                    if name not in product or name not in held or held[name]["outputs"] != product[name]["outputs"])
    if differ:
        first = differ[0]
        mine, theirs = (held.get(first) or {}).get("outputs", {}), (product.get(first) or {}).get("outputs", {})
        keys = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        raise BenchError(f"the shaped floor does not hold the product's resources as the product does: {differ[:5]}; "
                         f"{first}: " + "; ".join(f"{k}: {mine.get(k)!r} != {theirs.get(k)!r}" for k in keys[:5]))
    return len(held)


def _ints(text: str) -> list[int]:
    return [int(word) for word in text.replace(",", " ").split()]


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    return (f"{platform.machine()} {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="10 100 400", help="resource counts (default: %(default)s)")
    parser.add_argument("--servers", default="embedded native", help="embedded and/or native (default: %(default)s)")
    parser.add_argument("--repeat", default="auto", help="runs per preview/refresh, median taken; auto: 3 for "
                                                         "N <= 100, else 1")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up runs (the smoke test does)")
    parser.add_argument("--dsn", default=None, help="benchmark a TimescaleDB you own instead of starting servers "
                                                    "(it gets schemas bench_*, dropped at the end)")
    parser.add_argument("--json", default=str(REPO / ".lifecycle" / "bench" / "latest.json"))
    args = parser.parse_args(argv)
    ns, servers = _ints(args.n), (["given"] if args.dsn else args.servers.replace(",", " ").split())
    unknown = [s for s in servers if s not in SERVERS and not args.dsn]
    if unknown or not servers or not ns:
        parser.error(f"--servers {args.servers!r}: expected some of {' '.join(SERVERS)}; --n {args.n!r}")

    def repeats(n: int) -> int:
        return (3 if n <= 100 else 1) if args.repeat == "auto" else int(args.repeat)

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench {when} on {machine()}", flush=True)
    print(f"each stack: {'a warm-up preview, ' if not args.no_warmup else ''}`up` once from empty; preview and "
          f"preview --refresh: {'a warm-up run, then ' if not args.no_warmup else ''}the median of "
          + ", ".join(f"{repeats(n)} (N={n})" for n in ns), flush=True)
    signal.signal(signal.SIGTERM, _interrupted)
    compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    os.chmod(tmp, 0o711)  # the native server's user must traverse it (as root it runs as `postgres`)
    out = Path(args.json)
    results: dict = {"when": when, "machine": machine(), "warmup": not args.no_warmup, "servers": {}}
    try:
        env = pulumi_env(tmp)
        for server in servers:
            state = tmp / server
            state.mkdir()
            with (given(args.dsn) if args.dsn else _server(server, state)) as dsn:
                rows = []
                for n in ns:
                    print(f"[{server}] N={n} ...", flush=True)
                    rows.append(bench_one(dsn, n, state / "work", env, repeats(n), not args.no_warmup))
                    print(markdown(server, rows[-1:]).splitlines()[-1], flush=True)
                    results["servers"][server] = rows
                    _write(out, results)  # what was measured survives a later failure
            print("\n" + markdown(server, rows) + "\n\n" + markdown_cpu(server, rows) + "\n\n"
                  + markdown_ours(server, rows) + "\n", flush=True)
    except BenchError as exc:
        print(f"\nbench FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench interrupted: servers stopped, temporary stacks removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"results: {out}\n\nMarkdown (README, ## Performance):\n\nMeasured {when} on {results['machine']}; "
          f"{'warm-up runs, ' if not args.no_warmup else ''}preview and refresh: median of "
          + ", ".join(f"{repeats(n)} (N={n})" for n in ns) + ".\n")
    print("\n\n".join("\n\n".join(table(server, rows) for table in (markdown, markdown_cpu, markdown_ours))
                      for server, rows in results["servers"].items()))
    return 0


def _write(out: Path, results: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: the `finally` blocks stop servers, remove stacks


@contextlib.contextmanager
def _server(kind: str, state: Path) -> Iterator[str]:
    (state / "server").mkdir()
    with SERVERS[kind](state / "server") as dsn:
        yield dsn
    CREATED.clear()  # gone with their server


if __name__ == "__main__":
    sys.exit(main())
