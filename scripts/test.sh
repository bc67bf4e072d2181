#!/usr/bin/env bash
# The whole suite: unit, integration (TSDB_DSN or the embedded TimescaleDB) and end-to-end (real pulumi).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Debian's PostgreSQL (without TimescaleDB) is what the "extension missing" tests run against.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[test] installing Debian's PostgreSQL server for the tests without TimescaleDB" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    else
        echo "[test] PostgreSQL server binaries are missing: install the postgresql package (the tests" >&2
        echo "       of a database without TimescaleDB will fail until then)" >&2
    fi
fi

.venv/bin/python -m pytest -ra "$@"
code=$?
if [ $code -eq 5 ]; then
    echo "no test ran: that is a failure here" >&2
    exit 1
fi
exit $code
