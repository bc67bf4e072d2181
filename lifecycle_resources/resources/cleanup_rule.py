"""CleanupRule: a declared rule of rows to clean out of a table, recorded in lifecycle.cleanup_rules and applied
by the runner (`lifecycle cleanup`): orphans (rows whose parent key no longer exists, older than a grace
period) or invalid rows (not_null, finite, finite_positive, range, allowed). Never SQL text.

Changes in place: everything (the recorded rule is rewritten). The preview says how many rows it matches now.
Delete: unregisters the rule; no row is removed, and rows already quarantined stay restorable.
Drift: a recorded rule changed or removed by hand shows at refresh; the next up records the declared one again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError, LifecycleError
from ..identifiers import TableName
from .base import (INTERNAL, LifecycleProvider, changed_fields, described, internals, later, later_input,
                   resource_options, secret, secret_input)
from .output_tracking import untracked
from .output_types import typed_outputs

if TYPE_CHECKING:
    import psycopg
    from ..reconcile import cleanup

KIND = "CleanupRule"
USER_FIELDS = ("table", "orphans_of", "invalid", "grace", "time_column", "action")


def _scope(props: dict[str, Any]) -> tuple[str, str]:
    owner = props.get("owner") or {}
    return owner.get("project") or "", owner.get("stack") or ""


class CleanupRuleProvider(LifecycleProvider):
    kind = KIND

    def _rule(self, conn: psycopg.Connection, props: dict[str, Any]) -> cleanup.Rule:
        """The declared rule, checked against the catalog and normalised as it is recorded."""
        from ..reconcile import catalog, cleanup
        rule = cleanup.declared(props.get("resource_name"), props.get("table") or "",
                                **{f: props.get(f) for f in USER_FIELDS[1:] if props.get(f) is not None})
        parent = catalog.table_snapshot(conn, TableName.parse(rule.parent)) if rule.parent else None
        rule = cleanup.resolved(rule, catalog.table_snapshot(conn, TableName.parse(rule.table)), parent,
                                (props.get("peers") or {}).get("time_column"))
        return cleanup.normalise_grace(conn, rule)

    def _plan(self, conn: psycopg.Connection, props: dict[str, Any]) -> tuple[
            cleanup.Rule, list[cleanup.Operation], cleanup.Matches]:
        from ..reconcile import cleanup
        rule = self._rule(conn, props)
        recorded = cleanup.read_rule(conn, rule.name)
        if recorded is not None and (recorded.project, recorded.stack) != _scope(props):
            raise InputError(rule.name, "name", rule.name, "a cleanup rule of this name is already declared by stack "
                             f"{recorded.project}/{recorded.stack} (rule names are unique per database)",
                             "another resource name")
        return rule, cleanup.plan(rule, recorded.rule if recorded else None), cleanup.Matches(
            rule, cleanup.count_matches(conn, rule))

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        with self.session(news) as (conn, _info):
            rule, ops, matches = self._plan(conn, news)
        return {"table": rule.table, **self._values(rule), "matches": matches.rows,
                "planned_operations": described([*ops, matches])}

    @staticmethod
    def _values(rule: cleanup.Rule) -> dict[str, Any]:
        return {"spec_value": {"kind": rule.kind, **rule.spec()}, "rule": rule.describe()}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = changed_fields(olds, news, ["table", "spec_value", "action", "dsn", "owner"])
        return DiffResult(changes=bool(changes), replaces=[], delete_before_replace=False)

    def _apply(self, props: dict[str, Any]) -> tuple[cleanup.Rule, list[str], int | None]:
        from ..reconcile import cleanup
        from ..reconcile.locks import lock_table
        with self.session(props) as (conn, _info), conn.transaction():
            if not cleanup.has_registry(conn):
                raise LifecycleError(f"{KIND} {props.get('resource_name')}: this database has no "
                                     "lifecycle.cleanup_rules: declare LifecycleSchema in the stack (its migration "
                                     "010 records cleanup rules)")
            lock_table(conn, TableName.parse(props.get("table") or ""))  # check() refused a bad name
            rule, ops, matches = self._plan(conn, props)
            project, stack = _scope(props)
            for op in ops:
                cleanup.execute(op, conn, project, stack)
        return rule, described([*ops, matches]), matches.rows

    def _outs(self, props: dict[str, Any], rule: cleanup.Rule, matches: int | None,
              operations: list[str] | None) -> dict[str, Any]:
        outs = {**{f: props.get(f) for f in USER_FIELDS}, "table": rule.table, **self._values(rule),
                "action": rule.action, "matches": matches,
                "resource_name": props.get("resource_name"), "owner": props.get("owner"),
                "peers": props.get("peers") or {},
                "planned_operations": props.get("planned_operations") or [], "dsn": secret(props.get("dsn"))}
        outs["last_operations"] = operations if operations is not None else props.get("last_operations") or []
        return outs

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        rule, ops, matches = self._apply(props)
        return CreateResult(rule.name, self._outs(props, rule, matches, ops))

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        rule, ops, matches = self._apply(news)
        return UpdateResult(self._outs(news, rule, matches, ops))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile import cleanup
        with self.session(props) as (conn, _info):
            recorded = cleanup.read_rule(conn, id_)
        if recorded is None:
            return ReadResult(None, {})  # removed by hand: the next up records it again
        outs = self._outs(props, recorded.rule, props.get("matches"), None)
        if recorded.rule.model_dump(exclude={"name"}) != _declared_in(props):
            # Changed by hand: what the database holds, in the fields a person reads (the diff shows them).
            outs.update(_as_inputs(recorded.rule))
        inputs = {k: outs[k] for k in (*USER_FIELDS, "spec_value", "rule", "matches", "resource_name", "owner",
                                       "peers")}
        if props.get("dsn") is not None:
            inputs["dsn"] = outs["dsn"]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, id_: str, props: dict[str, Any]) -> None:
        """Unregister the rule, if this stack's. No data is touched: quarantined rows stay restorable."""
        from ..reconcile import cleanup
        project, stack = _scope(props)
        with self.session(props) as (conn, _info), conn.transaction():
            if cleanup.has_registry(conn):
                cleanup.execute(cleanup.UnregisterRule(id_, props.get("table") or ""), conn, project, stack)


