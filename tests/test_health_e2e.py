"""Through the real pulumi: `pulumi preview --refresh` warns about a managed policy that is stuck."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_impact import known_table
from tests.test_impact_e2e import PROGRAM

pytestmark = pytest.mark.e2e


def test_health_e2e_preview_refresh_warns_about_stuck_policy(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    known_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:drop_after": "30 days"})
    stack.up()
    quiet = stack.preview("--refresh")
    assert quiet.code == 0 and "stuck" not in quiet.out, quiet
    sql_run(tsdb_dsn, "UPDATE lifecycle.policy_declarations SET registered_at = now() - interval '3 days' "
                      "WHERE policy_name = 'ticks-retention' AND hypertable = %s", (f"{schema}.ticks",))
    warned = stack.preview("--refresh")
    assert warned.code == 0, warned
    assert f"RetentionPolicy ticks-retention: stuck: ticks-retention on {schema}.ticks" in warned.out, warned
    assert "never ran successfully" in warned.out
