# `make pipeline` and `make test` are the README's two commands. Both set up .venv first, from
# requirements.lock: the exact version of every package (`make lock` regenerates it).
# TORCH_SPEC defaults to the CPU wheel of the locked torch; on a GPU box take the CUDA build of
# the same release, e.g. `make setup TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>"`.
VENV ?= .venv
PYTHON ?= python3
TORCH_VERSION := 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
UV_VERSION := 0.13.8
LOCK := requirements.lock
BIN := $(VENV)/bin

.PHONY: setup lock pipeline test lint clean-runs

setup: $(VENV)/.installed

# pip installs uv and torch (pip finds a local CPU wheel where a machine has one); uv installs the
# rest from the lock, about 3x faster than pip (docs/pipeline.md, "Reproducibility"). Compiled
# bytecode, as pip would: where Python may not write it (PYTHONDONTWRITEBYTECODE), every stage
# would recompile thousands of modules on import.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/python -m pip install -q -c $(LOCK) $(TORCH_SPEC)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(LOCK) -e ".[dev]"
	touch $@

# After changing pyproject's dependencies: `make lock`, then commit requirements.lock. Pins that
# still fit are kept; `make lock UPGRADE=--upgrade` takes the newest releases the ranges allow.
# Universal: one file for every platform and Python >= 3.10 (a pin may differ per Python).
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==$(UV_VERSION); }
	printf 'torch==$(TORCH_VERSION)\n' | $(BIN)/uv pip compile - pyproject.toml --extra dev \
		--universal --python-version 3.10 --quiet $(UPGRADE) -o $(LOCK)

# `pkd repro --jobs 2`: `dvc repro`, two independent stages at a time, one thread each
# (0.80x the wall time of a serial `dvc repro` on 2 cores; benchmarks/README.md).
pipeline: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pkd repro --jobs 2

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check pkd stages tests benchmarks
