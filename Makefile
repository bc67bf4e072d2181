# Two commands do everything on a fresh machine: `make demo` and `make test`.
# `make demo DB=native` runs the demo on a native PostgreSQL + TimescaleDB instead of the embedded one.
.PHONY: setup native demo test unit clean db-stop
DB ?= embedded

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

db-stop:
	@.venv/bin/lifecycle db stop --server embedded
	@.venv/bin/lifecycle db stop --server native

clean: db-stop
	rm -rf .lifecycle .venv lifecycle_resources/db/embedded/node_modules
