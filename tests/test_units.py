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


@pytest.mark.parametrize("dsn", [
    "postgresql://app:s3cr3t-pw@db.example:5432/metrics?sslmode=require&sslpassword=k3y-pw",
    "host=db.example user=app password=s3cr3t-pw sslpassword=k3y-pw sslkey=/keys/app.key",
    "host=db.example user=app password='s3cr3t pw' sslpassword='k3y pw'",
])
def test_redact_drops_every_secret_key(dsn: str) -> None:
    shown = redact(dsn)
    assert not any(secret in shown for secret in ("s3cr3t", "k3y")), shown
    assert "host=db.example" in shown and "user=app" in shown
    assert "password" not in shown


@pytest.mark.parametrize("dsn, text", [
    ("host=db password=s3cr3t-pw sslpassword=k3y-pw", "bad key: sslpassword k3y-pw, password s3cr3t-pw"),
    # An unparsable DSN still has its secrets found and removed.
    ("host=db password=s3cr3t-pw sslpassword=k3y-pw port==", "given host=db password=s3cr3t-pw sslpassword=k3y-pw"),
    ("postgresql://app:s3cr3t-pw@db:bad:port/x", "invalid dsn postgresql://app:s3cr3t-pw@db:bad:port/x"),
    # No DSN known: password-like pairs and URL passwords are removed anyway.
    (None, "conninfo host=db password=s3cr3t-pw sslpassword='k3y-pw' and postgres://app:s3cr3t-pw@db/x"),
])
def test_scrub_removes_every_secret(dsn: str | None, text: str) -> None:
    cleaned = scrub(text, dsn)
    assert "s3cr3t" not in cleaned and "k3y" not in cleaned, cleaned




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


def test_stack_config_wrong_value_and_missing_key_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"tables": {"signals": {"chunk_interval": True, "compression": {"segment_by": "symbol"}}}})
    assert str(caught.value) == (
        "config lifecycle:tables.signals.chunk_interval: not an interval such as '7 days', or an integer (integer "
        "time) (got True); config lifecycle:tables.signals.compression.segment_by: not a list of strings (got "
        "'symbol'); config lifecycle:tables.signals.compression.after: missing: an interval such as '7 days', or an "
        "integer (integer time) is required")


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


def test_pydantic_failures_never_echo_the_dsn_or_the_inputs() -> None:
    from pydantic import BaseModel, ValidationError

    from lifecycle_resources.resources.base import pydantic_failures

    class Args(BaseModel):
        table: str
        chunk_interval: str
        segment_by: list[str] = []
        dsn: int | None = None  # a type no DSN passes, to make pydantic complain about the dsn field itself

    news = {"chunk_interval": {"nested": DSN}, "segment_by": [{"x": DSN}], "dsn": DSN, "resource_name": "r"}
    with pytest.raises(ValidationError) as info:
        Args.model_validate(news)
    failures = {f.property: f.reason for f in pydantic_failures(info.value, "r")}
    assert set(failures) == {"table", "chunk_interval", "segment_by.0", "dsn"}
    assert all("s3cr3t-pw" not in reason and "db.example" not in reason for reason in failures.values()), failures
    assert failures["table"] == "r: table: Field required"
    assert failures["dsn"].startswith("r: dsn=<secret>: ")

    with pytest.raises(ValidationError) as info:
        Args.model_validate({"table": "t", "chunk_interval": 7, "segment_by": ["a", 1]})
    failures = {f.property: f.reason for f in pydantic_failures(info.value, None)}
    assert failures["chunk_interval"] == "chunk_interval=7: Input should be a valid string"
    assert failures["segment_by.1"] == "segment_by.1=1: Input should be a valid string"


class _OtherMapping(dict):
    """Not a dict by exact type: walked by the general path."""


@pytest.mark.parametrize("value, unknown", [
    ("04da6b54-80e4-46f7-96ec-b56ff0331ba9", True), ("7 days", False), ("", False), (0, False), (1.5, False),
    (True, False), (None, False), ({"a": 1, "b": ["x", {"c": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"}]}, True),
    ({"a": 1, "b": ["x", {"c": None}]}, False), (["a", "04da6b54-80e4-46f7-96ec-b56ff0331ba9"], True),
    (("a", 2), False), (_OtherMapping(k="04da6b54-80e4-46f7-96ec-b56ff0331ba9"), True), (_OtherMapping(k=1), False),
    ([], False), ({}, False)])
def test_units_is_unknown_walks_every_container(value: object, unknown: bool) -> None:
    """is_unknown's exact-type fast paths answer as the general walk does (rpc.UNKNOWN anywhere inside)."""
    from pulumi.runtime import rpc

    from lifecycle_resources.resources.base import is_unknown
    assert rpc.UNKNOWN == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    assert is_unknown(value) is unknown


def test_units_parse_version_cached_gives_equal_values() -> None:
    """parse_version is cached (every session() checks the version): equal texts, equal tuples; each its own."""
    from lifecycle_resources.reconcile.catalog import parse_version
    assert parse_version("2.26.0") == parse_version("2.26.0") == (2, 26, 0)
    assert parse_version("2.23.1-dev") == (2, 23, 1) and parse_version("0") == (0,)
    assert ServerInfo(timescaledb_version="2.26.0", license=None, extension_schema=None).version_tuple == (2, 26, 0)


def test_units_resource_options_without_the_users_as_merged() -> None:
    """resource_options() skips merge() when the user gave no options: the same options result (secret dsn, the
    dependencies, delete_before_replace), and the user's, when given, are still merged with ours."""
    import pulumi

    from lifecycle_resources.resources.base import resource_options
    deps: list[pulumi.Resource] = []  # (a Resource needs a running program; the list is passed through as is)
    ours = resource_options(None, depends_on=deps, delete_before_replace=True)
    merged = pulumi.ResourceOptions.merge(None, pulumi.ResourceOptions(
        additional_secret_outputs=["dsn"], depends_on=deps, delete_before_replace=True))
    assert (ours.additional_secret_outputs, ours.depends_on, ours.delete_before_replace, ours.protect,
            ours.provider, ours.parent, ours.ignore_changes) == (
        merged.additional_secret_outputs, merged.depends_on, merged.delete_before_replace, merged.protect,
        merged.provider, merged.parent, merged.ignore_changes) == (["dsn"], [], True, None, None, None, None)
    assert resource_options(None).depends_on == [] and resource_options(None).delete_before_replace is None
    users = resource_options(pulumi.ResourceOptions(protect=True, additional_secret_outputs=["x"]), depends_on=deps)
    assert (users.protect, users.additional_secret_outputs, users.depends_on) == (True, ["x", "dsn"], deps)
