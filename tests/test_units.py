"""Pure tests: names, DSN redaction, stack config validation, edition/version refusal."""

from __future__ import annotations

import pytest

from lifecycle_resources.reconcile.catalog import ServerInfo, require_timescaledb
from lifecycle_resources.db.connection import redact, scrub, validate_dsn
from lifecycle_resources.errors import UnsupportedDatabase
from lifecycle_resources.identifiers import TableName
from lifecycle_resources.resources.stack_config import ConfigError, parse_settings

DSN = "postgresql://app:s3cr3t-pw@db.example:5432/metrics?sslmode=require"


@pytest.mark.parametrize("text, expected", [
    ("public.stream_data", ("public", "stream_data")),
    ("stream_data", ("public", "stream_data")),
    ("Trading.Ticks", ("Trading", "Ticks")),
    (" ops.signals ", ("ops", "signals")),
])
def test_table_name_parse(text: str, expected: tuple[str, str]) -> None:
    assert TableName.parse(text) == expected


@pytest.mark.parametrize("text", ["", "a.b.c", ".x", "x.", "   "])
def test_table_name_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        TableName.parse(text)


def test_redact_drops_password() -> None:
    assert "s3cr3t-pw" not in redact(DSN)
    assert "host=db.example" in redact(DSN)


def test_scrub_removes_password_from_messages() -> None:
    text = f'connection to "{DSN}" failed: password s3cr3t-pw rejected'
    assert "s3cr3t-pw" not in scrub(text, DSN)


@pytest.mark.parametrize("dsn", [DSN, "host=db port=5432 dbname=metrics", "postgresql://app@db/metrics",
                                 "host="])  # libpq accepts empty values: only malformed strings are refused
def test_validate_dsn_accepts(dsn: str) -> None:
    assert validate_dsn(dsn) is None


@pytest.mark.parametrize("dsn", ["", "   ", None, 42, "not a dsn = = =", "host='unterminated", "=x", "hots=db"])
def test_validate_dsn_refuses_without_echoing(dsn: object) -> None:
    problem = validate_dsn(dsn)
    assert problem is not None and "PostgreSQL connection string" in problem
    assert not isinstance(dsn, str) or not dsn.strip() or dsn not in problem


@pytest.mark.parametrize("info, fragment", [
    (ServerInfo(timescaledb_version=None, license=None, extension_schema=None), "not installed"),
    (ServerInfo(timescaledb_version="2.23.0", license="apache", extension_schema="public"), "Apache"),
    (ServerInfo(timescaledb_version="2.11.2", license="timescale", extension_schema="public"), "too old"),
    (ServerInfo(timescaledb_version="2.22.1", license="timescale", extension_schema="public"), "too old"),
])
def test_require_timescaledb_refuses(info: ServerInfo, fragment: str) -> None:
    with pytest.raises(UnsupportedDatabase, match=fragment):
        require_timescaledb(info)


def test_require_timescaledb_accepts_the_tested_versions() -> None:
    for version in ("2.23.0-dev", "2.26.0"):  # embedded, native
        require_timescaledb(ServerInfo(timescaledb_version=version, license="timescale", extension_schema="ts"))


def test_stack_config_valid() -> None:
    settings = parse_settings({"tables": {"stream_data": {"time_column": "ts", "chunk_interval": "1 day"}}})
    assert settings.qualified_tables()["public.stream_data"].chunk_interval == "1 day"


def test_stack_config_typo_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"lifecycle:tables\.stream_data\.chunk_intervall"):
        parse_settings({"tables": {"stream_data": {"chunk_intervall": "1 day"}}})


def test_stack_config_bad_table_name_names_the_key() -> None:
    with pytest.raises(ConfigError, match="lifecycle:tables"):
        parse_settings({"tables": {"a.b.c": {}}})


def test_stack_config_unknown_top_level_key_is_named() -> None:
    with pytest.raises(ConfigError, match="lifecycle:tabels"):
        parse_settings({"tabels": {}})


def test_stack_config_nested_typo_is_named() -> None:
    with pytest.raises(ConfigError, match=r"lifecycle:tables\.signals\.retention\.drop_afer"):
        parse_settings({"tables": {"signals": {"retention": {"drop_afer": "1 day"}}}})


def test_stack_config_bookkeeping_defaults() -> None:
    settings = parse_settings({})
    assert (settings.bookkeeping.chunk_interval, settings.bookkeeping.compress_after,
            settings.bookkeeping.drop_after) == ("1 day", "7 days", "90 days")


def test_stack_config_files_of_the_repo_are_valid() -> None:
    """Pulumi.dev.yaml and Pulumi.prod.yaml parse and differ only in values."""
    import pathlib

    import yaml  # type: ignore[import-untyped]

    root = pathlib.Path(__file__).resolve().parent.parent
    parsed = {}
    for env in ("dev", "prod"):
        config = yaml.safe_load((root / f"Pulumi.{env}.yaml").read_text())["config"]
        raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("lifecycle:") and k != "lifecycle:dsn"}
        parsed[env] = parse_settings(raw)
    assert parsed["dev"].tables.keys() == parsed["prod"].tables.keys()
    assert parsed["dev"] != parsed["prod"]
