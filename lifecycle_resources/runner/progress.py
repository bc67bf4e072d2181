"""Progress of long operations (the runner, the advisor, archive and restore): a rich progress bar on a terminal, plain lines
otherwise (logs, CI), where a bar's redraws would be noise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Steps:
    """step(i, n, label) when step i of n starts; done(i, n, label, text) when it ends."""

    def __init__(self, title: str, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.title = title
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> Steps:
        if self.tty:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(file=self.stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def step(self, i: int, n: int, label: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=n, completed=i - 1, description=f"{self.title}: {label}")
        else:
            print(f"{self.title} [{i}/{n}] {label} ...", file=self.stream, flush=True)

    def done(self, i: int, n: int, label: str, text: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=n, completed=i)
        else:
            print(f"{self.title} [{i}/{n}] {label}: {text}", file=self.stream, flush=True)


# step i of n starts (text None) or ends (text: what it did, one line)
StepProgress = Callable[[int, int, str, "str | None"], None]


def printed(steps: Steps, out: TextIO | None = None) -> StepProgress:
    """A StepProgress for a command: each finished step is one line on stdout (logs and terminals alike); on a
    terminal the bar also moves, and shows the step under way."""

    def progress(i: int, n: int, label: str, text: str | None) -> None:
        if text is None:
            if steps.tty:
                steps.step(i, n, label)
            return
        print(text, file=out or sys.stdout, flush=True)
        if steps.tty:
            steps.done(i, n, label, text)

    return progress
