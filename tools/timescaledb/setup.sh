#!/usr/bin/env bash
# Finds or builds TimescaleDB for the native server, and prints PostgreSQL's bin directory (where
# initdb, pg_ctl and postgres are) on the last line of stdout. Everything else goes to stderr.
#
# Order: TimescaleDB $TSDB_VERSION already installed for the chosen PostgreSQL (what a user who
# installed it from a package manager has), then a build from the vendored release tarball, cached
# outside the checkout (keyed by version, tarball sha256 and PostgreSQL major), installed into
# PostgreSQL's own directories. Installing needs root (apt-get for the build tools, `make install`).
set -euo pipefail

TSDB_VERSION=2.26.0
TSDB_SHA256=ee481588e13270fd366aae1b4430be58942cb354883f3092f8e18aff95144264
PG_MAJOR=${LIFECYCLE_PG_MAJOR:-15}   # TimescaleDB 2.26 supports 15 (>= 15.10), 16, 17, 18
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
say() { printf '[timescaledb-setup] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

how_to_install="install TimescaleDB $TSDB_VERSION for PostgreSQL $PG_MAJOR from your package manager \
(Timescale's apt repository: apt-get install timescaledb-2-postgresql-$PG_MAJOR; Homebrew: brew install timescaledb), \
or run this script as root with the release tarball timescaledb-$TSDB_VERSION.tar.gz in ../shared/vendor \
(or at \$TIMESCALEDB_TARBALL) and Debian's postgresql-server-dev-$PG_MAJOR, cmake, gcc and make available"

pgbin=/usr/lib/postgresql/$PG_MAJOR/bin
installed() {
    # The server package alone is enough to run: the library and the extension's control/SQL files.
    [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/timescaledb-$TSDB_VERSION.so" ] \
        && [ -f "/usr/share/postgresql/$PG_MAJOR/extension/timescaledb--$TSDB_VERSION.sql" ] \
        && [ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ]
}

if installed; then
    say "TimescaleDB $TSDB_VERSION is installed for PostgreSQL $PG_MAJOR ($pgbin)"
    echo "$pgbin"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "TimescaleDB $TSDB_VERSION is not installed for PostgreSQL $PG_MAJOR and building it needs root: $how_to_install"

apt_install() { # installs the Debian packages named, running `apt-get update` once when one is unknown
    export DEBIAN_FRONTEND=noninteractive
    command -v apt-get >/dev/null 2>&1 || die "no apt-get to install $*: $how_to_install"
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        say "apt-get update (a package was not found)"
        apt-get update -qq >&2 || true
        apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed: $how_to_install"
    fi
}

needed=()
# postgresql-15 ships pg_config too; the server headers are what the dev package adds.
[ -f "/usr/include/postgresql/$PG_MAJOR/server/postgres.h" ] || needed+=("postgresql-server-dev-$PG_MAJOR")
[ -x "$pgbin/initdb" ] || needed+=("postgresql-$PG_MAJOR")
for tool in cmake gcc make; do command -v "$tool" >/dev/null 2>&1 || needed+=("$tool"); done
if [ ${#needed[@]} -gt 0 ]; then
    say "installing the build tools: ${needed[*]}"
    apt_install "${needed[@]}"
fi

tarball=${TIMESCALEDB_TARBALL:-}
if [ -z "$tarball" ]; then
    # The vendored source sits beside the checkout (../shared/vendor); a worktree or clone may be deeper.
    dir=$root
    while [ "$dir" != / ]; do
        dir=$(dirname "$dir")
        if [ -f "$dir/shared/vendor/timescaledb-$TSDB_VERSION.tar.gz" ]; then
            tarball=$dir/shared/vendor/timescaledb-$TSDB_VERSION.tar.gz
            break
        fi
    done
fi
[ -n "$tarball" ] && [ -f "$tarball" ] || die "timescaledb-$TSDB_VERSION.tar.gz not found next to the checkout: $how_to_install"
got=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$got" = "$TSDB_SHA256" ] || die "$tarball has sha256 $got, expected $TSDB_SHA256 (the $TSDB_VERSION release source)"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/timescale-lifecycle/timescaledb-$TSDB_VERSION-${TSDB_SHA256:0:12}-pg$PG_MAJOR
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9   # one build at a time (parallel test runs, CI beside a developer)
if installed; then echo "$pgbin"; exit 0; fi

src=$cache/timescaledb-$TSDB_VERSION
if [ ! -f "$cache/built" ]; then
    say "building TimescaleDB $TSDB_VERSION for PostgreSQL $PG_MAJOR in $cache (about a minute on 2 cores)"
    start=$(date +%s)
    rm -rf "$src"
    tar -xzf "$tarball" -C "$cache"
    (
        cd "$src"
        ./bootstrap -DPG_CONFIG="$pgbin/pg_config" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
            -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF -DCMAKE_BUILD_TYPE=Release >"$cache/build.log" 2>&1
        cd build
        make -j"$(nproc)" >>"$cache/build.log" 2>&1
    ) || { tail -n 30 "$cache/build.log" >&2; die "the build failed (log: $cache/build.log)"; }
    touch "$cache/built"
    say "built in $(( $(date +%s) - start )) s"
fi
say "installing TimescaleDB $TSDB_VERSION into PostgreSQL $PG_MAJOR's directories"
make -C "$src/build" install >>"$cache/build.log" 2>&1 || { tail -n 30 "$cache/build.log" >&2; die "make install failed (log: $cache/build.log)"; }
installed || die "make install ran but timescaledb-$TSDB_VERSION.so is not in /usr/lib/postgresql/$PG_MAJOR/lib"
echo "$pgbin"
