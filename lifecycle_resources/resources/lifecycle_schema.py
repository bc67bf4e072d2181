"""LifecycleSchema: the `lifecycle` schema (tables, views, functions) migrated by the stack.

Create/update apply the pending migrations in one transaction and record each with its checksum; the
preview lists them (`pending`). A changed already-applied file is refused at preview. Delete leaves the
schema and its history in place unless `drop_on_delete=True` was declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError
from .base import INTERNAL, INTERNAL_KEYS, LifecycleProvider, changed_fields, internals, resource_options, secret, secret_input
from .output_tracking import untracked
from .output_types import typed_outputs

if TYPE_CHECKING:
    from ..db import migrations

# The tables the migrations create; the stack makes them hypertables like any other table.
TABLES = ("lifecycle.lifecycle_policies", "lifecycle.lifecycle_executions", "lifecycle.compression_metrics",
          "lifecycle.archive_metadata", "lifecycle.cleanup_operations")
TIME_COLUMNS = {
    "lifecycle.lifecycle_policies": "registered_at", "lifecycle.lifecycle_executions": "started_at",
    "lifecycle.compression_metrics": "captured_at", "lifecycle.archive_metadata": "archived_at",
    "lifecycle.cleanup_operations": "executed_at",
}


def _declared(props: dict[str, Any]) -> list[migrations.Migration]:
    from ..db import migrations
    return [migrations.Migration.model_validate(m) for m in props.get("migrations") or []]


def _summary(items: list[migrations.Migration]) -> list[dict[str, Any]]:
    return [{"version": m.version, "name": m.name, "checksum": m.checksum} for m in items]


class LifecycleSchemaProvider(LifecycleProvider):
    kind = "LifecycleSchema"
    internal_keys = INTERNAL_KEYS | {"migrations"}  # the library's own SQL: `pending` names what applies

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from ..db import migrations
        declared = _declared(news)
        with self.session(news) as (conn, _info):
            planned = migrations.plan(declared, migrations.applied(conn))
        if planned.problems:
            raise InputError(news.get("resource_name"), "migrations", [m.name for m in declared],
                             "; ".join(planned.problems), "applied migrations unchanged, new ones numbered after")
        return {"pending": [m.name for m in planned.pending], "applied": _summary(declared),
                "planned_operations": [f"apply migration {m.name}" for m in planned.pending]}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=bool(changed_fields(olds, news, ["applied", "dsn"])), replaces=[])

    def _apply(self, props: dict[str, Any]) -> tuple[list[migrations.Migration], list[str]]:
        from ..db import migrations
        declared = _declared(props)
        with self.session(props) as (conn, _info), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle:schema'))")
            planned = migrations.plan(declared, migrations.applied(conn))
            if planned.problems:
                raise InputError(props.get("resource_name"), "migrations", [m.name for m in declared],
                                 "; ".join(planned.problems))
            migrations.apply(conn, planned.pending)
            done = migrations.applied(conn)
        return done, [m.name for m in planned.pending]

    def _outs(self, props: dict[str, Any], done: list[migrations.Migration], ran: list[str]) -> dict[str, Any]:
        from ..db import migrations
        return {"applied": _summary(done), "pending": [], "last_applied": ran, "schema": migrations.SCHEMA,
                "drop_on_delete": bool(props.get("drop_on_delete")), "resource_name": props.get("resource_name"),
                "owner": props.get("owner"), "planned_operations": props.get("planned_operations") or [],
                "last_operations": [f"apply migration {name}" for name in ran], "dsn": secret(props.get("dsn"))}

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        from ..db import migrations
        done, ran = self._apply(props)
        return CreateResult(migrations.SCHEMA, self._outs(props, done, ran))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        done, ran = self._apply(news)
        return UpdateResult(self._outs(news, done, ran))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..db import migrations
        with self.session(props) as (conn, _info):
            done = migrations.applied(conn)
        if not done:
            return ReadResult(None, {})
        outs = self._outs(props, done, props.get("last_applied") or [])
        inputs = {"applied": outs["applied"], "drop_on_delete": outs["drop_on_delete"],
                  "resource_name": outs["resource_name"]}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, _id: str, props: dict[str, Any]) -> None:
        """Keeps the schema and its history unless the resource declared drop_on_delete=True."""
        from psycopg import sql
        from ..db import migrations
        if not props.get("drop_on_delete"):
            return
        with self.session(props) as (conn, _info), conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(migrations.SCHEMA)))


@typed_outputs
class LifecycleSchema(Resource, module="timescale", name="LifecycleSchema"):
    """The lifecycle schema. Declare it before the resources that act on its tables."""

    applied: pulumi.Output[list]
    pending: pulumi.Output[list]
    last_applied: pulumi.Output[list]
    schema: pulumi.Output[str]

    def __init__(self, resource_name: str, *, migrations_dir: Path | str | None = None, drop_on_delete: bool = False,
                 dsn: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        # The package's own migrations unless told otherwise; a missing or empty set is refused here, in the
        # program, before anything reaches the database.
        from ..db import migration_files  # not migrations: the program imports neither the driver nor pydantic
        found = migration_files.load(migration_files.DEFAULT_DIR if migrations_dir is None else migrations_dir)
        props = {
            "drop_on_delete": drop_on_delete, "dsn": secret_input(dsn),
            "applied": None, "pending": None, "last_applied": None, "schema": None, "planned_operations": None,
            "last_operations": None,
            INTERNAL: internals("LifecycleSchema", resource_name, migrations=found),
        }
        opts = resource_options(opts)
        super().__init__(LifecycleSchemaProvider(), resource_name, props, opts)
        untracked(self)
        registry.promise({t: {"time_column": TIME_COLUMNS[t], "column_type": "timestamptz"} for t in TABLES}, self)
