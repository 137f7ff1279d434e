# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRISM := node_modules/.bin/prism
# The suite runs in 3 processes: most slow tests wait on real child processes and servers
# (on a fresh clone of 2 CPUs, 3 workers took 5m45s, 4 took 6m37s).
PYTEST_WORKERS ?= 3

.PHONY: demo test lint typecheck check systemd-check unit venv clean chromium postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Pinned versions (constraints.txt). Two stamps, each re-run when the pins change: the
# runtime dependencies only (`make demo`, `make check`), and with the test extras
# (ruff, mypy, pytest, hypothesis...: `make test`, `make venv`).
RUNTIME := $(VENV)/.installed-runtime
TESTING := $(VENV)/.installed-test

$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(TESTING): $(RUNTIME) pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

$(PRISM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

venv: $(TESTING)

demo: $(RUNTIME)
	$(BIN)/account-watcher demo

lint: $(TESTING)
	$(BIN)/ruff check watcher tests bench
	$(BIN)/ruff format --check watcher tests bench

typecheck: $(TESTING)
	$(BIN)/mypy

check: $(RUNTIME)
	$(BIN)/account-watcher --config config.yaml.example check
	$(BIN)/account-watcher test rules/tests/*.yaml

# The unit's exposure score (systemd-analyze security, at most 1.1) and verify.
systemd-check: $(RUNTIME)
	sh systemd/check-unit.sh systemd/account-watcher.service $(BIN)/account-watcher

# The browser tests drive Debian's chromium (Playwright's own download cannot work here):
# installed when missing (CI runs as root with the package registries reachable).
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

# The PostgreSQL tests start their own throwaway server from Debian's binaries
# (tests/pgserver.py): the package is installed when initdb is missing.
postgresql:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }

unit: $(TESTING) $(PRISM) chromium postgresql
	PRISM_BIN=$(CURDIR)/$(PRISM) $(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck check systemd-check unit

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
