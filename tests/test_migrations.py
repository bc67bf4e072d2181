"""Migrations of the lifecycle schema: the pure plan, loading, and the checksum refusal at preview."""

from __future__ import annotations

from pathlib import Path

import pytest

import lifecycle_resources
from lifecycle_resources.db import migrations
from lifecycle_resources.resources.lifecycle_schema import LifecycleSchemaProvider
from lifecycle_resources.db.migrations import Migration


def m(version: int, checksum: str = "c", name: str | None = None) -> Migration:
    return Migration(version=version, name=name or f"{version:03d}_step.sql", checksum=checksum * 64)


def test_migrations_plan_pending_in_order() -> None:
    planned = migrations.plan([m(1), m(2), m(3)], [m(1)])
    assert [p.version for p in planned.pending] == [2, 3] and planned.problems == []


def test_migrations_plan_nothing_when_all_applied() -> None:
    assert migrations.plan([m(1), m(2)], [m(1), m(2)]).pending == []


def test_migrations_plan_refuses_changed_applied_file() -> None:
    planned = migrations.plan([m(1, "d"), m(2)], [m(1, "c")])
    assert len(planned.problems) == 1 and "001_step.sql was applied with checksum" in planned.problems[0]


def test_migrations_plan_refuses_vanished_file() -> None:
    assert "file is gone" in migrations.plan([m(2)], [m(1), m(2)]).problems[0]


def test_migrations_plan_refuses_new_file_numbered_before_applied() -> None:
    assert "number new migrations after" in migrations.plan([m(1), m(2), m(3)], [m(1), m(3)]).problems[0]


def test_migrations_load_orders_and_checksums(tmp_path: Path) -> None:
    (tmp_path / "002_second.sql").write_text("SELECT 2;")
    (tmp_path / "001_first.sql").write_text("SELECT 1;")
    loaded = migrations.load(tmp_path)
    assert [x.name for x in loaded] == ["001_first.sql", "002_second.sql"]
    assert loaded[0].checksum != loaded[1].checksum and len(loaded[0].checksum) == 64


def test_migrations_load_orders_by_number_not_name(tmp_path: Path) -> None:
    for name in ("1000_later.sql", "999_earlier.sql", "010_first.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [x.version for x in migrations.load(tmp_path)] == [10, 999, 1000]


def test_migrations_load_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(migrations.MigrationsMissing, match=r"nowhere does not exist.*reinstall the package"):
        migrations.load(tmp_path / "nowhere")


def test_migrations_load_refuses_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a migration")
    with pytest.raises(migrations.MigrationsMissing, match="holds no NNN_name.sql file"):
        migrations.load(tmp_path)


def test_migrations_load_accepts_a_string_path(tmp_path: Path) -> None:
    (tmp_path / "001_first.sql").write_text("SELECT 1;")
    assert [x.name for x in migrations.load(str(tmp_path))] == ["001_first.sql"]


def test_migrations_default_set_is_package_data() -> None:
    """The wheel carries only what is inside the package: the default set must live there."""
    package = Path(lifecycle_resources.__file__).parent
    assert Path(str(migrations.DEFAULT_DIR)).is_relative_to(package)
    shipped = sorted(p.name for p in Path(str(migrations.DEFAULT_DIR)).glob("*.sql"))
    assert [x.name for x in migrations.load()] == shipped


@pytest.mark.parametrize("name", ["1_x.sql", "001-x.sql", "001_X.sql"])
def test_migrations_load_refuses_bad_names(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNN_lower_case.sql"):
        migrations.load(tmp_path)


def test_migrations_of_the_repo_are_one_clean_series() -> None:
    loaded = migrations.load()
    assert [x.version for x in loaded] == list(range(1, len(loaded) + 1))
    assert len(loaded) >= 3


@pytest.mark.integration
def test_lifecycle_schema_refuses_changed_applied_migration(tsdb_dsn: str, lifecycle_schema: None) -> None:
    provider = LifecycleSchemaProvider()
    provider._config_dsn = tsdb_dsn
    declared = [x.model_dump() for x in migrations.load()]
    ok = provider.check({}, {"migrations": declared, "resource_name": "schema"})
    assert ok.failures == [] and ok.inputs["pending"] == []
    declared[0] = {**declared[0], "sql": declared[0]["sql"] + "\n-- edited", "checksum": "0" * 64}
    refused = provider.check({}, {"migrations": declared, "resource_name": "schema"})
    assert [f.property for f in refused.failures] == ["migrations"]
    assert "001_lifecycle_tables.sql was applied with checksum" in refused.failures[0].reason
    assert "add a new migration instead" in refused.failures[0].reason


@pytest.mark.integration
def test_lifecycle_schema_read_reports_applied(tsdb_dsn: str, lifecycle_schema: None) -> None:
    provider = LifecycleSchemaProvider()
    provider._config_dsn = tsdb_dsn
    read = provider.read("lifecycle", {"resource_name": "schema"})
    assert [a["name"] for a in read.outs["applied"]] == [x.name for x in migrations.load()]