def _declared_in(props: dict[str, Any]) -> dict[str, Any] | None:
    """The rule as recorded in the previous outputs (spec_value), to compare with what the database holds."""
    from ..reconcile import cleanup
    spec = dict(props.get("spec_value") or {})
    if not spec:
        return None
    kind = spec.pop("kind", None)
    try:
        rule = cleanup.Rule.from_record("", props.get("table") or "", kind, spec, props.get("action") or "")
    except (ValueError, TypeError):
        return None
    return rule.model_dump(exclude={"name"})


def _as_inputs(rule: cleanup.Rule) -> dict[str, Any]:
    """A recorded rule in the inputs' own form (orphans_of, invalid, grace ...)."""
    out: dict[str, Any] = {"table": rule.table, "action": rule.action, "spec_value": {"kind": rule.kind, **rule.spec()},
                           "rule": rule.describe(), "orphans_of": None, "invalid": None, "grace": None,
                           "time_column": rule.time_column}
    if rule.kind == "orphans":
        out["orphans_of"] = [rule.parent, list(rule.keys)] + (
            [list(rule.parent_keys)] if rule.parent_keys != rule.keys else [])
        out["grace"] = rule.grace
        return out
    invalid: dict[str, list[Any]] = {}
    for check in rule.checks:
        item: Any = check.check
        if check.check == "range":
            item = {"range": [check.min, check.max]}
        elif check.check == "allowed":
            item = {"allowed": list(check.values or ())}
        invalid.setdefault(check.column, []).append(item)
    out["invalid"] = {c: items[0] if len(items) == 1 else items for c, items in invalid.items()}
    return out


@typed_outputs
class CleanupRule(Resource, module="timescale", name="CleanupRule"):
    """Rows of `table` to clean out (by the runner, `lifecycle cleanup`): orphans of a parent table, or rows
    failing checks. Removed rows go to a quarantine (restorable) unless action="delete"."""

    table: pulumi.Output[str]
    rule: pulumi.Output[str]
    matches: pulumi.Output[int]
    action: pulumi.Output[str]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, table: Any, *, orphans_of: tuple[str, list[str]] | tuple[
                     str, list[str], list[str]] | None = None,
                 invalid: dict[str, Any] | None = None, grace: str | None = None, time_column: str | None = None,
                 action: str = "quarantine", dsn: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """orphans_of: (parent table, [keys]) or (parent, [keys], [parent keys]): rows whose keys match no parent
        row, older than `grace` (default '1 day') on `time_column` (default: the hypertable's time column).
        invalid: {column: check or [checks]}, a check one of 'not_null', 'finite' (no NaN/±Infinity),
        'finite_positive', {'range': [min, max]} (a bound may be None), {'allowed': [values]}.
        action: 'quarantine' (default: rows moved to lifecycle.cleanup_quarantine, restorable) or 'delete'."""
        name = registry.target_of(table)
        parent = orphans_of[0] if orphans_of else None
        props = {
            "table": name, "orphans_of": list(orphans_of) if orphans_of is not None else None, "invalid": invalid,
            "grace": grace, "time_column": time_column, "action": action, "dsn": secret_input(dsn),
            "rule": None, "matches": None, "planned_operations": None, "last_operations": None,
            INTERNAL: internals(KIND, resource_name, peers=later_input(lambda: registry.peers_of(name))),
        }
        deps = later(lambda: [r for t in (name, parent, "lifecycle.cleanup_operations")
                              for r in registry.depends_on_peers(t, "Hypertable")] + (
            [table] if isinstance(table, pulumi.Resource) else []))
        super().__init__(CleanupRuleProvider(), resource_name, props, resource_options(opts, depends_on=deps))
        untracked(self)
