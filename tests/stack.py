"""Drives the real `pulumi` binary on a throwaway project and stack, offline, with a local file backend."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pulumi_bin_dir() -> Path:
    recorded = REPO / ".lifecycle" / "pulumi-bin"
    if recorded.exists():
        path = Path(recorded.read_text().strip())
        if (path / "pulumi").exists():
            return path
    pytest.fail("the Pulumi engine is not set up: run `make setup` (it builds pulumi from the Go module proxy "
                "or uses a pulumi >= 3.272 already on PATH)", pytrace=False)


@dataclass
class Result:
    code: int
    out: str

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.out}"


class PulumiStack:
    """A Pulumi project in `workdir` whose program is Python written by the test.

    `virtualenv` is Pulumi.yaml's option as a user writes it, relative to `workdir` or absolute (default:
    this checkout's .venv); `main` is Pulumi.yaml's `main:` directory, where the program goes."""

    def __init__(self, workdir: Path, *, pulumi_home: Path, dsn: str, stack: str = "test",
                 virtualenv: Path | str | None = None, main: str | None = None) -> None:
        self.workdir = workdir
        self.program_dir = workdir / main if main else workdir
        self.dsn = dsn
        self.stack = stack
        virtualenv = virtualenv or REPO / ".venv"
        venv = workdir / virtualenv
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "state").mkdir()
        bindir = pulumi_bin_dir()
        self.env = {
            **os.environ,
            "PATH": f"{bindir}{os.pathsep}{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(pulumi_home),
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "test-passphrase",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "NO_COLOR": "1",
        }
        self.env.pop("TSDB_DSN", None)
        self.bin = str(bindir / "pulumi")
        (workdir / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
            name: lifecycle-test
            runtime:
              name: python
              options:
                toolchain: pip
                virtualenv: {virtualenv}
            """) + (f"main: {main}\n" if main else ""))
        self.created = False

    def program(self, source: str) -> None:
        self.program_dir.mkdir(parents=True, exist_ok=True)
        (self.program_dir / "__main__.py").write_text(textwrap.dedent(source))

    def run(self, *args: str, check: bool = True) -> Result:
        flags = ["--stack", self.stack, "--non-interactive"]
        cmd = list(args)
        at = cmd.index("--") if "--" in cmd else len(cmd)  # flags must come before a "--"
        proc = subprocess.run([self.bin, *cmd[:at], *flags, *cmd[at:]], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, timeout=600)
        result = Result(proc.returncode, proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed: {result}")
        return result

    def init(self, config: dict[str, str] | None = None) -> None:
        self.run("stack", "init")
        self.created = True
        self.run("config", "set", "--secret", "lifecycle:dsn", self.dsn)
        for key, value in (config or {}).items():
            self.set(key, value)

    def set(self, key: str, value: str) -> None:
        self.run("config", "set", key, "--", value)

    def up(self, *extra: str, check: bool = True) -> Result:
        return self.run("up", "--yes", "--skip-preview", *extra, check=check)

    def preview(self, *extra: str, check: bool = False) -> Result:
        return self.run("preview", "--diff", *extra, check=check)

    def destroy(self) -> Result:
        return self.run("destroy", "--yes", "--skip-preview")

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").out)

    def state(self) -> str:
        """The raw stack state as stored by the backend (to check that secrets stay encrypted)."""
        return self.run("stack", "export").out

    def inputs(self) -> dict[str, dict]:
        """Each dynamic resource's inputs as the state holds them, by URN."""
        self.run("stack", "export", "--file", str(self.workdir / "export.json"))
        exported = json.loads((self.workdir / "export.json").read_text())
        return {r["urn"]: r.get("inputs") or {} for r in exported["deployment"]["resources"]
                if r["type"].startswith("pulumi-python:dynamic")}

    def refresh_rewrites(self) -> set[tuple[str, str]]:
        """(resource name, input) of every input a `pulumi refresh` changes in the state. Inputs that differ from
        the checked ones make the engine serialise the whole snapshot again per resource in the next preview."""
        before = self.inputs()
        self.run("refresh", "--yes", "--skip-preview")
        after = self.inputs()
        return {(urn.rsplit("::", 1)[-1], key) for urn in before.keys() | after.keys()
                for key in before.get(urn, {}).keys() | after.get(urn, {}).keys()
                if before.get(urn, {}).get(key) != after.get(urn, {}).get(key)}

    def cleanup(self) -> None:
        if self.created:
            self.run("stack", "rm", "--yes", "--force", check=False)
