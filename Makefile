# `make pipeline` and `make test` are the README's two commands. Both set up
# .venv first. TORCH_SPEC defaults to the CPU wheel; on a GPU box use e.g.
# `make setup TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"`
# or install torch yourself before `make setup`.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup pipeline test lint clean-runs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# `pkd repro --jobs 2`: `dvc repro`, two independent stages at a time, one thread each
# (0.80x the wall time of a serial `dvc repro` on 2 cores; benchmarks/README.md).
pipeline: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pkd repro --jobs 2

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check pkd stages tests benchmarks
