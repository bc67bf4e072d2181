"""Secrets stay secret: bin/pulumi's passphrase rule, and a password marker driven through every refusal path.

The marker is a unique string (`pw_<uuid>`) in the DSNs' secret fields. Where the server accepts it as the
password it is the password; everywhere it is the `sslpassword` (a secret libpq only uses to decrypt a client
key, ignored with sslmode=disable), so even a server that checks passwords gets a working DSN carrying it.
It must appear in none of: pulumi's stdout/stderr (with the engine's logs, -v=9), the state export, the
files under the test session's temporary directory (state, PULUMI_HOME, engine log files, the embedded
server's files), the `lifecycle` CLI's and runner's output, or what the database recorded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.conftest import REPO, sql_run
from tests.test_connection import black_hole  # noqa: F401 - a fixture
from tests.stack import PulumiStack, pulumi_bin_dir

MARKER = f"pw_{uuid.uuid4().hex}"
DEV_PASSPHRASE = "timescale-lifecycle-dev"
REFUSAL = "needs a passphrase of its own"


# --------------------------------------------------------------------------------------------------
# bin/pulumi: the published passphrase is the dev stack's only


class Project:
    """A Pulumi project of the test's own driven through bin/pulumi, with no passphrase in the environment."""

    def __init__(self, root: Path) -> None:
        pulumi_bin_dir()
        self.dir = root / "project"
        self.dir.mkdir(parents=True)
        (root / "state").mkdir()
        (self.dir / "Pulumi.yaml").write_text("name: secrets-test\nruntime: python\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        self.env.update(PULUMI_HOME=str(root / "home"), PULUMI_BACKEND_URL=f"file://{root / 'state'}", NO_COLOR="1")

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(REPO / "bin" / "pulumi"), *args, "--non-interactive"], cwd=self.dir,
                              env={**self.env, **env}, capture_output=True, text=True, timeout=120)

    def config_file(self, stack: str) -> Path:
        return self.dir / f"Pulumi.{stack}.yaml"


BIN_PULUMI_ONLY = pytest.mark.server_independent("bin/pulumi's passphrase rule touches no database: run once")


@pytest.mark.e2e
@BIN_PULUMI_ONLY
def test_bin_pulumi_refuses_the_dev_passphrase_for_other_stacks(tmp_path: Path) -> None:
    p = Project(tmp_path)
    refused = p.run("stack", "init", "prod")
    assert refused.returncode != 0, refused
    assert REFUSAL in refused.stderr and 'stack "prod"' in refused.stderr
    assert "PULUMI_CONFIG_PASSPHRASE" in refused.stderr and "--secrets-provider" in refused.stderr
    assert not p.config_file("prod").exists(), "nothing may be encrypted with the published passphrase"

    made = p.run("stack", "init", "prod", PULUMI_CONFIG_PASSPHRASE="operator-own")
    assert made.returncode == 0, made
    before = p.config_file("prod").read_text()
    for where in (["--stack", "prod"], ["-s", "prod"], ["--stack=prod"], []):  # [] = the selected stack
        attempt = p.run("config", "set", "--secret", "lifecycle:dsn", f"postgresql://u:{MARKER}@db/x", *where)
        assert attempt.returncode != 0 and REFUSAL in attempt.stderr, (where, attempt)
        assert p.config_file("prod").read_text() == before, where

    # With a passphrase of its own (or a file holding it), prod works.
    secret_file = tmp_path / "passphrase"
    secret_file.write_text("operator-own\n")
    secret_file.chmod(0o600)
    assert p.run("config", "set", "--secret", "k", "v", "--stack", "prod",
                 PULUMI_CONFIG_PASSPHRASE="operator-own").returncode == 0
    got = p.run("config", "get", "k", "--stack", "prod", PULUMI_CONFIG_PASSPHRASE_FILE=str(secret_file))
    assert (got.returncode, got.stdout.strip()) == (0, "v"), got
    # Commands that touch no secret are not refused.
    assert p.run("stack", "ls").returncode == 0


