# Two commands do everything on a fresh machine: `make demo` and `make test`.
# `make demo DB=native` runs the demo on a native PostgreSQL + TimescaleDB instead of the embedded one.
.PHONY: setup native demo test unit clean db-stop bench bench-ab bench-runner bench-archive
DB ?= embedded
# `make bench N="10 100" SERVERS=embedded REPEAT=1`: resource counts, servers, runs per preview (median).
# Not part of `make test`.
N ?= 10 100 400
SERVERS ?= embedded native
REPEAT ?= auto
ROWS ?= 2000000

setup:
	@bash scripts/setup.sh

# TimescaleDB for the native server: found installed, else built from the vendored release (root, cached).
native:
	@bash tools/timescaledb/setup.sh >/dev/null

demo: setup
	@LIFECYCLE_DB_SERVER=$(DB) bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

unit: setup
	@.venv/bin/python -m pytest -q tests -m "not integration and not e2e"

bench: setup
	@.venv/bin/python scripts/bench.py --n "$(N)" --servers "$(SERVERS)" --repeat "$(REPEAT)"

# Archive throughput next to a plain COPY of the same rows: `make bench-archive ROWS=2000000 SERVERS=native`.
bench-archive: setup
	@.venv/bin/python scripts/bench_archive.py --rows "$(ROWS)" --servers "$(SERVERS)"

# Another revision's product against this checkout's, taking turns: `make bench-ab BASE=main N=100 ROUNDS=3`.
bench-ab: setup
	@.venv/bin/python scripts/bench_ab.py --base "$(BASE)" --n "$(if $(filter command line,$(origin N)),$(N),100)" \
		--rounds "$(or $(ROUNDS),3)" --server "$(or $(SERVER),embedded)"

# `lifecycle run` on a large hypertable: `make bench-runner ARGS="--rows 1000000 --old"`.
bench-runner: setup
	@.venv/bin/python scripts/bench_runner.py $(ARGS)

db-stop:
	@.venv/bin/lifecycle db stop --server embedded
	@.venv/bin/lifecycle db stop --server native

clean: db-stop
	rm -rf .lifecycle .venv lifecycle_resources/db/embedded/node_modules
