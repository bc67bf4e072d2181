"""The lifecycle of a trading platform's time-series tables, one stack per environment.

What each table does (time column, chunk interval, compression, retention) comes from the stack's typed
config in `Pulumi.<env>.yaml`; the connection from the secret `lifecycle:dsn`.
"""

import pulumi

from lifecycle_resources import (
    CompressionPolicy,
    CompressionSettings,
    Hypertable,
    PolicyGuard,
    RetentionPolicy,
)
from lifecycle_resources.stack_config import load_settings

settings = load_settings()
summary = {}

for table, spec in settings.qualified_tables().items():
    name = table.split(".", 1)[1]
    ht = Hypertable(name, table=table, time_column=spec.time_column, chunk_interval=spec.chunk_interval)
    if spec.compression is not None:
        CompressionSettings(f"{name}-compression", ht, segment_by=spec.compression.segment_by,
                            order_by=spec.compression.order_by)
        CompressionPolicy(f"{name}-compress", ht, compress_after=spec.compression.after,
                          schedule_interval=spec.compression.schedule_interval)
    if spec.retention is not None:
        RetentionPolicy(f"{name}-retention", ht, drop_after=spec.retention.drop_after,
                        schedule_interval=spec.retention.schedule_interval)
    summary[table] = {
        "chunk_interval": ht.chunk_interval,
        "compress_after": spec.compression.after if spec.compression else None,
        "drop_after": spec.retention.drop_after if spec.retention else None,
    }

# Declared last: reports policy jobs added by hand to any table above.
PolicyGuard("policy-guard")

pulumi.export("tables", summary)
