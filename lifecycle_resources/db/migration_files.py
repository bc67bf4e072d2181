"""The migration files of the `lifecycle` schema, read from a directory: what LifecycleSchema declares in the
Pulumi program, which imports neither the driver nor pydantic (migrations.py plans and applies them).

The files ship inside the package (`lifecycle_resources/db/migrations_sql/`), so an installed wheel carries
them; they are read through importlib.resources, which works for a wheel, an editable install and a zip."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ..errors import LifecycleError

DEFAULT_DIR: Traversable = resources.files(__package__) / "migrations_sql"
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


class MigrationsMissing(LifecycleError, ValueError):
    """No migration files where they were looked for: applying "nothing" would silently skip the schema."""


def load(directory: Traversable | Path | str = DEFAULT_DIR) -> list[dict[str, Any]]:
    """Every `NNN_name.sql` file of the directory, ordered by its number (`999_` before `1000_`), as the fields of a
    migrations.Migration: version, name, checksum (sha256 of the file's bytes), sql."""
    where = Path(directory) if isinstance(directory, str) else directory
    if not where.is_dir():
        raise MigrationsMissing(f"migrations directory {where} does not exist: the lifecycle schema cannot be "
                                "migrated from it; reinstall the package (its wheel ships "
                                "lifecycle_resources/db/migrations_sql/) or pass migrations_dir= a directory of "
                                "NNN_name.sql files")
    found = []
    for path in where.iterdir():
        if not path.name.endswith(".sql"):
            continue
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"{where}/{path.name}: migration files are named NNN_lower_case.sql")
        data = path.read_bytes()
        found.append({"version": int(m.group(1)), "name": path.name, "checksum": hashlib.sha256(data).hexdigest(),
                      "sql": data.decode()})
    if not found:
        raise MigrationsMissing(f"migrations directory {where} holds no NNN_name.sql file: the lifecycle schema "
                                "would be declared with no migrations; reinstall the package or pass "
                                "migrations_dir= a directory of NNN_name.sql files")
    found.sort(key=lambda m: (m["version"], m["name"]))
    versions = [m["version"] for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{where}: two migrations share a version number: {versions}")
    return found
