"""Where the providers take their connection from: the resource's dsn input, stack config, then TSDB_DSN."""

from __future__ import annotations

import pytest

from lifecycle_resources.db.connection import connect
from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.resources.retention_policy import RetentionPolicyProvider


def test_units_dsn_for_prefers_input_then_config_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = RetentionPolicyProvider()
    monkeypatch.setenv("TSDB_DSN", "host=from-env")
    assert provider.dsn_for({}) == "host=from-env"
    provider._config_dsn = "host=from-config"
    assert provider.dsn_for({}) == "host=from-config"
    assert provider.dsn_for({"dsn": "host=from-input"}) == "host=from-input"
    monkeypatch.delenv("TSDB_DSN")
    provider._config_dsn = None
    assert provider.dsn_for({}) == ""
    assert provider.__getstate__() is None  # nothing of it is pickled into the state


def test_units_no_dsn_message_names_every_source() -> None:
    with pytest.raises(LifecycleError, match=r"lifecycle:dsn.*TSDB_DSN.*`dsn` input"):
        with connect(""):
            pass


def test_provider_serialization_stays_linear_in_the_number_of_resources() -> None:
    """pulumi's serialize_provider wraps pickle's dict writer once per call and never unwraps it: a provider
    whose pickle holds a dict walks that whole chain (quadratic; RecursionError past ~1000 resources)."""
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider

    from lifecycle_resources.resources.hypertable import HypertableProvider

    for _ in range(1500):
        pickled = serialize_provider(HypertableProvider())
    restored = dill.loads(base64.b64decode(pickled))
    assert isinstance(restored, HypertableProvider) and restored._config_dsn is None
