"""Refusals at apply reach the user as their message; other exceptions keep their traceback."""

from __future__ import annotations

import sys
import traceback
import types

from lifecycle_resources.errors import InputError, LifecycleError
from lifecycle_resources.resources import provider_errors


def test_provider_errors_lifecycle_error_is_its_message() -> None:
    try:
        raise InputError("ticks-retention", "drop_after", "soon", "not an interval", "e.g. '30 days'")
    except LifecycleError:
        shown = provider_errors.format_exc()
    assert shown == "ticks-retention: drop_after='soon': not an interval; accepted: e.g. '30 days'"
    assert "Traceback" not in shown


def test_provider_errors_other_exceptions_keep_their_traceback() -> None:
    try:
        raise KeyError("bug")
    except KeyError:
        shown = provider_errors.format_exc()
    assert shown.startswith("Traceback (most recent call last):") and "KeyError: 'bug'" in shown


def test_provider_errors_installed_only_in_the_dynamic_provider_host(monkeypatch) -> None:
    assert provider_errors.install() is False  # pytest's __main__ is not the provider host
    host = types.ModuleType("__main__")
    host.DynamicResourceProviderServicer = object  # type: ignore[attr-defined]
    host.traceback = traceback  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", host)
    assert provider_errors.install() is True
    assert host.traceback.format_exc is provider_errors.format_exc  # type: ignore[attr-defined]
