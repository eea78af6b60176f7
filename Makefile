# `make run`: a hub on http://localhost:8080 with SQLite, the web chat and the built-in bot.
# `make test`: lint, then the whole suite (installs the test extras first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/chancenter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/chancenter
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/chancenter
	$(BIN)/chancenter serve

test: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(VENV)/.test-deps
	$(BIN)/python bench/ingest.py --json
	$(BIN)/python bench/webhooks.py --json
	$(BIN)/python bench/e2e.py --json
	$(BIN)/python bench/outbound.py --json
	$(BIN)/python bench/websockets.py --json
	$(BIN)/python bench/views.py --json
	$(BIN)/python bench/automations.py --json
	$(BIN)/python bench/broadcasts.py --json
	$(BIN)/python bench/webhooks_out.py --json
	$(BIN)/python bench/dashboard.py --json

clean:
	rm -rf $(VENV) chancenter.db chancenter.db-wal chancenter.db-shm data
