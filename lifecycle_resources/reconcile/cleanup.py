"""Cleanup rules: one model for the declared rule and the one recorded in lifecycle.cleanup_rules, the checks
against the catalog, the condition a rule matches (psycopg.sql only: a rule is data, never SQL text), a pure
planner and an executor.

The same condition is composed in SQL by lifecycle._cleanup_condition (010_cleanup_rules.sql), which the runner
executes; this one counts the matches at preview, before the lifecycle schema may even exist. Both build it
from the same fixed fragments (tests/test_cleanup_sql.py checks that they match the same rows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from . import catalog
from ..errors import InputError
from ..identifiers import TableName

CHECKS = ("not_null", "finite", "finite_positive", "range", "allowed")
ACTIONS = ("quarantine", "delete")
NUMERIC = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"})
TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})
NOT_FINITE = ("NaN", "Infinity", "-Infinity")


class Check(BaseModel):
    """One invalid-row check of a column: a row fails it when the column is NULL (not_null), NaN or infinite
    (finite), that or <= 0 (finite_positive), outside [min, max] (range), or not one of values (allowed)."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    column: str
    check: Literal["not_null", "finite", "finite_positive", "range", "allowed"]
    min: int | float | None = None  # an int stays one: recorded and shown as written
    max: int | float | None = None
    values: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.check == "range":
            low = "-inf" if self.min is None else f"{self.min:g}"
            high = "+inf" if self.max is None else f"{self.max:g}"
            return f"{self.column} range [{low}, {high}]"
        if self.check == "allowed":
            return f"{self.column} allowed {list(self.values or ())}"
        return f"{self.column} {self.check}"


class Rule(BaseModel):
    """A cleanup rule, declared or as recorded: rows of `table` that are orphans of `parent` (no parent row
    with the same keys, older than `grace` on `time_column`) or that fail one of `checks`."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    name: str
    table: str
    kind: Literal["orphans", "invalid"]
    action: Literal["quarantine", "delete"] = "quarantine"
    parent: str | None = None
    keys: tuple[str, ...] = ()
    parent_keys: tuple[str, ...] = ()
    time_column: str | None = None
    grace: str | None = None
    checks: tuple[Check, ...] = ()

    def spec(self) -> dict[str, Any]:
        """The rule's spec as lifecycle.cleanup_rules records it."""
        if self.kind == "orphans":
            return {"parent": self.parent, "keys": list(self.keys), "parent_keys": list(self.parent_keys),
                    "time_column": self.time_column, "grace": self.grace}
        return {"checks": [c.model_dump(exclude_none=True) for c in self.checks]}

    @classmethod
    def from_record(cls, name: str, table: str, kind: str, spec: Mapping[str, Any], action: str) -> Rule:
        if kind == "orphans":
            keys = tuple(spec.get("keys") or ())
            return cls(name=name, table=table, kind="orphans", action=action, parent=spec.get("parent"), keys=keys,
                       parent_keys=tuple(spec.get("parent_keys") or keys), time_column=spec.get("time_column"),
                       grace=spec.get("grace"))
        return cls(name=name, table=table, kind="invalid", action=action,
                   checks=tuple(Check.model_validate(c) for c in spec.get("checks") or ()))

    def describe(self) -> str:
        if self.kind == "orphans":
            keys = ", ".join(self.keys)
            older = f" older than {self.grace} ({self.time_column})" if self.grace else ""
            return f"orphans of {self.parent} ({keys}){older} -> {self.action}"
        return ", ".join(c.describe() for c in self.checks) + f" -> {self.action}"


# --------------------------------------------------------------------------------------------------
# The declared rule, from the resource's inputs (pure: no database)


