# Podium: `make run` starts the server on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check js bench services browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/podium serve $(ARGS)

check: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

# JavaScript (podium.js, the web app, test pages): eslint, tsc on podium.js and `node --test tests/web/`.
# Needs Node.js >= 20 and npm; without them this fails, never skips. node_modules
# also holds axe-core, which the browser tests inject into pages, so `test` runs this first.
NODE_CHECK := process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)

node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
	  || { echo "make: Node.js >= 20 with npm is needed for the JavaScript checks (https://nodejs.org/)" >&2; exit 1; }
	@node -e '$(NODE_CHECK)' \
	  || { echo "make: Node.js >= 20 is needed for the JavaScript checks, found $$(node --version)" >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

js: node_modules/.installed
	node_modules/.bin/eslint .
	node_modules/.bin/tsc -p tsconfig.json
	node --test --test-reporter=spec tests/web/

test: check js services browser
	$(BIN)/pytest -q

services:
	@scripts/ensure-services

browser:
	@scripts/ensure-debian-packages chromium=chromium

bench: $(VENV)/.test services
	@scripts/ensure-debian-packages janus=janus
	$(BIN)/python bench/permission_loop.py
	$(BIN)/python bench/sfu.py
	$(BIN)/python bench/audience.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis node_modules
