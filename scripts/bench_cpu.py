"""CPU seconds of one `pulumi` command, per process kind: the engine, the program, the provider host, the rest.

Wall-clock ratios say how much longer the product takes than the floor, not whose time it is. The engine is
a Go process (`pulumi`), the program runs in its own Python process (`pulumi-language-python-exec`), and
every dynamic provider in another (`python -m pulumi.dynamic`): their CPU seconds, side by side for the
product, the shaped floor and the floor, say where the difference is spent.

Read from /proc while the command runs (Linux): the command's session is scanned for new processes every
DISCOVER seconds, and the processes found are read every INTERVAL seconds. What a process spends after its
last reading (at most INTERVAL), and processes that start and end between two scans (the language host's
short `python -c` probes), are not counted: the figures are lower bounds, a few tens of milliseconds low.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

KINDS = ("engine", "program", "provider", "other")
INTERVAL = 0.05
DISCOVER = 0.25
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def kind_of(argv: list[str]) -> str:
    """The kind of a process of a `pulumi` command, from its command line."""
    if not argv:
        return "other"
    if any(Path(arg).name == "pulumi-language-python-exec" for arg in argv[:3]):
        return "program"
    if "pulumi.dynamic" in argv[1:4] and argv[argv.index("pulumi.dynamic") - 1] == "-m":
        return "provider"
    if Path(argv[0]).name == "pulumi":
        return "engine"
    return "other"


def _stat(pid: int) -> tuple[int, float] | None:
    """(session id, CPU seconds) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces and parentheses
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / _TICK


def _argv(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    return []


class CpuWatch:
    """Samples the CPU of the processes of one session (a command started with start_new_session=True)."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self._seen: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds at its last reading)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cpu-watch-{sid}", daemon=True)

    def __enter__(self) -> CpuWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _discover(self) -> None:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) not in self._seen:
                pid = int(entry.name)
                stat = _stat(pid)
                if stat is not None and stat[0] == self.sid:
                    self._seen[pid] = (kind_of(_argv(pid)), stat[1])

    def _read(self) -> None:
        for pid, (kind, cpu) in list(self._seen.items()):
            stat = _stat(pid)
            if stat is not None and stat[0] == self.sid:  # a pid reused by another process is not read
                if kind == "other":  # bin/pulumi, a shell script, execs the engine in its own process
                    kind = kind_of(_argv(pid))
                self._seen[pid] = (kind, max(cpu, stat[1]))

    def _run(self) -> None:
        since_scan = DISCOVER
        while True:
            if since_scan >= DISCOVER:
                self._discover()
                since_scan = 0.0
            self._read()
            if self._stop.wait(INTERVAL):
                return
            since_scan += INTERVAL

    def seconds(self) -> dict[str, float]:
        """CPU seconds per kind (every kind present, 0.0 when none ran), and their total."""
        out = dict.fromkeys(KINDS, 0.0)
        for kind, cpu in self._seen.values():
            out[kind] += cpu
        out = {kind: round(value, 2) for kind, value in out.items()}
        out["total"] = round(sum(out[kind] for kind in KINDS), 2)
        return out