def declared(resource: str | None, table: str, *, orphans_of: Any = None, invalid: Any = None,
             grace: Any = None, time_column: Any = None, action: Any = "quarantine") -> Rule:
    """The rule the inputs declare, or an InputError naming the field, the value and what is accepted."""
    try:
        qualified = TableName.parse(table).qualified
    except ValueError as exc:
        raise InputError(resource, "table", table, str(exc), "'schema.table' or 'table'") from None
    if action not in ACTIONS:
        raise InputError(resource, "action", action, "unknown action",
                         "quarantine (the default: removed rows are kept, restorable) or delete")
    if (orphans_of is None) == (invalid is None):
        raise InputError(resource, "orphans_of" if orphans_of is not None else "invalid",
                         orphans_of if orphans_of is not None else invalid,
                         "a rule is either orphans_of or invalid" if orphans_of is not None else
                         "neither orphans_of nor invalid given",
                         "orphans_of=('schema.parent', ['key', ...]) or invalid={'column': 'check', ...}")
    if time_column is not None and (not isinstance(time_column, str) or not time_column):
        raise InputError(resource, "time_column", time_column, "not a column name", "a column of the table")
    if orphans_of is not None:
        parent, keys, parent_keys = _orphans_of(resource, orphans_of)
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, str | int)):
            raise InputError(resource, "grace", grace, "not an interval", "e.g. '1 day', '6 hours', '0'")
        return Rule(name=resource or "", table=qualified, kind="orphans", action=action, parent=parent,
                    keys=keys, parent_keys=parent_keys, time_column=time_column,
                    grace="1 day" if grace is None else str(grace))
    if grace is not None:
        raise InputError(resource, "grace", grace, "only orphan rules have a grace period",
                         "no grace with invalid=")
    return Rule(name=resource or "", table=qualified, kind="invalid", action=action,
                checks=_checks(resource, invalid))


_ORPHANS = "('schema.parent', ['key', ...]) or ('schema.parent', ['key', ...], ['parent_key', ...])"


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v for v in value):
        return None
    return tuple(value)


def _orphans_of(resource: str | None, value: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3) or not isinstance(value[0], str):
        raise InputError(resource, "orphans_of", value, "not a parent table and its keys", _ORPHANS)
    try:
        parent = TableName.parse(value[0]).qualified
    except ValueError as exc:
        raise InputError(resource, "orphans_of", value, f"parent table: {exc}", _ORPHANS) from None
    keys = _names(value[1])
    parent_keys = _names(value[2]) if len(value) == 3 else keys
    if keys is None or parent_keys is None or len(keys) != len(parent_keys):
        raise InputError(resource, "orphans_of", value, "keys must be column names (as many for the parent)",
                         _ORPHANS)
    return parent, keys, parent_keys


_INVALID = ("{'column': check} with check one of 'not_null', 'finite', 'finite_positive', {'range': [min, max]}, "
            "{'allowed': [value, ...]}, or a list of these")


def _checks(resource: str | None, invalid: Any) -> tuple[Check, ...]:
    if not isinstance(invalid, Mapping) or not invalid:
        raise InputError(resource, "invalid", invalid, "not a mapping of columns to checks", _INVALID)
    out = []
    for column, given in invalid.items():
        for item in given if isinstance(given, list | tuple) else [given]:
            out.append(_check(resource, str(column), item))
    return tuple(sorted(set(out), key=lambda c: (c.column, c.check)))


