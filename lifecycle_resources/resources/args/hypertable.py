"""The declared inputs of Hypertable, validated by its provider (in the provider host): a Pulumi program that
declares hypertables never imports this module, nor pydantic."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...identifiers import TableName


class HypertableArgs(BaseModel):
    """Declared inputs, as the user writes them."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    table: str
    time_column: str = Field(min_length=1)
    chunk_interval: str | int | None = None  # None: TimescaleDB's default (7 days; 10000/100000/1000000)
    integer_now: str | None = None            # schema.function (an IntegerNow arrives split into these two)
    integer_now_body: str | None = None
    space_column: str | None = None
    number_partitions: int | None = Field(default=None, ge=1, le=32767)
    create_default_indexes: bool = True
    migrate_data: bool = True
    allow_time_column_change: bool = False  # accepted for old programs; a time column change is always refused
    adopt: bool = False
    resource_name: str | None = None

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return TableName.parse(value).qualified

    @model_validator(mode="before")
    @classmethod
    def _integer_now(cls, data: Any) -> Any:
        """integer_now as a function name, or {"function": .., "sql": ..} (IntegerNow) to create it."""
        value = data.get("integer_now") if isinstance(data, dict) else None
        if isinstance(value, dict):
            data = {**data, "integer_now": value.get("function"), "integer_now_body": value.get("sql")}
        return data

    @model_validator(mode="after")
    def _space(self) -> "HypertableArgs":
        if (self.space_column is None) != (self.number_partitions is None):
            raise ValueError("space_column and number_partitions go together (a hash dimension needs both)")
        return self
