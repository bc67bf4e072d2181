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

step "lifecycle run: the due policies, executed and recorded ($scheduler)"
$lifecycle run --stack dev

step "what the database holds"
$lifecycle status --stack dev

step "lifecycle report --html: one self-contained page (opens offline)"
report=$($lifecycle report --html .lifecycle/report.html)
echo "report: $report"

printf '\nThe %s TimescaleDB is still running; its DSN: .venv/bin/lifecycle db dsn --server %s\nStop it with: .venv/bin/lifecycle db stop --server %s (or make db-stop)\n' "$server" "$server" "$server"
