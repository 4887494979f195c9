#!/usr/bin/env bash
# Run by `snakemake --use-conda` inside the new environment, from the directory Snakemake
# runs in (this repository): install the `aedistill` package, editable so that code changes
# reach the jobs; its dependencies come from the environment file next to this script.
set -euo pipefail
grep -q '^name = "aedistill"' pyproject.toml 2>/dev/null || {
  echo "post-deploy: run snakemake from the aedistill repository (no pyproject.toml in $PWD)" >&2
  exit 1
}
python -m pip install --quiet --no-deps --no-build-isolation -e .
