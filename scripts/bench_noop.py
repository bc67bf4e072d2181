"""The floor of `make bench`: a Python dynamic resource whose provider does nothing.

It is imported by reference from this module (like the product's providers from their package), diffs
inputs, and reads back what it stored: the least any dynamic-provider product can cost the engine."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult


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
