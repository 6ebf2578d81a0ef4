# Every target creates (or reuses) .venv by itself: `make search` and `make test` are all a
# fresh clone needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIPELINE ?= pipelines/digits.yaml
PORT ?= 5000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup search test test-fast ui lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

search: $(STAMP)
	$(BIN)/tunetrack search $(PIPELINE)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

# The tests that train nothing (no `slow` marker): the quick loop while editing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow"

ui: $(STAMP)
	$(BIN)/tunetrack ui --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
