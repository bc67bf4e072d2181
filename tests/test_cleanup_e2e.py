"""CleanupRule through the real `pulumi`: refused at preview with the field and value named, the preview's match
count, create, no-change preview, in-place update, drift shown by refresh and converged by up, and delete that
unregisters the rule and keeps every row (quarantined ones included)."""

from __future__ import annotations

import json

import pytest

from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import sql_run
from tests.stack import PulumiStack

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CleanupRule, Hypertable

cfg = pulumi.Config("test")
schema = cfg.require("schema")
ht = Hypertable("ticks", table=f"{schema}.ticks", time_column="ts", chunk_interval="1 day")
bad = CleanupRule(f"bad-ticks-{schema}", ht, invalid=cfg.require_object("invalid"), action=cfg.get("action") or "quarantine")
# After `bad`: an up that refuses `bad` then creates no rule (the engine creates an independent rule beside a
# refused one or not, as it happens to order them: the refused up below would record it about one run in ten).
orphans = CleanupRule(f"orphan-ticks-{schema}", ht, orphans_of=(f"{schema}.signals", ["signal_id"]), grace="2 days",
                      opts=pulumi.ResourceOptions(depends_on=[bad]))
pulumi.export("rule", bad.rule)
pulumi.export("matches", bad.matches)
pulumi.export("orphans", orphans.matches)
"""


def recorded(dsn: str, schema: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in sql_run(dsn, "SELECT rule_name, kind, spec, action, project, stack "
                                              "FROM lifecycle.cleanup_rules WHERE hypertable = %s",
                                         (f"{schema}.ticks",))}


def count(dsn: str, schema: str, where: str = "true") -> int:
    return sql_run(dsn, f'SELECT count(*) FROM "{schema}".ticks WHERE {where}')[0][0]


def test_cleanup_e2e_lifecycle(stack: PulumiStack, tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".signals (signal_id bigint)')
    sql_run(tsdb_dsn, f'INSERT INTO "{schema}".signals SELECT generate_series(0, 89)')
    sql_run(tsdb_dsn, f'CREATE TABLE "{schema}".ticks (ts timestamptz NOT NULL, signal_id bigint, symbol text, '
                      "price double precision)")
    sql_run(tsdb_dsn, f'INSERT INTO "{schema}".ticks SELECT now() - g * interval \'1 hour\', g % 100, '
                      "CASE WHEN g % 11 = 0 THEN NULL ELSE 'S' END, CASE WHEN g % 7 = 0 THEN -1 "
                      "WHEN g % 13 = 0 THEN 'NaN'::float8 ELSE g END FROM generate_series(1, 200) g")
    bad_price = count(tsdb_dsn, schema, "price = -1 OR price = 'NaN'")
    both = count(tsdb_dsn, schema, "price = -1 OR price = 'NaN' OR symbol IS NULL")
    orphans = count(tsdb_dsn, schema, "signal_id >= 90 AND ts < now() - interval '2 days'")
    name = f"bad-ticks-{schema}"
    stack.program(PROGRAM)
    stack.init({"test:schema": schema})
    stack.run("config", "set", "--path", "test:invalid.nope", "not_null")

    refused = stack.preview()
    assert refused.code != 0, refused
    assert f"{name}: invalid='nope': {schema}.ticks has no such column" in refused.out, refused
    assert "accepted: one of ts, signal_id, symbol, price" in refused.out, refused
    assert stack.up(check=False).code != 0
    assert recorded(tsdb_dsn, schema) == {}

    stack.run("config", "rm", "--path", "test:invalid.nope")
    stack.run("config", "set", "--path", "test:invalid.price", "finite_positive")
    preview = stack.preview()
    assert preview.code == 0, preview
    assert "+ pulumi-python:dynamic/timescale:CleanupRule: (create)" in preview.out, preview
    assert f"cleanup rule {name} matches {bad_price} rows of {schema}.ticks now" in preview.out, preview
    assert f"cleanup rule orphan-ticks-{schema} matches {orphans} rows" in preview.out, preview
    assert recorded(tsdb_dsn, schema) == {}

    stack.up()
    out = stack.outputs()
    assert (out["rule"], out["matches"], out["orphans"]) == ("price finite_positive -> quarantine", bad_price, orphans)
    rules = recorded(tsdb_dsn, schema)
    assert rules[name] == ("invalid", {"checks": [{"column": "price", "check": "finite_positive"}]}, "quarantine",
                           "lifecycle-test", "test")
    assert rules[f"orphan-ticks-{schema}"][0] == "orphans"
    assert stack.preview("--expect-no-changes").code == 0

    # In place: a second check and the delete action.
    stack.set("test:action", "delete")
    stack.run("config", "set", "--path", "test:invalid.symbol", "not_null")
    changed = stack.preview()
    assert changed.code == 0 and "~ pulumi-python:dynamic/timescale:CleanupRule: (update)" in changed.out, changed
    assert "replace" not in changed.out, changed
    assert (f"update cleanup rule {name} on {schema}.ticks: price finite_positive -> quarantine => "
            "price finite_positive, symbol not_null -> delete") in changed.out, changed
    stack.up()
    assert stack.outputs()["matches"] == both
    assert recorded(tsdb_dsn, schema)[name][1:3] == (
        {"checks": [{"column": "price", "check": "finite_positive"}, {"column": "symbol", "check": "not_null"}]},
        "delete")

    # Drift: the recorded rule changed by hand shows at refresh; up records the declared one again.
    sql_run(tsdb_dsn, "UPDATE lifecycle.cleanup_rules SET spec = %s::jsonb WHERE rule_name = %s",
            (json.dumps({"checks": [{"column": "price", "check": "finite"}]}), name))
    drift = stack.preview("--refresh", "--expect-no-changes")
    assert drift.code != 0 and "price finite -> delete" in drift.out, drift
    stack.up("--refresh")
    assert recorded(tsdb_dsn, schema)[name][1]["checks"][1] == {"column": "symbol", "check": "not_null"}
    assert stack.preview("--refresh", "--expect-no-changes").code == 0
    # Removed by hand: up records it again.
    sql_run(tsdb_dsn, "DELETE FROM lifecycle.cleanup_rules WHERE rule_name = %s", (name,))
    stack.up("--refresh")
    assert name in recorded(tsdb_dsn, schema)

    # The runner applies them; delete unregisters the rules and removes no row, quarantined ones stay.
    runs = {r.rule_name: r for r in DataLifecycleManager(tsdb_dsn).cleanup(f"orphan-ticks-{schema}")}
    assert runs[f"orphan-ticks-{schema}"].rows_quarantined == orphans
    left = count(tsdb_dsn, schema)
    stack.destroy()
    assert recorded(tsdb_dsn, schema) == {}
    assert count(tsdb_dsn, schema) == left == 200 - orphans
    assert sql_run(tsdb_dsn, "SELECT count(*) FROM lifecycle.cleanup_quarantine WHERE rule_name = %s",
                   (f"orphan-ticks-{schema}",))[0][0] == orphans
    DataLifecycleManager(tsdb_dsn).restore_quarantine(f"orphan-ticks-{schema}")
    assert count(tsdb_dsn, schema) == 200
