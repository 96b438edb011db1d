# Two commands do everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# CUDA=1: also TensorFlow's NVIDIA GPU libraries (requirements-cuda.txt; needs an NVIDIA driver).
# Without it the install is CPU-only.
CUDA ?=
REQUIREMENTS := requirements.txt $(if $(filter 1,$(CUDA)),requirements-cuda.txt)
STAMP := $(VENV)/.installed$(if $(filter 1,$(CUDA)),-cuda)
export PATH := $(abspath $(BIN)):$(PATH)
# Quiet TensorFlow's C++ log lines (start-up banners, runtime notices); Python errors still show.
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install repro test test-fast ui dag plots exps bench expect results demo studies studies-report clean

install: $(STAMP)

# A CUDA install also stamps the CPU-only one: it serves every target.
$(STAMP): $(REQUIREMENTS) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(sort $(STAMP) $(VENV)/.installed)

repro: install
	dvc repro

# The test files run on TEST_WORKERS processes (pytest-xdist; a file's tests stay together, so its
# module fixtures are built once).
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not integration"

# Prints the URL of the experiment's runs table, then serves the UI on it.
ui: install
	$(BIN)/python -m scripts.ui --port 5000

dag: install
	dvc dag

# The plots of dvc.yaml drawn into dvc_plots/index.html (DVC prints its file:// address), offline: .dvc/config
# gives DVC the page vendor/vega/dvc-plots.html, which carries Vega. PLOTS_ARGS="diff quick-demo" draws the
# workspace beside an experiment.
PLOTS_ARGS ?= show
plots: install
	dvc plots $(PLOTS_ARGS)

# The workspace and every DVC experiment: name, the params that differ, the headline metrics, at most
# EXPS_WIDTH characters a line (0: the whole width, paged; the 16 headline columns and one param take
# 215). EXPS_ARGS go to `dvc exp show`, e.g. EXPS_ARGS="--keep 'train\.epochs'" adds a column.
EXPS_WIDTH ?= 220
EXPS_ARGS ?=
exps: install
	python -m scripts.exps --width $(EXPS_WIDTH) $(EXPS_ARGS)

# PROJECT: a project whose whole pipeline was reproduced on the full data set (default: this one);
# the whole-pipeline benchmark and RESULTS.md are measured there.
PROJECT ?= .
bench: install
	$(BIN)/python -m benchmarks.run --project $(PROJECT)

# What this machine will take for params.yaml: measures it for about a minute, then prints each stage's
# predicted time. ARGS: overrides as `dvc exp run -S` takes them, e.g. ARGS="-S train.epochs=3".
ARGS ?=
expect: install
	$(BIN)/python -m benchmarks.expect $(ARGS)

results: install
	$(BIN)/python -m scripts.results --project $(PROJECT)

# The whole DAG on a small subset with few epochs, as a DVC experiment named quick-demo. It runs in a
# temporary copy (--temp): params.yaml and the workspace stay as they are; the results are the
# quick-demo experiment (`make exps`, the table it ends with) and its runs in MLflow.
# SOURCE: the dataset (default: the official release; e.g. SOURCE=../shared/data/cifar10-jpeg.tar.gz).
SOURCE ?= https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
demo: install
	dvc exp run --temp --name quick-demo --force \
	  -S 'download.source=$(SOURCE)' -S "download.checksum=''" \
	  -S download.train_per_class=300 -S download.test_per_class=100 \
	  -S train.epochs=3 -S train.model.batch_norm_momentum=0.9 \
	  -S transfer.backbone=efficientnet_lite0 -S transfer.weights=imagenet -S transfer.image_size=96 -S transfer.epochs=10
	python -m scripts.exps --width $(EXPS_WIDTH)

# The study's experiments (part 2 and part 3) on the data params.yaml names, one at a time; a rerun
# skips finished ones and resumes a stopped one. Then STUDIES.md from their MLflow records.
studies: install
	$(BIN)/python -m scripts.studies run

studies-report: install
	$(BIN)/python -m scripts.studies report

clean:
	rm -rf .pytest_cache
