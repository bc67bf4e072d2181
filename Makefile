# Two commands do everything on a fresh machine: `make demo` and `make test`.
.PHONY: setup demo test unit clean db-stop

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/test.sh

unit: setup
	@.venv/bin/python -m pytest -q tests -m "not integration and not e2e"

db-stop:
	@.venv/bin/lifecycle db stop

clean: db-stop
	rm -rf .lifecycle .venv lifecycle_resources/db/embedded/node_modules
