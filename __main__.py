"""The lifecycle of a trading platform's time-series tables, one stack per environment.

What each table does (time column, chunk interval, compression, retention) comes from the stack's typed
config in `Pulumi.<env>.yaml`; the connection from the secret `lifecycle:dsn` (or `TSDB_DSN`). The `lifecycle` schema
records every declared policy and every run, and its own tables age like any other.
"""

import pulumi

from lifecycle_resources import LifecycleSchema, PolicyGuard
from lifecycle_resources.resources.stack_config import declare_bookkeeping, declare_tables, load_settings

settings = load_settings()

# Removes jobs added by hand to any table below (and reports them at preview).
PolicyGuard("policy-guard")
schema = LifecycleSchema("lifecycle-schema")
tables = declare_tables(settings)
declare_bookkeeping(settings)

pulumi.export("tables", tables)
pulumi.export("lifecycle_migrations", schema.applied)
