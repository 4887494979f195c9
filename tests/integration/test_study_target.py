"""The study target for real: a tiny 1-reference × 2-subset study (config/test.yaml-sized
data, 2 epochs, 1 architecture, 2 seeds, no LAMMPS or Born-Again), then the same study with
one more role, which must train only the new role's models and remake the tables."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import copy_workflow, job_stats, run_snakemake

pytestmark = pytest.mark.slow

SUBSETS = (0.5, 1.0)
RUNS = {f: f"tiny-emt-f{100 * f:g}" for f in SUBSETS}


def _write_study(wd, roles) -> None:
    ref = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    ref["born_again"] = {**ref["born_again"], "enabled": False}
    ref["lammps"] = {**ref["lammps"], "enabled": False}
    ref["teachers"] = {**ref["teachers"], "n_members": 1}
    (wd / "config" / "tiny-emt.yaml").write_text(yaml.safe_dump(ref, sort_keys=False))
    study = {
        "study": {
            "name": "tiny",
            "references": [{"name": "emt", "config": "config/tiny-emt.yaml"}],
            "train_subsets": list(SUBSETS),
            "overrides": {"grid": {"roles": roles, "seeds": [0, 1]}, "training": {"max_epochs": 2}},
        }
    }
    (wd / "config" / "tiny-study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def _study(wd, *args):
    # the targets go BEFORE --configfile (it takes several values)
    r = run_snakemake(wd, *args, "--configfile", "config/tiny-study.yaml", timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def _model_files(wd) -> dict[str, tuple[int, str]]:
    """model.pt of every model of the study's runs: (mtime in ns, sha256)."""
    return {
        str(p.relative_to(wd)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for run in RUNS.values()
        for p in sorted((wd / "results" / run / "models").glob("*/*/seed*/model.pt"))
    }


@pytest.fixture(scope="module")
def study(repo, tmp_path_factory):
    """The tiny study, built once: (working directory, model files after the first build)."""
    wd = copy_workflow(repo, tmp_path_factory.mktemp("study"))
    _write_study(wd, ["student", "control"])
    _study(wd, "study", "--cores", "1")
    return wd, _model_files(wd)


def test_study_builds_the_verdict_table(study):
    wd, models = study
    # per run: 1 teacher + (student, control) × 1 architecture × 2 seeds
    assert len(models) == 2 * 5
    res = wd / "results" / "tiny"
    verdict = pd.read_csv(res / "tables" / "verdict.csv")
    assert len(verdict) == len(SUBSETS) * 2  # subsets × roles × 1 architecture
    assert set(verdict["train_subset"]) == set(SUBSETS) and set(verdict["reference"]) == {"emt"}
    assert list(verdict["run"].drop_duplicates()) == [RUNS[f] for f in SUBSETS]
    student = verdict[verdict["role"] == "student"]
    assert (
        np.isfinite(student["delta_vs_control"]).all() and student["n_pairs_vs_control"].eq(2).all()
    )
    assert student["delta_vs_matched_control"].isna().all()  # no matched control yet
    assert student["converged_fraction_involved"].between(0, 1).all()
    # the paired Δ equals the difference of the two runs' own models, pair by pair
    for f, run in RUNS.items():
        m = pd.read_csv(wd / "results" / run / "tables" / "models.csv").set_index(["role", "seed"])
        diff = m.loc["student", "test_f_rmse"] - m.loc["control", "test_f_rmse"]
        row = student[student["train_subset"] == f].iloc[0]
        assert row["delta_vs_control"] == pytest.approx(diff.mean())
    paired = pd.read_csv(res / "tables" / "paired.csv")
    assert {"train_subset", "p_holm_ttest", "p_holm_wilcoxon"} <= set(paired.columns)
    # one architecture: Holm leaves each p-value as it is
    one = paired[paired["arch"] != "ALL"].dropna(subset=["p_ttest"])
    np.testing.assert_allclose(one["p_holm_ttest"], one["p_ttest"])
    criterion = pd.read_csv(res / "tables" / "criterion.csv")
    assert list(criterion["train_subset"]) == list(SUBSETS)
    for name in ("paired_delta", "data_size", "learning_curves"):
        assert (res / "figures" / f"{name}.png").stat().st_size > 10_000
    # each run trained on its subset: nested, with the same valid and test sets
    splits = {
        f: json.loads((wd / "results" / run / "data" / "split.json").read_text())
        for f, run in RUNS.items()
    }
    half, full = splits[0.5], splits[1.0]
    assert half["n_train_full"] == full["n_train_full"] == len(full["train"])
    assert len(half["train"]) == math.ceil(0.5 * len(full["train"]))
    assert set(half["train"]) < set(full["train"])
    assert (half["valid"], half["test"]) == (full["valid"], full["test"])
    # a run's config is complete and builds that run alone: nothing left to do
    config = yaml.safe_load((res / "configs" / f"{RUNS[0.5]}.yaml").read_text())
    assert config["run_name"] == RUNS[0.5] and config["dataset"]["split"]["train_subset"] == 0.5
    # epochs scaled to the same optimiser steps as the full run's 2 (study.scale_epochs_with_subset)
    assert config["training"]["max_epochs"] == 4 and config["grid"]["seeds"] == [0, 1]
    r = run_snakemake(wd, f"results/{RUNS[0.5]}/tables/models.csv", "-n", "--configfile",
                  f"results/tiny/configs/{RUNS[0.5]}.yaml")  # fmt: skip
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stdout[-3000:]
    # and the study itself is up to date
    r = _study(wd, "study", "-n")
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-3000:]
    # `aedistill study` on the run directories: the subsets from their split.json, the same Δ
    from aedistill.cli import main

    out = wd / "results" / "cli"
    assert (
        main(["study", *(str(wd / "results" / r) for r in RUNS.values()), "--out", str(out)]) == 0
    )
    cli = pd.read_csv(out / "verdict.csv")
    assert list(cli["train_subset"].drop_duplicates()) == list(SUBSETS)
    np.testing.assert_allclose(cli["delta_vs_control"], verdict["delta_vs_control"])
    assert (out / "study.png").exists() and (out / "learning_curves.png").exists()


