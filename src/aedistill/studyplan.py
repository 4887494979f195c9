"""What a study runs: its validated config (``workflow/schemas/study.schema.yaml``) and one
run per reference × training subset, each with its complete config.

A run's config is its reference's config file, deep-merged with the study's ``overrides``
and then the reference's own ``overrides`` (:func:`deep_merge`), with the study's run name (:func:`aedistill.paths.study_run_name`) and
``dataset.split.train_subset``, then validated and completed with the schema's defaults
(:func:`aedistill.config.validate_config`); below the full set, its epoch counts are scaled
to the same optimiser steps (:func:`scale_epochs`, ``study.scale_epochs_with_subset``). The
Snakefile reads this module while it builds the DAG (``workflow/rules/study.smk``): no
torch, no pandas.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from aedistill.config import REPO_ROOT, read_config_file, validate_config, validate_with_schema
from aedistill.errors import UserInputError
from aedistill.paths import study_run_name, table

STUDY_SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "study.schema.yaml"
#: Keys the study sets in every run config; overrides may not set them.
STUDY_KEYS = ("run_name", "dataset.split.train_subset")


@dataclass(frozen=True)
class StudyRun:
    """One reference × training subset: its run name and complete, validated config."""

    name: str
    reference: str
    train_subset: float
    config: dict[str, Any]


@dataclass(frozen=True)
class Study:
    """A validated study: its name, runs (references in config order, then subsets
    ascending), the extra arguments of each run's nested Snakemake and its cores (None:
    all the calling Snakemake's, one run at a time)."""

    name: str
    runs: tuple[StudyRun, ...]
    snakemake_args: str
    cores_per_run: int | None = None

    def run(self, name: str) -> StudyRun:
        return next(r for r in self.runs if r.name == name)


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: ``base`` with ``overrides`` merged in. Mappings present in both are
    merged key by key (recursively); any other value of ``overrides`` (lists included)
    replaces the one of ``base``. Neither argument is modified."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has_key(config: Mapping[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def plan_study(config: dict[str, Any], where: str = "config") -> Study:
    """Validate a study config (defaults filled in place) and plan its runs.

    Raises :class:`UserInputError` naming the file and key: a study key against
    ``study.schema.yaml``, duplicate reference names, a key the study sets itself in
    ``overrides``, a reference config that is missing, or a merged run config that
    ``config.schema.yaml`` refuses.
    """
    validate_with_schema(config, _study_schema(), where)
    st = config["study"]
    names = [r["name"] for r in st["references"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserInputError(f"{where}: key 'study.references': reference names {dup} repeat")
    overrides = st["overrides"]
    scopes = [("study.overrides", overrides)] + [
        (f"study.references.{i}.overrides", r.get("overrides", {}))
        for i, r in enumerate(st["references"])
    ]
    for scope, values in scopes:
        for key in STUDY_KEYS:
            if _has_key(values, key):
                raise UserInputError(
                    f"{where}: key '{scope}.{key}': set by the study "
                    f"(run names from study.name, subsets from study.train_subsets)"
                )
    runs = []
    for i, ref in enumerate(st["references"]):
        try:
            base = read_config_file(ref["config"])
        except UserInputError as exc:
            raise UserInputError(f"{where}: key 'study.references.{i}.config': {exc}") from None
        for f in sorted(st["train_subsets"]):
            name = study_run_name(st["name"], ref["name"], f)
            merged = deep_merge(deep_merge(base, overrides), ref.get("overrides", {}))
            merged["run_name"] = name
            if f < 1:  # absent = 1: the full-data run's config is its reference's own
                merged = deep_merge(merged, {"dataset": {"split": {"train_subset": float(f)}}})
            own = f" + study.references.{i}.overrides" if ref.get("overrides") else ""
            run_where = f"{where}: run {name} ({ref['config']} + study.overrides{own})"
            complete = validate_config(merged, run_where)
            if f < 1 and st["scale_epochs_with_subset"]:
                complete = scale_epochs(complete, f)
            runs.append(StudyRun(name, ref["name"], float(f), complete))
    return Study(st["name"], tuple(runs), st["snakemake_args"], st.get("cores_per_run"))


def scale_epochs(config: Mapping[str, Any], train_subset: float) -> dict[str, Any]:
    """``config`` with its epoch counts (``training.max_epochs``, ``teacher_max_epochs``,
    ``lr_patience``, ``termination_patience``) divided by ``train_subset``, rounded up: an
    epoch on a fraction f of the training set has f times the optimiser steps, so the same
    patience and ceiling in *steps* need 1/f times the epochs. (Without it, at f = 0.25 on
    EMT, the students were undertrained: docs/study.md, parts 2 and 3.)"""
    out = copy.deepcopy(dict(config))
    tr = dict(out["training"])
    for key in ("max_epochs", "teacher_max_epochs", "lr_patience", "termination_patience"):
        if tr.get(key) is not None:
            tr[key] = int(math.ceil(round(tr[key] / float(train_subset), 9)))
    out["training"] = tr
    return out


def _study_schema() -> dict[str, Any]:
    return yaml.safe_load(STUDY_SCHEMA_PATH.read_text())


def exit_on_bad_study(
    config: dict[str, Any], configfiles: Sequence[str | os.PathLike[str]]
) -> Study:
    """The Snakefile's check of a study config, as :func:`aedistill.config.exit_on_bad_config`
    for a run: the plan, or ``error: <one line>`` on stderr and exit 1."""
    where = ", ".join(str(f) for f in configfiles) or "config"
    try:
        return plan_study(config, where)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def run_tables(run: StudyRun) -> dict[str, str]:
    """{name: path} of the tables a run's nested Snakemake builds for the study: models and
    histories, and rdf_errors where the run's LAMMPS stage is enabled."""
    names = ["models", "histories"] + (["rdf_errors"] if run.config["lammps"]["enabled"] else [])
    return {name: str(table(run.name, name)) for name in names}


def nested_snakemake_args(
    snakemake_args: str = "",
    use_conda: bool = False,
    conda_prefix: str | os.PathLike[str] | None = None,
    keep_going: bool = False,
) -> str:
    """Arguments of each run's nested Snakemake beyond targets, config file and cores: the
    study's ``snakemake_args`` and what the calling Snakemake was told (``--sdm conda`` and
    its ``--conda-prefix``, ``--keep-going``)."""
    args = [snakemake_args] if snakemake_args else []
    if use_conda:
        args.append("--sdm conda")
        if conda_prefix:
            args.append(f"--conda-prefix {os.fspath(conda_prefix)}")
    if keep_going:
        args.append("--keep-going")
    return " ".join(args)


def write_run_config(path: str | os.PathLike[str], config: Mapping[str, Any]) -> None:
    """Write one run's complete config as YAML (atomically), keys in schema order."""
    from aedistill.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(
            "# Written by the study (workflow/rules/study.smk): its reference's config + the\n"
            "# study's overrides, every default filled. Build this run alone with\n"
            f"#   snakemake --cores all --configfile {os.fspath(path)}\n"
            + yaml.safe_dump(dict(config), sort_keys=False)
        )
