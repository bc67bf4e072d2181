"""Qualified table names as users write them ("schema.table" or "table")."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from psycopg import sql


class TableName(NamedTuple):
    schema: str
    name: str

    @classmethod
    def parse(cls, text: str, default_schema: str = "public") -> "TableName":
        """Split on the first dot; names are taken exactly as written (case and all)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("expected a table name such as 'public.stream_data'")
        schema, dot, name = text.strip().partition(".")
        if not dot:
            schema, name = default_schema, schema
        if not schema or not name or "." in name:
            raise ValueError("expected 'schema.table' or 'table'")
        return cls(schema, name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        from psycopg import sql  # here, not at the top: a Pulumi program parses table names without psycopg

        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return self.qualified
