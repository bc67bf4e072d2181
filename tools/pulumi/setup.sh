#!/usr/bin/env bash
# Finds or builds the Pulumi engine (CLI + Python language host) this project pins, and prints the
# directory that holds it on the last line of stdout. Everything else goes to stderr.
#
# Order: a suitable `pulumi` already on PATH (what real users have), then the cache outside the
# checkout (keyed by version and by the hash of this folder), then a build from the Go module proxy.
set -euo pipefail

PULUMI_VERSION=v3.274.1          # CLI; keep >= the Python SDK pinned in pyproject.toml
MIN_VERSION=3.272.0              # the Python SDK version
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf '[pulumi-setup] %s\n' "$*" >&2; }

version_ok() { # $1 = "v3.274.1" or "3.274.1"
    local v=${1#v}
    [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$v" | sort -V | head -n1)" = "$MIN_VERSION" ]
}

if [ "${LIFECYCLE_BUILD_PULUMI:-}" != "1" ] && command -v pulumi >/dev/null 2>&1 \
    && command -v pulumi-language-python >/dev/null 2>&1 \
    && command -v pulumi-resource-pulumi-python >/dev/null 2>&1; then
    found=$(pulumi version 2>/dev/null || true)
    if version_ok "$found"; then
        say "using pulumi $found from PATH ($(command -v pulumi))"
        dirname "$(command -v pulumi)"
        exit 0
    fi
    say "pulumi on PATH is $found, older than $MIN_VERSION: building $PULUMI_VERSION instead"
fi

command -v go >/dev/null 2>&1 || { say "Go is needed to build the Pulumi engine: install Go 1.26 (https://go.dev/dl) or put pulumi >= $MIN_VERSION on PATH"; exit 1; }

key=$(cat "$here/go.mod" "$here/go.sum" "$here/setup.sh" $(find "$here/cmd" -type f | sort) | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/timescale-lifecycle/pulumi-$PULUMI_VERSION-$key
bin=$cache/bin
if [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-language-python" ] && [ -x "$bin/pulumi-resource-pulumi-python" ] \
    && [ -x "$bin/pulumi-resource-pulumi-python-sdk" ] && [ -x "$bin/pulumi-language-python-exec" ]; then
    say "using cached pulumi $PULUMI_VERSION in $bin"
    echo "$bin"
    exit 0
fi

say "building pulumi $PULUMI_VERSION from the Go module proxy into $bin"
say "a cold build takes 10-30 minutes on 2 cores; later runs reuse the cache"
tmp=$cache/tmp.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
start=$(date +%s)

progress() { # counts the packages `go build -v` reports, one line per 25
    local n=0
    while IFS= read -r line; do
        n=$((n + 1))
        if [ $((n % 25)) -eq 0 ]; then say "  $1: $n packages compiled ($(( $(date +%s) - start ))s)"; fi
        case $line in *error*|*cannot*|*undefined*) printf '%s\n' "$line" >&2 ;; esac
    done
}

(cd "$here" && go mod download) >&2
(cd "$here" && go build -v -ldflags "$ldflags" -o "$tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi 2>&1) | progress pulumi
[ -x "$tmp/pulumi" ] || { say "building the pulumi CLI failed"; exit 1; }
(cd "$here" && go build -v -ldflags "$ldflags" -o "$tmp/pulumi-language-python" ./cmd/pulumi-language-python 2>&1) | progress language-host
[ -x "$tmp/pulumi-language-python" ] || { say "building the Python language host failed"; exit 1; }

sdk=$(cd "$here" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$tmp/pulumi-resource-pulumi-python-sdk"
install -m 755 "$here/cmd/pulumi-resource-pulumi-python/pulumi-resource-pulumi-python" "$tmp/"
install -m 755 "$sdk/python/cmd/pulumi-language-python-exec" "$tmp/"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
say "built pulumi $("$bin/pulumi" version) in $(( $(date +%s) - start ))s"
echo "$bin"
