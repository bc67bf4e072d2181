"""What the program (the language host) builds per resource: the Pulumi SDK waits for every tracked Output at the
end of a program, looping over all that are still pending at each step, so every Output a resource adds costs time
quadratic in the number of resources. Run with the SDK's mocks: no engine, no database."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from lifecycle_resources import CompressionPolicy, Hypertable, RetentionPolicy
from lifecycle_resources.resources import registry
from lifecycle_resources.resources.base import INTERNAL, unfold



class Recorder(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.name] = args.inputs
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def mocks() -> Recorder:
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, preview=True)
    registry.reset()
    yield recorder
    registry.reset()


def test_program_nested_inputs_add_no_tracked_outputs(mocks: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peers a resource computes after the program body (what its siblings declare) reach the provider as a
    plain value in its inputs, without the Outputs Output.from_input would make for each of its keys and items."""
    tracked = []
    track = pulumi.Output._track
    monkeypatch.setattr(pulumi.Output, "_track", lambda self: (tracked.append(self), track(self))[1])

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        RetentionPolicy("r", "s.t", drop_after="30 days")  # declared before the hypertable it names: sees it anyway
        ht = Hypertable("t", table="s.t", time_column="ts")
        cp = CompressionPolicy("c", ht, compress_after="7 days")
        return pulumi.Output.all(ht.urn, cp.urn)

    program()
    peers = {name: unfold(mocks.inputs[name])["peers"] for name in ("r", "t", "c")}
    assert all(isinstance(mocks.inputs[name][INTERNAL], str) for name in ("r", "t", "c"))  # sent packed
    assert peers["r"] == {"time_column": "ts", "compress_after": "7 days", "drop_after": "30 days"}
    assert peers["c"] == peers["r"] == peers["t"]
    # What is left is the SDK's own: an Output per property the resource exposes, its urn and id, registration
    # and dependency plumbing (about 45 per resource); the deep-unwrapped peers added about 13 more.
    assert len(tracked) / 3 <= 50


def own_outputs(resource: pulumi.Resource) -> list[pulumi.Output[Any]]:
    return [v for v in vars(resource).values() if isinstance(v, pulumi.Output)]


def test_program_resource_own_outputs_are_not_tracked(mocks: Recorder) -> None:
    """A resource's urn, id and property Outputs are resolved by its registration, which the SDK tracks itself: the
    SDK's end-of-program wait does not loop over them (in `up` they stay pending until the create is done)."""
    from pulumi.runtime.settings import SETTINGS

    seen: dict[str, list[bool]] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        ht = Hypertable("t", table="s.t", time_column="ts")
        cp = CompressionPolicy("c", ht, compress_after="7 days")
        rp = RetentionPolicy("r", ht, drop_after="30 days")
        for name, resource in (("t", ht), ("c", cp), ("r", rp)):
            seen[name] = [o._data in SETTINGS.outputs for o in own_outputs(resource)]
        return pulumi.Output.all(ht.table, cp.job_id, rp.drop_after)

    program()
    assert {name: len(flags) >= 10 for name, flags in seen.items()} == {"t": True, "c": True, "r": True}, seen
    assert {name: any(flags) for name, flags in seen.items()} == {"t": False, "c": False, "r": False}, seen


class FailingRegistration(Recorder):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.name == "c":
            raise RuntimeError("registration of c refused")
        return super().new_resource(args)


def test_program_fails_when_a_registration_fails_though_its_outputs_are_untracked() -> None:
    pulumi.runtime.set_mocks(FailingRegistration(), preview=True)
    registry.reset()
    try:
        @pulumi.runtime.test
        def program() -> None:
            ht = Hypertable("t", table="s.t", time_column="ts")
            CompressionPolicy("c", ht, compress_after="7 days")

        with pytest.raises(Exception, match="registration of c refused"):
            program()
    finally:
        registry.reset()
