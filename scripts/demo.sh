#!/usr/bin/env bash
# The main job on the embedded TimescaleDB (or the native one: LIFECYCLE_DB_SERVER=native): sample
# trading tables with weeks of rows, the dev stack
# applied with the real Pulumi engine, a no-change preview, and what the database now holds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
lifecycle=.venv/bin/lifecycle
step() { printf '\n==> %s\n' "$*"; }

server=${LIFECYCLE_DB_SERVER:-embedded}   # `make demo DB=native`: PostgreSQL + TimescaleDB installed natively
if [ "$server" = native ]; then
    step "native TimescaleDB (cluster in .lifecycle/native-data, 127.0.0.1, a free port)"
    bash tools/timescaledb/setup.sh >/dev/null
    dsn=$($lifecycle db dsn --server native 2>/dev/null) || dsn=$($lifecycle db start --server native)
    scheduler="TimescaleDB's scheduler also runs them on their schedules here"
else
    step "embedded TimescaleDB (data in .lifecycle/db-data, port 5433)"
    if ! dsn=$($lifecycle db dsn --server embedded 2>/dev/null); then
        dsn=$($lifecycle db start --server embedded --data .lifecycle/db-data --port 5433)
    fi
    scheduler="no TimescaleDB scheduler runs here"
fi
# The server's password is generated per data directory: the providers read this DSN from
# TSDB_DSN (the dev stack's config holds none), as do the lifecycle commands below (not --dsn, which
# `ps` shows); it is never written to the stack.
export TSDB_DSN="$dsn"
echo "$server TimescaleDB at $(echo "$dsn" | sed -E 's#//([^:/@]+):[^@]*@#//\1:***@#')"

step "sample tables of a trading platform, 45 days of synthetic rows"
$lifecycle db exec sql/demo/trading_tables.sql

step "pulumi up --refresh (stack dev)"
bin/pulumi stack select dev 2>/dev/null || bin/pulumi stack init dev
bin/pulumi up --yes --refresh --stack dev

step "pulumi preview --expect-no-changes"
bin/pulumi preview --expect-no-changes --stack dev

step "one stream_data day older than the 30-day retention, set aside to compare after its archive round trip"
.venv/bin/python scripts/demo_archive.py keep

step "lifecycle run: the due policies, executed and recorded ($scheduler); stream_data's expiring chunks are archived to .lifecycle/archive, verified, then dropped"
$lifecycle run --stack dev

step "lifecycle archive list / verify: what was archived, every object re-checked against its record"
$lifecycle archive list --table public.stream_data
$lifecycle archive verify --table public.stream_data

step "lifecycle restore: that day from the archive into a side table, compared row by row with the rows set aside"
read -r day_from day_to < <(.venv/bin/python scripts/demo_archive.py range)
$lifecycle restore --table public.stream_data --from "$day_from" --to "$day_to" --into public.stream_data_restored
.venv/bin/python scripts/demo_archive.py compare

step "what the database holds"
$lifecycle status --stack dev

step "the 1-minute OHLCV continuous aggregate over stream_data (kept a year; the raw ticks 30 days)"
.venv/bin/python - <<'PY'
import os
import psycopg

with psycopg.connect(os.environ["TSDB_DSN"]) as conn:
    view, mat_only, compressed, bars, job, every, start = conn.execute("""
        SELECT ca.view_schema || '.' || ca.view_name, ca.materialized_only, ca.compression_enabled,
               (SELECT count(*) FROM public.stream_data_ohlcv_1m), j.job_id, j.schedule_interval::text,
               j.config ->> 'start_offset'
          FROM timescaledb_information.continuous_aggregates ca
          LEFT JOIN timescaledb_information.jobs j
            ON j.proc_name = 'policy_refresh_continuous_aggregate' AND j.hypertable_name = ca.view_name
         WHERE ca.view_name = 'stream_data_ohlcv_1m'""").fetchone()
    print(f"{view}: {bars} bars, materialized_only={mat_only}, compression enabled={compressed}, "
          f"refresh policy job {job} every {every} over the last {start}")
    print(f"{'bucket':25} {'symbol':6} {'open':>8} {'high':>8} {'low':>8} {'close':>8} {'volume':>8}")
    for row in conn.execute("SELECT bucket, symbol, open, high, low, close, volume FROM public.stream_data_ohlcv_1m "
                            "WHERE symbol = 'AAPL' ORDER BY bucket DESC LIMIT 5"):
        print(f"{row[0]!s:25} {row[1]:6} {row[2]:8.2f} {row[3]:8.2f} {row[4]:8.2f} {row[5]:8.2f} {row[6]:8.0f}")
PY

step "cleanup rule bad-ticks: a few bad ticks arrive; dry run, then for real (into the quarantine, restorable)"
$lifecycle db exec sql/demo/bad_ticks.sql
$lifecycle cleanup --rule bad-ticks --dry-run
$lifecycle cleanup --rule bad-ticks

step "lifecycle report --html: one self-contained page (opens offline)"
report=$($lifecycle report --html .lifecycle/report.html)
echo "report: $report"

printf '\nThe %s TimescaleDB is still running; its DSN: .venv/bin/lifecycle db dsn --server %s\nStop it with: .venv/bin/lifecycle db stop --server %s (or make db-stop)\n' "$server" "$server" "$server"
