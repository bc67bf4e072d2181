"""The floors of `make bench`: Python dynamic resources whose provider does nothing.

Both are imported by reference from this module (like the product's providers from their package).
`Noop`, the floor: diffs inputs and reads back what it stored: the least any dynamic-provider product can
cost the engine. `Shaped`, the shaped floor: the product's own resources as the product's state holds them
(the same inputs and property names, the same outputs), with no database and no validation behind them: what
the engine and the SDK cost for resources of that size and shape."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from lifecycle_resources.resources.output_tracking import untracked


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in props.items() if not key.startswith("__")}


class NoopProvider(ResourceProvider):
    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=_inputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=_inputs(olds) != _inputs(news))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_inputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, _inputs(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class Noop(Resource, module="bench", name="Noop"):
    def __init__(self, resource_name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NoopProvider(), resource_name, {"name": resource_name, **props}, opts)


# The JSON file of the product's resources, {name: {"type", "id", "inputs", "outputs", "dependencies"}}, written
# by the bench from the product stack's state after its `up`. The provider host inherits the engine's environment.
SHAPED_ENV = "BENCH_SHAPED_RESOURCES"
PROVIDER_KEY = "__provider"


def _plain(value: Any) -> Any:
    """Integral floats as ints (numbers come back from the engine as doubles), no unset (None) entries (the
    program's SDK drops them, the state keeps those a provider's `check` returned)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _given(props: dict[str, Any]) -> dict[str, Any]:
    """The inputs without the pickled provider, in a form that compares alike on both paths."""
    return _plain({key: value for key, value in props.items() if key != PROVIDER_KEY})


def props_key(props: dict[str, Any]) -> str:
    """A resource's identity among the product's: its inputs, or its outputs, which differ from one resource to
    another (their ids do not: a table's settings and policies take the table's name)."""
    return json.dumps(_given(props), sort_keys=True)


@functools.cache
def _recorded() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The product's resources, by inputs (check, create, diff, update) and by outputs (read)."""
    path = os.environ[SHAPED_ENV]
    resources = json.loads(Path(path).read_text()).values()
    by_inputs = {props_key(r["inputs"]): r for r in resources}
    by_outputs = {props_key(r["outputs"]): r for r in resources}
    if not len(by_inputs) == len(by_outputs) == len(resources):
        raise ValueError(f"{path}: two of the product's resources have the same inputs or outputs")
    return by_inputs, by_outputs


def _by_inputs(props: dict[str, Any]) -> dict[str, Any]:
    return _recorded()[0][props_key(props)]


class ShapedProvider(ResourceProvider):
    """Gives back what the product's provider gave back for the same inputs. Copies: the SDK adds the pickled
    provider to what a method returns."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        # The product's `check` returns its inputs folded, and its state holds them so: the same here.
        return CheckResult(dict(_by_inputs(news)["inputs"]), [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        recorded = _by_inputs(props)
        return CreateResult(id_=recorded["id"], outs=dict(recorded["outputs"]))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        recorded = _recorded()[1].get(props_key(olds))
        return DiffResult(changes=recorded is None or _given(news) != _given(recorded["inputs"]))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=dict(_by_inputs(news)["outputs"]))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        recorded = _recorded()[1][props_key(props)]
        return ReadResult(id_, dict(recorded["outputs"]), dict(recorded["inputs"]))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class Shaped(Resource, module="bench", name="Shaped"):
    """One of the product's resources, declared with its checked inputs; one Output per product property. Its own
    Outputs untracked as the product's are (resources/output_tracking.py): any provider can do that, so the SDK's
    wait over them is not part of what resources of this shape must cost."""

    def __init__(self, resource_name: str, recorded: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        inputs, outputs = recorded["inputs"], recorded["outputs"]
        props = {**inputs, **{key: None for key in outputs if key not in inputs}}
        super().__init__(ShapedProvider(), resource_name, props, opts)
        untracked(self)
