"""Which of a resource's Outputs the Pulumi SDK keeps track of in the program.

The SDK tracks every Output it creates and, once the program body has run, waits for the pending ones in a loop:
`asyncio.wait(every tracked Output still pending, FIRST_COMPLETED)`, once per completion, which registers and
removes a callback on each of them every time (cpython#74741). During `up` a resource's property Outputs stay
pending until its create is done, so that loop costs the program time proportional to resources x properties at
every completion: with 400 of our resources (12 to 21 properties each, plus urn and id), about 27 s of the
program's CPU in an `up` (cProfile: 1.3 million add_done_callback calls), taken from the engine, the provider and
the database on the same cores.

A resource's own Outputs (its urn, its id and one per property) are all resolved by its RegisterResource call,
which the SDK tracks on its own and whose failure it reports: tracking them adds nothing but that cost. They are
untracked, as the SDK itself does for an Output once `apply` derives another from it. Outputs the program derives
from them (apply, all, concat) are tracked as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pulumi


def untracked(resource: pulumi.Resource) -> None:
    """Stop tracking the Outputs the SDK just created for `resource` (call right after its __init__)."""
    for value in vars(resource).values():
        if isinstance(value, pulumi.Output):
            value._untrack()
            # A fault of these is the registration's, reported by the SDK through the RPC: mark it seen, so that
            # asyncio does not also log it as "exception never retrieved".
            value._data.add_done_callback(_seen)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
