"""The lifecycle of a trading platform's time-series tables, one stack per environment.

What each table does (time column, chunk interval, compression, retention) comes from the stack's typed
config in `Pulumi.<env>.yaml`; the connection from the secret `lifecycle:dsn`. The `lifecycle` schema
records every declared policy and every run, and its own tables age like any other.
"""

import pulumi

from lifecycle_resources import (
    CompressionPolicy,
    CompressionSettings,
    Hypertable,
    LifecycleSchema,
    PolicyGuard,
    RetentionPolicy,
)
from lifecycle_resources.resources.lifecycle_schema import TABLES as BOOKKEEPING_TABLES
from lifecycle_resources.resources.lifecycle_schema import TIME_COLUMNS
from lifecycle_resources.resources.stack_config import source, load_settings

settings = load_settings()
schema = LifecycleSchema("lifecycle-schema")
summary = {}

for table, spec in settings.qualified_tables().items():
    name = table.split(".", 1)[1]
    key = name if name in settings.tables else table
    ht = Hypertable(name, table=table, time_column=spec.time_column, chunk_interval=spec.chunk_interval,
                    config_source={"table": source(key), "time_column": source(key, "time_column"),
                                   "chunk_interval": source(key, "chunk_interval")})
    if spec.compression is not None:
        CompressionSettings(f"{name}-compression", ht, segment_by=spec.compression.segment_by,
                            order_by=spec.compression.order_by,
                            config_source={"segment_by": source(key, "compression", "segment_by"),
                                           "order_by": source(key, "compression", "order_by")})
        CompressionPolicy(f"{name}-compress", ht, compress_after=spec.compression.after,
                          schedule_interval=spec.compression.schedule_interval,
                          config_source={"compress_after": source(key, "compression", "after"),
                                         "schedule_interval": source(key, "compression", "schedule_interval"),
                                         "hypertable": source(key)})
    if spec.retention is not None:
        RetentionPolicy(f"{name}-retention", ht, drop_after=spec.retention.drop_after,
                        schedule_interval=spec.retention.schedule_interval,
                        config_source={"drop_after": source(key, "retention", "drop_after"),
                                       "schedule_interval": source(key, "retention", "schedule_interval")})
    summary[table] = {
        "chunk_interval": ht.chunk_interval,
        "compress_after": spec.compression.after if spec.compression else None,
        "drop_after": spec.retention.drop_after if spec.retention else None,
    }

keep = settings.bookkeeping
for table in BOOKKEEPING_TABLES:
    name = table.split(".", 1)[1]
    ht = Hypertable(name, table=table, time_column=TIME_COLUMNS[table], chunk_interval=keep.chunk_interval)
    CompressionSettings(f"{name}-compression", ht)
    CompressionPolicy(f"{name}-compress", ht, compress_after=keep.compress_after,
                      config_source={"compress_after": "lifecycle:bookkeeping.compress_after"})
    RetentionPolicy(f"{name}-retention", ht, drop_after=keep.drop_after,
                    config_source={"drop_after": "lifecycle:bookkeeping.drop_after"})

# Declared last: reports policy jobs added by hand to any table above.
PolicyGuard("policy-guard")

pulumi.export("tables", summary)
pulumi.export("lifecycle_migrations", schema.applied)
