"""Through the real pulumi: the preview of CompressionSettings that compress worse than 1:1 warns with the
advisor's best candidate, `up` still applies them (a warning, not a refusal), and a no-change preview says
nothing."""

from __future__ import annotations

import pytest

from tests.conftest import sql_run
from tests.stack import PulumiStack
from tests.test_advisor import no_scratch
from tests.test_compression_preview import unique_ids

pytestmark = pytest.mark.e2e

PROGRAM = """
import pulumi
from lifecycle_resources import CompressionSettings

cfg = pulumi.Config("test")
cs = CompressionSettings("trades-compression", cfg.require("table"), segment_by=cfg.require_object("segment_by"),
                         order_by=["ts DESC"])
pulumi.export("planned", cs.planned_operations)
"""


def test_compression_preview_e2e_warns_then_applies(stack: PulumiStack, tsdb_dsn: str, schema: str) -> None:
    table = unique_ids(tsdb_dsn, schema)
    stack.program(PROGRAM)
    stack.init({"test:table": table, "test:segment_by": '["trade_id"]'})
    preview = stack.preview()
    assert preview.code == 0, preview
    # in the planned operations (cut by the display) and, in full, as a warning of the resource
    assert f"WARNING: compression settings of {table} (segment_by trade_id, order_by ts DESC) make the data " \
           "larger" in preview.out, preview
    warned = " ".join(preview.out.split())
    assert f"warning: CompressionSettings trades-compression: compression settings of {table}" in warned, preview
    assert f"the advisor's best candidate: CompressionSettings(hypertable='{table}', segment_by=[], " \
           "order_by=['ts DESC'])" in warned, preview
    stack.up()
    [(segment_by,)] = sql_run(tsdb_dsn, "SELECT segmentby::text FROM timescaledb_information."
                                         "hypertable_columnstore_settings WHERE hypertable = %s::regclass",
                              (f'"{schema}".trades',))
    assert segment_by in ("trade_id", "{trade_id}")  # text on TimescaleDB 2.23, an array on 2.26
    again = stack.preview()
    assert again.code == 0 and "make the data larger" not in again.out, again
    no_scratch(tsdb_dsn)


FIRST_UP = """
import pulumi
from lifecycle_resources import CompressionSettings, Hypertable

cfg = pulumi.Config("test")
ht = Hypertable("trades", table=cfg.require("table"), time_column="ts", chunk_interval="1 day")
CompressionSettings("trades-compression", ht, segment_by=["trade_id"], order_by=["ts DESC"])
"""


def test_compression_preview_e2e_first_up_of_a_plain_table_warns(stack: PulumiStack, tsdb_dsn: str,
                                                                 schema: str) -> None:
    """A table with rows that the same program makes a hypertable: the first preview already measures."""
    table = unique_ids(tsdb_dsn, schema, hypertable=False)
    stack.program(FIRST_UP)
    stack.init({"test:table": table})
    preview = stack.preview()
    assert preview.code == 0, preview
    warned = " ".join(preview.out.split())
    assert (f"warning: CompressionSettings trades-compression: compression settings of {table} (segment_by "
            f"trade_id, order_by ts DESC) make the data larger") in warned, preview
    assert f"rows of {table} (not a hypertable yet: its newest rows)" in warned, preview
    stack.up()
    assert sql_run(tsdb_dsn, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                             "WHERE hypertable_schema = %s", (schema,)) == [(True,)]
    no_scratch(tsdb_dsn)
