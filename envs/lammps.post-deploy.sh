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
# The torch build: TORCH_SPEC (pip arguments, as for `make install`) in the environment of the
# snakemake that creates the env replaces envs/*.yaml's PyPI torch, e.g.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" \
#     snakemake --use-conda --conda-create-envs-only ...
# Snakemake reuses an env it built before whatever TORCH_SPEC says: to change it, delete the
# env (.snakemake/conda/<hash>*) and create it again. The spec is kept in $CONDA_PREFIX/.torch-spec.
if [ -n "${TORCH_SPEC:-}" ]; then
  python -m pip uninstall --quiet -y torch
  # shellcheck disable=SC2086  # pip arguments, split on purpose
  python -m pip install --quiet $TORCH_SPEC
  if [ -n "${CONDA_PREFIX:-}" ]; then echo "$TORCH_SPEC" > "$CONDA_PREFIX/.torch-spec"; fi
fi
