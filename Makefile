# Every target creates (or reuses) .venv by itself: `make search` and `make test` are all a
# fresh clone needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The second CI environment: the [jax] install, which has no TensorFlow.
JAX_VENV := .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed
PIPELINE ?= pipelines/digits.yaml
PORT ?= 5000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup search test test-jax test-fast ui lint bench bench-gpu clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tensorflow,test]'
	touch $(STAMP)

$(JAX_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 2; }
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(JAX_VENV)/bin/python -m pip install --quiet -e '.[jax,test]'
	touch $(JAX_STAMP)

search: $(STAMP)
	$(BIN)/tunetrack search $(PIPELINE)

test: $(STAMP) $(JAX_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=20
	$(MAKE) --no-print-directory test-jax

# The quick start (tests marked `core`) under KERAS_BACKEND=jax where TensorFlow is not installed.
test-jax: $(JAX_STAMP)
	@if $(JAX_VENV)/bin/python -c "import tensorflow" >/dev/null 2>&1; then echo "$(JAX_VENV) has TensorFlow: the [jax] install must not pull it in"; exit 1; fi
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu TUNETRACK_EXPECT_NO_TF=1 $(JAX_VENV)/bin/python -m pytest -n 2 --dist loadgroup -q -m core

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

# A CIFAR-sized search under jax on this machine's GPU beside the same on its CPU (with an
# NVIDIA GPU, jax's CUDA wheels go into .venv-jax first), into benchmarks/RESULTS-gpu.md.
bench-gpu: $(JAX_STAMP)
	@if command -v nvidia-smi >/dev/null 2>&1 && ! $(JAX_VENV)/bin/python -c "import jax, sys; sys.exit(all(d.platform == 'cpu' for d in jax.devices()))" 2>/dev/null; then $(JAX_VENV)/bin/python -m pip install --quiet 'jax[cuda12]'; fi
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m benchmarks --only gpu --output benchmarks/RESULTS-gpu.md

clean:
	rm -rf $(VENV) $(JAX_VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
