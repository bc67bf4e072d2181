"""The embedded TimescaleDB after a restart, driven by the product's own commands: `lifecycle db start` on a
file data directory, the project's program applied by the real `pulumi`, `lifecycle db stop`, `lifecycle db
start` again, `pulumi up` changing a compression setting and a policy, `lifecycle run`. The DSN reaches the
providers through TSDB_DSN only (as scripts/demo.sh does), and its generated password never lands in the state."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent
LIFECYCLE = REPO / ".venv" / "bin" / "lifecycle"

CONFIG = {
    "lifecycle:tables": {
        "ticks": {
            "time_column": "ts",
            "chunk_interval": "1 day",
            "compression": {"after": "7 days", "segment_by": ["symbol"], "order_by": ["ts DESC"]},
            "retention": {"drop_after": "30 days"},
        },
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cli:
    """`lifecycle ...` as a user runs it, with a state directory of the test's own."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items() if k not in ("TSDB_DSN", "LIFECYCLE_STATE_DIR")}

    def __call__(self, *args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
        if args[0] == "db":
            args = ("db", "--state-dir", str(self.state_dir), *args[1:])
        env = {**self.env, "TSDB_DSN": dsn} if dsn else self.env
        done = subprocess.run([str(LIFECYCLE), *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"lifecycle {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        return done


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path / "state")
    try:
        yield c
    finally:
        subprocess.run([str(LIFECYCLE), "db", "--state-dir", str(c.state_dir), "stop"], env=c.env,
                       capture_output=True, timeout=120)


def test_embedded_restart_e2e_up_and_run_after_stop_and_start(tmp_path: Path, pulumi_home: Path, cli: Cli) -> None:
    data, port = tmp_path / "data", free_port()
    dsn = cli("db", "start", "--data", str(data), "--port", str(port)).stdout.strip()
    assert cli("db", "dsn").stdout.strip() == dsn
    password = dsn.split("://postgres:", 1)[1].split("@", 1)[0]
    assert len(password) >= 24 and password != "postgres"
    sql_run(dsn, "CREATE TABLE public.ticks (ts timestamptz NOT NULL, symbol text NOT NULL, price float8)")
    sql_run(dsn, "INSERT INTO public.ticks SELECT now() - g * interval '1 hour', 'S' || (g % 3), g "
                 "FROM generate_series(1, 20 * 24) g")  # 20 days: chunks old enough to compress

    stack = PulumiStack(tmp_path / "project", pulumi_home=pulumi_home, dsn=dsn, stack="dev")
    stack.env["TSDB_DSN"] = dsn  # no lifecycle:dsn in the stack's config, as in Pulumi.dev.yaml
    stack.program((REPO / "__main__.py").read_text())
    (stack.workdir / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": CONFIG}))
    try:
        stack.run("stack", "init")
        stack.created = True
        stack.up()

        cli("db", "stop")
        assert cli("db", "start", "--data", str(data), "--port", str(port)).stdout.strip() == dsn  # same password
        assert sql_run(dsn, "SHOW timescaledb.license") == [("timescale",)]

        # A compression setting and a policy change after the restart.
        stack.run("config", "set", "--path", "lifecycle:tables.ticks.compression.segment_by[0]", "--", "price")
        stack.run("config", "set", "--path", "lifecycle:tables.ticks.retention.drop_after", "--", "45 days")
        stack.up()
        assert sql_run(dsn, "SELECT segmentby FROM timescaledb_information.hypertable_compression_settings "
                            "WHERE hypertable = 'ticks'::regclass") == [("price",)]
        assert sql_run(dsn, "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                            "WHERE hypertable_name = 'ticks' AND proc_name = 'policy_retention'") == [("45 days",)]

        run = cli("run", "--stack", "dev", dsn=dsn)
        assert ", 0 failed" in run.stdout, run.stdout
        assert "ticks-compress (compression of public.ticks): " in run.stdout, run.stdout
        assert sql_run(dsn, "SELECT count(*) FROM timescaledb_information.chunks "
                            "WHERE hypertable_name = 'ticks' AND is_compressed")[0][0] > 0

        state = stack.state()
        assert password not in state  # the DSN came from the environment and stayed there
        assert stack.preview("--expect-no-changes").code == 0
    finally:
        stack.cleanup()
