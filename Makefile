# Two commands do everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
# Quiet TensorFlow's start-up banners; keep warnings and errors.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install repro test test-fast ui dag bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

repro: install
	dvc repro

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not integration"

ui: install
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000

dag: install
	dvc dag

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf .pytest_cache
