#!/usr/bin/env bash
# The whole suite: the unit tests once, then the integration and end-to-end (real pulumi) tests against
# both TimescaleDB servers at once: the embedded one (2.23 in Node.js) and a native PostgreSQL 15 +
# TimescaleDB 2.26. Each is reported on its own; either failing, or running no test, fails the run.
# With TSDB_DSN set, the integration and end-to-end tests run once, against that server.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[test] %s\n' "$*" >&2; }

# Debian's PostgreSQL (without TimescaleDB) is what the "extension missing" tests run against.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's PostgreSQL server for the tests without TimescaleDB"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    else
        say "PostgreSQL server binaries are missing: install the postgresql package (the tests"
        say "      of a database without TimescaleDB will fail until then)"
    fi
fi

if [ -n "${TSDB_DSN:-}" ]; then
    servers=(given)
else
    servers=(embedded native)
    # The native server needs TimescaleDB installed for PostgreSQL; this finds it or builds it (cached).
    bash tools/timescaledb/setup.sh >/dev/null || { say "native: TimescaleDB is not available (see above)"; exit 1; }
fi

py=.venv/bin/python
logs=.lifecycle/test-logs
mkdir -p "$logs"

# $1 = label, $2 = log: "label: N passed" from pytest's last line; non-zero when it failed or ran nothing.
verdict() {
    local summary passed
    summary=$(grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$2" | tail -n1 | sed -E 's/^=+ //; s/ =+$//')
    passed=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$summary")
    printf '%s: %s passed   (%s)\n' "$1" "${passed:-0}" "${summary:-no summary: see $2}"
    total_passed=$((total_passed + ${passed:-0}))
    total_failed=$((total_failed + $(sed -nE 's/.*\b([0-9]+) failed.*/\1/p' <<<"$summary" | grep . || echo 0)))
    [ "${passed:-0}" -gt 0 ] && ! grep -qE '\b[0-9]+ (failed|errors?)\b' <<<"$summary"
}

start=$(date +%s)
$py -m pytest -q -ra -p no:cacheprovider -m "not integration and not e2e" "$@" >"$logs/unit.log" 2>&1
cat "$logs/unit.log"

# Both servers at once: each pytest holds its own server; the pulumi runs dominate, on two cores.
pids=()
for server in "${servers[@]}"; do
    if [ "$server" = given ]; then
        env $py -m pytest -q -ra -p no:cacheprovider -m "integration or e2e" "$@" >"$logs/$server.log" 2>&1 &
    else
        LIFECYCLE_TEST_SERVER=$server $py -m pytest -q -ra -p no:cacheprovider -m "integration or e2e" "$@" \
            >"$logs/$server.log" 2>&1 &
    fi
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for server in "${servers[@]}"; do
    printf '\n======== %s server ========\n' "$server"
    cat "$logs/$server.log"
done

printf '\n======== summary (%s s) ========\n' "$(( $(date +%s) - start ))"
code=0
total_passed=0
total_failed=0
verdict unit "$logs/unit.log" || code=1
for server in "${servers[@]}"; do verdict "$server" "$logs/$server.log" || code=1; done
echo "$total_passed passed, $total_failed failed"
exit $code
