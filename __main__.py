"""The lifecycle of a trading platform's time-series tables, one stack per environment.

What each table does (time column, chunk interval, compression, retention) comes from the stack's typed
config in `Pulumi.<env>.yaml`; the connection from the secret `lifecycle:dsn` (or `TSDB_DSN`). The `lifecycle` schema
records every declared policy and every run, and its own tables age like any other.
"""

from pathlib import Path

import pulumi

from lifecycle_resources import (ArchiveStore, CleanupRule, CompressionPolicy, ContinuousAggregate, LifecycleSchema,
                                 PolicyGuard, RetentionPolicy)
from lifecycle_resources.resources.stack_config import declare_bookkeeping, declare_tables, load_settings

settings = load_settings()

# Removes jobs added by hand to any table below (and reports them at preview).
PolicyGuard("policy-guard")
schema = LifecycleSchema("lifecycle-schema")
# Expiring raw ticks are archived before they are dropped: no TimescaleDB retention job on stream_data; `lifecycle
# run` archives each expiring chunk to this store, verifies it, then drops it. `archive:url` points a stack at its
# own store (s3://bucket/prefix, credentials from boto3's chain where the runner runs); default: a local directory.
cold = ArchiveStore("cold", url=pulumi.Config("archive").get("url") or f"file://{Path.cwd() / '.lifecycle' / 'archive'}",
                    endpoint_url=pulumi.Config("archive").get("endpoint_url"))
tables = declare_tables(settings, archive={"public.stream_data": cold})
declare_bookkeeping(settings)

# Where the stack manages the raw ticks (every environment of this platform does).
if "public.stream_data" in settings.qualified_tables():
    ohlcv = ContinuousAggregate(
        "stream-data-ohlcv-1m", view="public.stream_data_ohlcv_1m",
        query="SELECT time_bucket('1 minute', ts) AS bucket, symbol, first(price, ts) AS open, max(price) AS high, "
              "min(price) AS low, last(price, ts) AS close, sum(volume) AS volume "
              "FROM public.stream_data GROUP BY bucket, symbol",
        compress=True,  # created WITH NO DATA, then a first refresh over the refresh window (two days)
        refresh_policy={"start_offset": "2 days", "end_offset": "1 minute", "schedule_interval": "5 minutes"})
    CompressionPolicy("stream-data-ohlcv-1m-compress", ohlcv, compress_after="7 days")
    RetentionPolicy("stream-data-ohlcv-1m-retention", ohlcv, drop_after="365 days")
    pulumi.export("ohlcv_1m", {"view": ohlcv.view, "refresh_job_id": ohlcv.refresh_job_id,
                               "on_delete": ohlcv.on_delete})
    # Ticks a feed should never send: `lifecycle cleanup` moves them to the quarantine (restorable).
    bad_ticks = CleanupRule("bad-ticks", table="public.stream_data",
                            invalid={"price": "finite_positive", "volume": {"range": [0, None]}})
    pulumi.export("bad_ticks", {"rule": bad_ticks.rule, "matches": bad_ticks.matches})

pulumi.export("tables", tables)
pulumi.export("lifecycle_migrations", schema.applied)