def test_adding_a_role_trains_only_the_new_models(study):
    wd, before = study
    _write_study(wd, ["student", "control", "matched_control"])
    _study(wd, "study", "--cores", "1")
    after = _model_files(wd)
    # every existing model file untouched (content and mtime)
    assert {k: after[k] for k in before} == before
    new = sorted(set(after) - set(before))
    assert new == sorted(
        f"results/{run}/models/matched_control/L1-W8-S4/seed{s}/model.pt"
        for run in RUNS.values()
        for s in (0, 1)
    )
    # each nested Snakemake trained the two new models and remade its tables, nothing else
    for run in RUNS.values():
        stats = _job_stats_of_log((wd / "logs" / f"{run}.log").read_text())
        assert stats == {"train_model": 2, "summarize_models": 1, "total": 3}, (run, stats)
    verdict = pd.read_csv(wd / "results" / "tiny" / "tables" / "verdict.csv")
    assert set(verdict["role"]) == {"student", "control", "matched_control"}
    student = verdict[verdict["role"] == "student"]
    assert np.isfinite(student["delta_vs_matched_control"]).all()
    assert student["n_pairs_vs_matched_control"].eq(2).all()


def _job_stats_of_log(text: str) -> dict[str, int]:
    """The job counts of a Snakemake log (its "Job stats" block), total included."""
    stats = job_stats(subprocess.CompletedProcess([], 0, stdout=text, stderr=""))
    return stats | {"total": sum(stats.values())}


@pytest.mark.parametrize("cores_per_run", [None, 1])
def test_cores_per_run_reaches_the_nested_snakemakes(repo, tmp_path, cores_per_run):
    """study.cores_per_run: every nested Snakemake gets that many cores (runs side by side);
    absent, each is handed all the calling Snakemake's cores."""
    wd = copy_workflow(repo, tmp_path)
    _write_study(wd, ["student", "control"])
    if cores_per_run is not None:
        path = wd / "config" / "tiny-study.yaml"
        study = yaml.safe_load(path.read_text())
        study["study"]["cores_per_run"] = cores_per_run
        path.write_text(yaml.safe_dump(study, sort_keys=False))
    r = _study(wd, "study", "-n", "-p", "--cores", "2")
    nested = [ln for ln in (r.stdout + r.stderr).splitlines() if "-m snakemake" in ln]
    assert len(nested) == len(RUNS), r.stdout[-3000:]
    expected = f"--cores {cores_per_run or 2} "
    assert all(expected in ln for ln in nested), nested
