"""Two stages over a list of items, overlapped and bounded: the first stage of item k+1 runs (in the caller's
thread) while the second stage of item k runs in a worker thread, never more than one item ahead.

The archiver uses it to export the next chunk while the current one is uploaded, verified and dropped: at most
two exported files exist at once, and every item still goes through its own stages in order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, Union

I = TypeVar("I")
R = TypeVar("R")

# The first stage's answer: the item's final result (it needs no second stage, e.g. it failed), or the second
# stage still to run, as a call that returns the final result.
Staged = Union[R, Callable[[], R]]


def overlapped(items: Sequence[I], first: Callable[[I], Staged[R]], *,
               started: Callable[[int, I], None] | None = None,
               finished: Callable[[int, I, R], None] | None = None) -> list[R]:
    """One result per item, in the items' order. `started(i, item)` before item i's first stage (1-based),
    `finished(i, item, result)` once its result is known, both in the caller's thread. An exception in either
    stage (other than what the stages turn into results themselves) ends the run once the item in flight ends."""
    results: list[R] = []
    behind: tuple[int, I, Future[R]] | None = None

    def settle() -> None:
        nonlocal behind
        if behind is not None:
            i, item, future = behind
            behind = None
            results.append(future.result())
            if finished:
                finished(i, item, results[-1])

    with ThreadPoolExecutor(1, thread_name_prefix="archive-finish") as worker:
        for i, item in enumerate(items, 1):
            if started:
                started(i, item)
            staged = first(item)   # overlaps the second stage of the item before, if any
            settle()               # bounded: item i's second stage starts only once item i-1's has ended
            if callable(staged):
                behind = (i, item, worker.submit(staged))
            else:
                results.append(staged)
                if finished:
                    finished(i, item, staged)
        settle()
    return results


def in_sequence(items: Sequence[I], first: Callable[[I], Staged[R]], *,
                started: Callable[[int, I], None] | None = None,
                finished: Callable[[int, I, R], None] | None = None) -> list[R]:
    """overlapped() without the overlap: each item's two stages one after the other, as the archiver ran before
    (scripts/bench_archive.py measures both)."""
    results: list[R] = []
    for i, item in enumerate(items, 1):
        if started:
            started(i, item)
        staged = first(item)
        results.append(staged() if callable(staged) else staged)
        if finished:
            finished(i, item, results[-1])
    return results
