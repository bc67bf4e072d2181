"""The internals travel as one JSON string in the state (the engine walks every property of every resource at
each step), the same text for the same values, and states written before that still read."""

from __future__ import annotations

import json
from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult
from pulumi.runtime import rpc

from lifecycle_resources.resources.base import INTERNAL, LifecycleProvider, unfold


class _Echo(LifecycleProvider):
    """A provider whose read gives back what it is given: the base class's folding is what is under test."""
    kind = "Echo"

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return {}

    def do_diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False)

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("1", props)

    def do_update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(news)

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props, props)

    def do_delete(self, id_: str, props: dict[str, Any]) -> None:
        return None


FLAT = {"table": "s.t", "resource_name": "t", "window_value": 86400000000,
        "owner": {"stack": "dev", "project": "p", "resource_type": "Echo", "resource_name": "t"},
        "peers": {"drop_after": "30 days", "compression_settings": True}}


def test_internals_fold_as_one_string_the_same_for_the_same_values() -> None:
    folded = _Echo().fold(dict(FLAT))
    assert set(folded) == {"table", INTERNAL} and isinstance(folded[INTERNAL], str)
    # As the engine gives them back: numbers as floats, keys in another order.
    engine = {"peers": {"compression_settings": True, "drop_after": "30 days"}, "window_value": 86400000000.0,
              "table": "s.t", "owner": dict(reversed(list(FLAT["owner"].items()))), "resource_name": "t"}
    assert _Echo().fold(engine)[INTERNAL] == folded[INTERNAL]
    assert unfold(folded) == FLAT
    assert json.loads(folded[INTERNAL])["window_value"] == 86400000000


def test_internals_fold_unknown_or_secret_values_stay_an_object() -> None:
    unknown = _Echo().fold({**FLAT, "peers": rpc.UNKNOWN})
    assert unknown[INTERNAL]["peers"] == rpc.UNKNOWN  # a preview: the engine must still see it unknown
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "hunter2"}
    kept = _Echo().fold({**FLAT, "peers": {"token": secret}})
    assert kept[INTERNAL]["peers"]["token"] == secret  # never written out as plain text in a string


def test_internals_of_a_state_written_before_packing_still_read() -> None:
    old = {"table": "s.t", INTERNAL: {k: v for k, v in FLAT.items() if k != "table"}}
    assert unfold(old) == FLAT
    # Read, written again by any step: packed (the engine does not count that as a change: the e2e test).
    for step in (_Echo().read("1", old).outs, _Echo().read("1", old).inputs, _Echo().create(old).outs,
                 _Echo().check(old, old).inputs):
        assert isinstance(step[INTERNAL], str)
        assert {k: v for k, v in unfold(step).items() if v is not None} == FLAT
