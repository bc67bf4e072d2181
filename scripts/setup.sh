#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent and cached: the project's virtualenv, the embedded
# TimescaleDB's npm packages, and the Pulumi engine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[setup] %s\n' "$*" >&2; }
mkdir -p .lifecycle

for tool in python3 node npm; do
    command -v "$tool" >/dev/null 2>&1 || { say "missing $tool: install Python 3.11+ and Node.js 20 (apt-get install python3 python3-venv nodejs npm)"; exit 1; }
done

# 1. Python virtualenv (named in Pulumi.yaml), reinstalled when pyproject.toml changes.
stamp=.lifecycle/venv.sha
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
    say "creating .venv and installing the pinned Python dependencies"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$want" > $stamp
fi

# 2. The embedded TimescaleDB (npm packages pinned by the lockfile).
.venv/bin/python -c 'from lifecycle_resources.db.embedded.server import ensure_node_modules; ensure_node_modules()'

# 3. The Pulumi engine.
bindir=$(bash tools/pulumi/setup.sh | tail -n1)
echo "$bindir" > .lifecycle/pulumi-bin
say "pulumi: $("$bindir/pulumi" version) in $bindir"
