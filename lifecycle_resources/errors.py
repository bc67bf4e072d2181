"""The errors the library raises: permanent input errors, database problems, connection failures."""

from __future__ import annotations

from typing import Any


class LifecycleError(Exception):
    """A permanent error: retrying the same operation will fail the same way."""


class InputError(LifecycleError):
    """Declared input that cannot be applied, named by resource, field and value."""

    def __init__(self, resource: str | None, field: str, value: Any, problem: str, accepted: str = "") -> None:
        self.resource = resource
        self.field = field
        self.value = value
        self.problem = problem
        self.accepted = accepted
        where = f"{resource}: " if resource else ""
        text = f"{where}{field}={value!r}: {problem}"
        if accepted:
            text += f"; accepted: {accepted}"
        super().__init__(text)


class DatabaseUnavailable(LifecycleError):
    """The database could not be reached after retrying."""


class UnsupportedDatabase(LifecycleError):
    """The server lacks TimescaleDB, runs the Apache edition, or is too old."""


class Deferred(Exception):
    """Validation that must wait: the object is created by another resource of the same program first."""