def _number(value: int | float | None) -> int | float | None:
    """A whole number as an int: the engine sends every number as a float, a person wrote 0 not 0.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check(resource: str | None, column: str, item: Any) -> Check:
    field = f"invalid.{column}"
    if isinstance(item, str) and item in ("not_null", "finite", "finite_positive"):
        return Check(column=column, check=item)  # type: ignore[arg-type]
    if isinstance(item, Mapping) and len(item) == 1:
        (kind, arg), = item.items()
        if kind == "range":
            low, high = (arg.get("min"), arg.get("max")) if isinstance(arg, Mapping) else (
                tuple(arg) if isinstance(arg, list | tuple) and len(arg) == 2 else (None, None))
            bounds = [b for b in (low, high) if b is not None]
            if not bounds or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
                raise InputError(resource, field, item, "range needs numeric bounds (one may be None)",
                                 "{'range': [min, max]}, e.g. {'range': [0, 1e9]} or {'range': [0, None]}")
            if low is not None and high is not None and low > high:
                raise InputError(resource, field, item, f"min {low} is above max {high}", "min <= max")
            return Check(column=column, check="range", min=_number(low), max=_number(high))
        if kind == "allowed":
            if not isinstance(arg, list | tuple) or not arg or not all(
                    isinstance(v, str | int | float) and not isinstance(v, bool) for v in arg):
                raise InputError(resource, field, item, "allowed needs a non-empty list of values (an empty one "
                                 "would match every row)", "{'allowed': ['buy', 'sell']}")
            return Check(column=column, check="allowed", values=tuple(sorted({str(v) for v in arg})))
    raise InputError(resource, field, item, "unknown check", _INVALID)


# --------------------------------------------------------------------------------------------------
# Checked against the catalog (pure: given the tables as read)


def resolved(rule: Rule, table: catalog.TableSnapshot | None, parent: catalog.TableSnapshot | None,
             time_column_hint: str | None = None) -> Rule:
    """The rule with its time column filled in (the hypertable's, else `time_column_hint`: the time column the
    program's Hypertable will give it), or an InputError when a table, column or type does not fit."""
    name = rule.name
    if table is None or table.relkind not in ("r", "p"):
        raise InputError(name, "table", rule.table, "no such table" if table is None else
                         "is a view, not a table: rows are removed from tables", "an existing table or hypertable")
    if rule.kind == "invalid":
        for check in rule.checks:
            column = _column(name, "invalid", table, check.column)
            if check.check in ("finite", "finite_positive", "range") and column.type_name not in NUMERIC:
                raise InputError(name, f"invalid.{check.column}", check.check,
                                 f"{rule.table}.{column.name} is {column.type_text}",
                                 f"{check.check} on a numeric column (smallint .. double precision, numeric); "
                                 "not_null or allowed on any column")
        return rule
    if parent is None:
        raise InputError(name, "orphans_of", rule.parent, "no such parent table", "an existing table")
    for key, parent_key in zip(rule.keys, rule.parent_keys):
        mine = _column(name, "orphans_of", table, key)
        theirs = _column(name, "orphans_of", parent, parent_key)
        if _family(mine.type_name) != _family(theirs.type_name):
            raise InputError(name, "orphans_of", [rule.parent, list(rule.keys)],
                             f"{rule.table}.{key} is {mine.type_text} but {rule.parent}.{parent_key} is "
                             f"{theirs.type_text}", "keys of comparable types")
    time_column = rule.time_column or (table.time_dimension.column if table.time_dimension else time_column_hint)
    if time_column is None:
        raise InputError(name, "time_column", None, f"{rule.table} is not a hypertable",
                         "the column the grace period is measured on")
    column = _column(name, "time_column", table, time_column)
    if column.type_name not in TIME_TYPES:
        raise InputError(name, "time_column", time_column, f"{rule.table}.{time_column} is {column.type_text}",
                         "a timestamptz, timestamp or date column")
    return rule.model_copy(update={"time_column": column.name})


def _column(resource: str, field: str, table: catalog.TableSnapshot, name: str) -> catalog.Column:
    column = table.column(name)
    if column is None:
        raise InputError(resource, field, name, f"{table.table} has no such column",
                         "one of " + ", ".join(c.name for c in table.columns))
    return column


def _family(type_name: str) -> str:
    if type_name in ("int2", "int4", "int8", "numeric"):
        return "integer"
    if type_name in ("text", "varchar", "bpchar", "name"):
        return "text"
    return type_name


# --------------------------------------------------------------------------------------------------
# The condition (over the table aliased t)


def condition(rule: Rule) -> sql.Composed:
    """The rows the rule matches, as lifecycle._cleanup_condition composes them."""
    t = "t"
    if rule.kind == "invalid":
        parts: list[sql.Composable] = []
        for check in rule.checks:
            col = sql.Identifier(t, check.column)
            if check.check == "not_null":
                parts.append(sql.SQL("{} IS NULL").format(col))
            elif check.check in ("finite", "finite_positive"):
                parts.append(sql.SQL("{}::text IN ({})").format(col, sql.SQL(", ").join(map(sql.Literal, NOT_FINITE))))
                if check.check == "finite_positive":
                    parts.append(sql.SQL("{} <= 0").format(col))
            elif check.check == "range":
                for op, bound in (("<", check.min), (">", check.max)):
                    if bound is not None:
                        parts.append(sql.SQL("{} " + op + " {}::numeric").format(col, sql.Literal(str(bound))))
            else:
                parts.append(sql.SQL("NOT ({}::text = ANY ({}::text[]))").format(col, sql.Literal(list(check.values or ()))))
        return sql.Composed([sql.SQL("("), sql.SQL(" OR ").join(parts), sql.SQL(")")])
    parent = TableName.parse(rule.parent or "")
    present = [sql.SQL("{} IS NOT NULL").format(sql.Identifier(t, k)) for k in rule.keys]
    if rule.grace is not None:
        present.append(sql.SQL("{} < now() - {}::interval").format(sql.Identifier(t, rule.time_column or ""),
                                                                  sql.Literal(rule.grace)))
    join = sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier("p", pk), sql.Identifier(t, k))
                                 for k, pk in zip(rule.keys, rule.parent_keys))
    return sql.SQL("({} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {}))").format(
        sql.SQL(" AND ").join(present), parent.ident, join)