@pytest.mark.e2e
@BIN_PULUMI_ONLY
def test_bin_pulumi_dev_stack_uses_the_published_passphrase(tmp_path: Path) -> None:
    p = Project(tmp_path)
    assert p.run("stack", "init", "dev").returncode == 0
    assert p.run("config", "set", "--secret", "k", "v").returncode == 0
    assert p.run("config", "get", "k", "--stack", "dev").stdout.strip() == "v"
    raw = subprocess.run([str(pulumi_bin_dir() / "pulumi"), "config", "get", "k", "--stack", "dev",
                          "--non-interactive"], cwd=p.dir, env={**p.env, "PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE},
                         capture_output=True, text=True, timeout=120)
    assert raw.stdout.strip() == "v", raw


@pytest.mark.e2e
@BIN_PULUMI_ONLY
def test_bin_pulumi_lets_other_secrets_providers_through(tmp_path: Path) -> None:
    p = Project(tmp_path)
    p.config_file("prod").write_text("secretsprovider: awskms://alias/lifecycle\n")
    other = p.run("config", "get", "k", "--stack", "prod")
    assert REFUSAL not in other.stderr, other  # pulumi itself answers (here: no such stack)
    init = p.run("stack", "init", "staging", "--secrets-provider", "hashivault://lifecycle")
    assert REFUSAL not in init.stderr, init


# --------------------------------------------------------------------------------------------------
# The marker


def marked(dsn: str) -> str:
    """The test DSN carrying the marker: as its password where the server accepts that, and as sslpassword."""
    candidate = make_conninfo(dsn, password=MARKER, sslpassword=MARKER)
    try:
        psycopg.connect(candidate, connect_timeout=5).close()
        return candidate
    except psycopg.OperationalError:
        return make_conninfo(dsn, sslpassword=MARKER)


PROGRAM = """
import os

import pulumi
from lifecycle_resources import (CompressionPolicy, CompressionSettings, Hypertable, LifecycleSchema,
                                 PolicyGuard, RetentionPolicy)

cfg = pulumi.Config("test")
schema = cfg.require("schema")


# A DSN the program gets from its environment (as from a CI secret) rather than stack config. The engine
# masks the exact text of every secret it hands a provider: what leaks is what a provider derives from one
# (a DSN reformatted, its password alone), which is what this test looks for.
def composed(key):
    return pulumi.Output.secret(os.environ["SECRETS_TEST_" + key.upper()])


own = composed("own_dsn")
# Always declared (a failed `up` of the bad ones below must not delete them): every kind, with the
# configured DSN and with a resource's own.
ht = Hypertable("ticks", table=f"{schema}.ticks", time_column="ts", chunk_interval="1 day", dsn=own)
CompressionSettings("ticks-compression", ht, segment_by=["symbol"], order_by=["ts DESC"])
CompressionPolicy("ticks-compress", ht, compress_after="7 days")
RetentionPolicy("ticks-retention", ht, drop_after="30 days", dsn=own)
PolicyGuard("guard")
bad = cfg.get("bad")
if bad:
    # The engine stops at the first refusal: the test declares the bad resources one or more at a time.
    # One table each: a resource waits for the resources of its table, and a refused one is never created.
    t = lambda name: f"{schema}.{name}"
    declare = {
        # pydantic reports a missing value with the whole inputs dict, the resource's own dsn in it
        "bad-missing": lambda: Hypertable("bad-missing", table=t("a"), time_column=None, chunk_interval="1 day",
                                          dsn=own),
        "bad-dsn": lambda: Hypertable("bad-dsn", table=t("b"), time_column="ts", chunk_interval="1 day",
                                      dsn=composed("bad_dsn")),
        "unreachable": lambda: Hypertable("unreachable", table=t("c"), time_column="ts", chunk_interval="1 day",
                                          dsn=composed("unreachable_dsn")),
        "refused": lambda: Hypertable("refused", table=t("h"), time_column="ts", chunk_interval="1 day",
                                      dsn=composed("refused_dsn")),
        "bad-column": lambda: Hypertable("bad-column", table=t("other"), time_column="nope",
                                         chunk_interval="1 day", dsn=own),
        "bad-settings": lambda: CompressionSettings("bad-settings", t("other"), segment_by=["nope"], dsn=own),
        "bad-compress": lambda: CompressionPolicy("bad-compress", t("other"), compress_after="soon"),
        "bad-retention": lambda: RetentionPolicy("bad-retention", t("f"), drop_after={"window": 7}, dsn=own),
        "bad-schema": lambda: LifecycleSchema("bad-schema", dsn=composed("unreachable_dsn")),
        "bad-guard": lambda: PolicyGuard("bad-guard", tables=[t("g")], dsn=composed("bad_dsn")),
    }
    for name in bad.split(","):
        declare[name]()
"""

BAD_RESOURCES = {  # name: what its refusal says
    "bad-missing": "bad-missing: time_column: Field required",
    "bad-dsn": "dsn: not a valid PostgreSQL connection string",
    "refused": "cannot connect to 127.0.0.1:{refused}",
    "unreachable": "cannot connect to 127.0.0.1:{port}",
    "bad-column": "time_column='nope'",
    "bad-settings": "bad-settings: hypertable=",
    "bad-compress": "bad-compress: hypertable=",
    "bad-retention": "bad-retention: window.str (given an object)",
    "bad-schema": "cannot connect to 127.0.0.1:{port}",
    "bad-guard": "dsn: not a valid PostgreSQL connection string",
}
ENGINE_LOGS = ("--logflow", "-v=9", "--logtostderr")


def assert_no_marker(what: str, text: str) -> None:
    if MARKER in text:
        at = text.index(MARKER)
        pytest.fail(f"the password marker leaked into {what}: ...{text[max(0, at - 300):at + 100]}...", pytrace=False)


def files_with(marker: str, root: Path, allowed: set[Path]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path not in allowed and path.stat().st_size < 200_000_000:
            if marker.encode() in path.read_bytes():
                found.append(str(path))
    return found


@pytest.mark.e2e
def test_secrets_marker_appears_nowhere(stack: PulumiStack, tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                        black_hole: int, tmp_path: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    working = marked(tsdb_dsn)
    unreachable = f"host=127.0.0.1 port={black_hole} user=app password={MARKER} sslpassword={MARKER} sslmode=disable"
    bad = f"host=127.0.0.1 password={MARKER} sslpassword={MARKER} port"  # not a valid conninfo
    for table in ("ticks", "other"):
        sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".{table} (ts timestamptz NOT NULL, symbol text NOT NULL, '
                          "price double precision)")
    sql_run(tsdb_dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', \'S\' || (g % 3), g '
                      "FROM generate_series(1, 2000) g")
    (tmp_path / "tmp").mkdir()
    stack.env.update(LIFECYCLE_CONNECT_TIMEOUT="3", TMPDIR=str(tmp_path / "tmp"))
    stack.dsn = working
    stack.program(PROGRAM)
    stack.init({"test:schema": schema})
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        refused_port = s.getsockname()[1]
    stack.env.update(SECRETS_TEST_OWN_DSN=working, SECRETS_TEST_BAD_DSN=bad, SECRETS_TEST_UNREACHABLE_DSN=unreachable,
                     SECRETS_TEST_REFUSED_DSN=unreachable.replace(f"port={black_hole}", f"port={refused_port}"))
    def run(*args: str) -> tuple[int, str]:
        result = stack.run(*args, check=False)
        assert_no_marker(f"pulumi {' '.join(args)}", result.out)
        return result.code, "\n".join(line for line in result.out.splitlines() if not line.startswith('{"time"'))

    code, out = run("preview", "--diff", *ENGINE_LOGS)
    assert code == 0 and "PolicyGuard: (create)" in out, out
    code, out = run("up", "--yes", "--skip-preview", *ENGINE_LOGS)
    assert code == 0 and "created" in out, out

    # Bad inputs on every kind, a bad dsn, an unreachable host: refused at preview and at up.
    says = {name: text.format(port=black_hole, refused=refused_port) for name, text in BAD_RESOURCES.items()}
    unexpected = {}
    for name, expected in says.items():
        stack.set("test:bad", name)
        code, out = run("preview", "--diff", *ENGINE_LOGS)
        if code == 0 or expected not in out:
            unexpected[name] = (code, [line for line in out.splitlines() if "error" in line])
    assert not unexpected, unexpected
    stack.set("test:bad", ",".join(BAD_RESOURCES))
    code, out = run("up", "--yes", "--skip-preview", "--continue-on-error", *ENGINE_LOGS)
    assert code != 0 and any(expected in out for expected in says.values()), out

    # The configured DSN unreachable: refresh fails naming the host.
    stack.run("config", "rm", "test:bad")
    stack.run("config", "set", "--secret", "lifecycle:dsn", unreachable)
    code, out = run("preview", "--refresh", *ENGINE_LOGS)
    assert code != 0 and f"cannot connect to 127.0.0.1:{black_hole}" in out, out
    stack.run("config", "set", "--secret", "lifecycle:dsn", working)

    assert_no_marker("pulumi stack export", stack.state())
    assert_no_marker("pulumi stack output", stack.run("stack", "output", "--json").out)
    for what, out in cli_outputs(tmp_path, working, unreachable, schema):
        assert_no_marker(what, out)
    stack.destroy()

    recorded = sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.lifecycle_executions e WHERE e::text LIKE %s",
                       (f"%{MARKER}%",))
    assert recorded == [(0,)]
    dsn_file = tmp_path / "dsn"
    assert files_with(MARKER, tmp_path_factory.getbasetemp(), {dsn_file}) == []


def cli_outputs(tmp_path: Path, working: str, unreachable: str, schema: str) -> list[tuple[str, str]]:
    """The runner and the CLI's refusals, with the marked DSNs given every way the CLI takes them."""
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(working + "\n")
    dsn_file.chmod(0o600)
    lifecycle = str(REPO / ".venv" / "bin" / "lifecycle")
    env = {**os.environ, "LIFECYCLE_CONNECT_TIMEOUT": "3"}
    env.pop("TSDB_DSN", None)
    runs = [
        ([lifecycle, "run", "--dsn-file", str(dsn_file), "--dry-run", "--stack", f"s-{schema}"], {}, 0),
        ([lifecycle, "run", "--dsn-file", str(dsn_file), "--policy", f"nope-{schema}"], {}, 1),
        ([lifecycle, "status", "--stack", f"s-{schema}"], {"TSDB_DSN": working}, 0),
        ([lifecycle, "run", "--dsn", working, "--dry-run", "--stack", f"s-{schema}"], {}, 0),
        ([lifecycle, "status"], {"TSDB_DSN": unreachable}, 1),
        ([lifecycle, "run", "--dsn", f"host=127.0.0.1 password={MARKER} port"], {}, 1),
        ([lifecycle, "run", working], {}, 2),
    ]
    outputs = []
    for argv, extra, code in runs:
        proc = subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, (argv[1:3], proc.stdout, proc.stderr)
        outputs.append((" ".join(["lifecycle", *argv[1:3]]), proc.stdout + proc.stderr))
    assert "warning: --dsn puts its password on the command line" in outputs[3][1]
    assert "cannot connect to 127.0.0.1:" in outputs[4][1]
    return outputs


# --------------------------------------------------------------------------------------------------
# The lifecycle CLI's DSN arguments


@pytest.mark.integration
def test_cli_dsn_file_must_be_private(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(f"postgresql://u:{MARKER}@127.0.0.1:1/x\n")
    dsn_file.chmod(0o644)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "lifecycle"), "status", "--dsn-file", str(dsn_file)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "readable by other users (mode 644)" in proc.stderr and "chmod 600" in proc.stderr
    assert MARKER not in proc.stdout + proc.stderr


@pytest.mark.integration
def test_cli_dsn_file_and_env_take_no_warning(tsdb_dsn: str, tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(textwrap.dedent(f"""\
        # the operator's connection
        {tsdb_dsn}
        """))
    dsn_file.chmod(0o600)
    lifecycle = str(REPO / ".venv" / "bin" / "lifecycle")
    env = {k: v for k, v in os.environ.items() if k != "TSDB_DSN"}
    by_file = subprocess.run([lifecycle, "status", "--dsn-file", str(dsn_file)], env=env, capture_output=True,
                             text=True, timeout=120)
    by_env = subprocess.run([lifecycle, "status"], env={**env, "TSDB_DSN": tsdb_dsn}, capture_output=True, text=True,
                            timeout=120)
    assert by_file.returncode == by_env.returncode == 0, (by_file.stderr, by_env.stderr)
    assert "Hypertables" in by_file.stdout and "warning" not in by_file.stderr + by_env.stderr
