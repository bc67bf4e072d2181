"""A policy's plan is told its phase (check or apply) by its caller, not guessed from the connection's transaction
state: at check its reads include the time dimension the stated impact needs, at apply they do not."""

from __future__ import annotations

import psycopg
import pytest

from lifecycle_resources import CompressionPolicyProvider, RetentionPolicyProvider
from tests.test_policy_providers import hypertable, make

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", [CompressionPolicyProvider, RetentionPolicyProvider])
def test_policy_reads_by_the_phase_given_not_the_transaction_state(tsdb_dsn: str, schema: str, kind: type) -> None:
    table = hypertable(tsdb_dsn, schema, rows=10, compress=True)
    p = make(kind, tsdb_dsn)
    args = p._args({"hypertable": table, p.window_key: "7 days", "resource_name": "p"})
    props = {"resource_name": "p", "registration": {"project": "x", "stack": "y"}}
    with psycopg.connect(tsdb_dsn, autocommit=True) as conn:
        def read_kinds(preview: bool) -> set[str]:
            return {r.what for r in p._reads(conn, args, props, preview=preview)}
        idle = {True: read_kinds(True), False: read_kinds(False)}
        with conn.transaction():
            in_transaction = {True: read_kinds(True), False: read_kinds(False)}
    assert idle == in_transaction
    assert "impact dimension" in idle[True] and "impact dimension" not in idle[False], idle
    assert idle[True] - idle[False] == {"impact dimension"}, idle
