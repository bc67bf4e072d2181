"""The lifecycle of a trading platform's time-series tables, one stack per environment.

What each table does (time column, chunk interval, ...) comes from the stack's typed config in
`Pulumi.<env>.yaml`; the connection from the secret `lifecycle:dsn`.
"""

import pulumi

from lifecycle_resources import Hypertable
from lifecycle_resources.stack_config import load_settings

settings = load_settings()

hypertables = {
    table: Hypertable(
        table.split(".", 1)[1],
        table=table,
        time_column=spec.time_column,
        chunk_interval=spec.chunk_interval,
    )
    for table, spec in settings.qualified_tables().items()
}

pulumi.export("hypertables", {name: ht.chunk_interval for name, ht in hypertables.items()})
