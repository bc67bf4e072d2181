#!/usr/bin/env bash
# The whole suite: unit, integration (TSDB_DSN or the embedded TimescaleDB) and end-to-end (real pulumi).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
.venv/bin/python -m pytest -ra "$@"
code=$?
if [ $code -eq 5 ]; then
    echo "no test ran: that is a failure here" >&2
    exit 1
fi
exit $code
