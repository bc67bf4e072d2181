#!/usr/bin/env bash
# The main job on the embedded TimescaleDB: sample trading tables with weeks of rows, the dev stack
# applied with the real Pulumi engine, a no-change preview, and what the database now holds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
lifecycle=.venv/bin/lifecycle
step() { printf '\n==> %s\n' "$*"; }

step "embedded TimescaleDB (data in .lifecycle/db-data, port 5433)"
if ! dsn=$($lifecycle db dsn 2>/dev/null); then
    dsn=$($lifecycle db start --data .lifecycle/db-data --port 5433)
fi
echo "$dsn"

step "sample tables of a trading platform, 45 days of synthetic rows"
$lifecycle db exec sql/demo/trading_tables.sql --dsn "$dsn"

step "pulumi up --refresh (stack dev)"
bin/pulumi stack select dev 2>/dev/null || bin/pulumi stack init dev
bin/pulumi up --yes --refresh --stack dev

step "pulumi preview --expect-no-changes"
bin/pulumi preview --expect-no-changes --stack dev

step "lifecycle run: the due policies, executed and recorded (no TimescaleDB scheduler runs here)"
$lifecycle run --dsn "$dsn" --stack dev

step "what the database holds"
$lifecycle status --dsn "$dsn" --stack dev

printf '\nThe embedded TimescaleDB is still running at %s\nStop it with: .venv/bin/lifecycle db stop (or make db-stop)\n' "$dsn"