COUNT_TIMEOUT = "30s"


def count_matches(conn: psycopg.Connection, rule: Rule) -> int | None:
    """How many rows the rule matches now; None when counting takes longer than COUNT_TIMEOUT."""
    before = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (COUNT_TIMEOUT,))
            row = conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(
                TableName.parse(rule.table).ident, condition(rule))).fetchone()
    except psycopg.errors.QueryCanceled:
        return None
    finally:
        if not conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            # Inside the caller's transaction (up), the setting would outlive this count.
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (before[0] if before else "0",))
    return int(row[0]) if row else 0


def normalise_grace(conn: psycopg.Connection, rule: Rule) -> Rule:
    """The grace period as the database prints it (so '24 hours' and '1 day' stay what they are, and a value
    that is no interval is refused here, at preview)."""
    if rule.grace is None:
        return rule
    try:
        with conn.transaction():
            row = conn.execute("SELECT %s::interval::text, %s::interval < interval '0'",
                               (rule.grace, rule.grace)).fetchone()
    except psycopg.errors.DataError as exc:
        raise InputError(rule.name, "grace", rule.grace, f"not an interval ({exc.diag.message_primary})",
                         "an interval such as '1 day', '6 hours' or '0'") from None
    if row is None or row[1]:
        raise InputError(rule.name, "grace", rule.grace, "must not be negative", "zero or a positive interval")
    return rule.model_copy(update={"grace": row[0]})


# --------------------------------------------------------------------------------------------------
# What is recorded


@dataclass(frozen=True)
class Recorded:
    rule: Rule
    project: str
    stack: str


def has_registry(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regprocedure('lifecycle.register_cleanup_rule(text,text,text,jsonb,text,text,"
                       "text)') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read_rule(conn: psycopg.Connection, name: str) -> Recorded | None:
    """The recorded rule named `name`; None when there is none (or no lifecycle schema with rules)."""
    if not has_registry(conn):
        return None
    row = conn.execute("SELECT hypertable, kind, spec, action, project, stack FROM lifecycle.cleanup_rules "
                       "WHERE rule_name = %s", (name,)).fetchone()
    if row is None:
        return None
    return Recorded(Rule.from_record(name, row[0], row[1], row[2], row[3]), row[4], row[5])


# --------------------------------------------------------------------------------------------------
# Operations: immutable, describe() is what the preview shows and up does


@dataclass(frozen=True)
class RegisterRule:
    rule: Rule

    def describe(self) -> str:
        return f"register cleanup rule {self.rule.name} on {self.rule.table}: {self.rule.describe()}"


@dataclass(frozen=True)
class UpdateRule:
    rule: Rule
    existing: Rule

    def describe(self) -> str:
        return (f"update cleanup rule {self.rule.name} on {self.rule.table}: {self.existing.describe()} => "
                f"{self.rule.describe()}")


@dataclass(frozen=True)
class UnregisterRule:
    name: str
    table: str

    def describe(self) -> str:
        return f"unregister cleanup rule {self.name} on {self.table} (no row is removed; quarantined rows stay)"


@dataclass(frozen=True)
class Matches:
    """Not an operation: what the rule matches now, shown at preview and up."""

    rule: Rule
    rows: int | None

    def describe(self) -> str:
        if self.rows is None:
            return f"cleanup rule {self.rule.name}: matches not counted (counting took over {COUNT_TIMEOUT})"
        return f"cleanup rule {self.rule.name} matches {self.rows} rows of {self.rule.table} now"


Operation = RegisterRule | UpdateRule | UnregisterRule


def plan(declared_rule: Rule, actual: Rule | None) -> list[Operation]:
    """Pure: register a new rule, update a changed one, nothing for an equal one."""
    if actual is None:
        return [RegisterRule(declared_rule)]
    if actual != declared_rule:
        return [UpdateRule(declared_rule, actual)]
    return []


def execute(op: Operation, conn: psycopg.Connection, project: str, stack: str) -> None:
    if isinstance(op, RegisterRule | UpdateRule):
        conn.execute("SELECT lifecycle.register_cleanup_rule(%s, %s, %s, %s, %s, %s, %s)",
                     (op.rule.name, op.rule.table, op.rule.kind, Jsonb(op.rule.spec()), op.rule.action, project,
                      stack))
    else:
        conn.execute("SELECT lifecycle.unregister_cleanup_rule(%s, %s, %s)", (op.name, project, stack))
