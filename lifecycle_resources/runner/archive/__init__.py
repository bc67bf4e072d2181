"""Archive before drop: expiring chunks exported to Parquet in an object store, verified, recorded, then dropped.

store.py (where objects live: a local directory or S3), plan.py (pure: keys, states, what a run does next),
export.py (a chunk's consistent snapshot to a Parquet file), archiver.py (the per-chunk steps and their
records), verify.py (an object against what was recorded)."""
