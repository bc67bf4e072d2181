"""Through the real pulumi: the preview says what a retention change will drop, and max_drop_fraction makes CI
stop a change that would delete more than the declared share of a table."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_impact import known_table

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import LifecycleSchema, RetentionPolicy

cfg = pulumi.Config("test")
schema = LifecycleSchema("lifecycle")
rp = RetentionPolicy("ticks-retention", cfg.require("table"), drop_after=cfg.require("drop_after"),
                     max_drop_fraction=cfg.get_float("max_drop_fraction"),
                     opts=pulumi.ResourceOptions(depends_on=[schema]))
pulumi.export("done", rp.last_operations)
"""


def test_impact_e2e_preview_states_drop_and_guard_refuses(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    known_table(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": f"{schema}.ticks", "test:drop_after": "15 days", "test:max_drop_fraction": "0.5"})
    preview = stack.preview()
    assert preview.code == 0, preview
    assert f"impact: the next run drops 5 of 21 chunks of {schema}.ticks (" in preview.out, preview
    assert "rows (estimate from statistics)" in preview.out, preview
    stack.up()
    [(config,)] = sql_run(tsdb_dsn, "SELECT config FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                          (schema,))
    assert config["drop_after"] == "15 days"

    stack.set("test:drop_after", "5 days")
    refused = stack.preview()
    assert refused.code != 0, refused
    assert "refused by max_drop_fraction=0.5: the next run drops 15 of 21 chunks" in refused.out, refused
    up = stack.up(check=False)
    assert up.code != 0 and "refused by max_drop_fraction=0.5" in up.out, up
    assert sql_run(tsdb_dsn, "SELECT config FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                   (schema,)) == [(config,)]
    assert sql_run(tsdb_dsn, f'SELECT count(*) FROM "{schema}".ticks') == [(20 * 144,)]

    stack.set("test:drop_after", "12 days")  # within the guard: stated, accepted
    allowed = stack.preview()
    assert allowed.code == 0 and f"impact: the next run drops 8 of 21 chunks of {schema}.ticks" in allowed.out, allowed
