"""The augmented role through Snakemake on config/test.yaml: teacher MD, labels, its own
training job beside a stacked grid, and models.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from aedistill.data.canonical import load_dataset
from aedistill.data.split import load_split
from aedistill.evaluation import evaluate_model
from aedistill.labels import load_labels
from tests.helpers import copy_workflow, job_stats, run_snakemake

pytestmark = pytest.mark.slow

N_AUG = 6


def test_augmented_role_trains_on_teacher_configurations(repo, tmp_path):
    wd = copy_workflow(repo, tmp_path)
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    cfg["grid"] |= {"roles": ["student", "control", "augmented"], "seeds": [0]}
    cfg["training"] |= {"stack_grid": True}  # student + control stacked, augmented alone
    cfg["born_again"] |= {"enabled": False}
    cfg["augmentation"] = {
        "n_configs": N_AUG,
        "snapshots_per_trajectory": 3,
        "equilibration_steps": 5,
        "interval": 3,
    }
    (wd / "config" / "aug.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/test/tables/models.csv"
    r = run_snakemake(wd, target, "-n", "--configfile", "config/aug.yaml", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    stats = job_stats(r)
    assert stats["augment"] == 1 and stats["train_model"] == 1, stats
    assert stats["train_grid_stack"] == 1, stats
    r = run_snakemake(wd, target, "--cores", "1", "--configfile", "config/aug.yaml", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]

    res = wd / "results" / "test"
    models = pd.read_csv(res / "tables" / "models.csv").set_index("role")
    aug, control = models.loc["augmented"], models.loc["control"]
    assert aug["n_train"] == control["n_train"] + N_AUG
    assert aug["n_test"] == control["n_test"] and aug["stack_size"] == 1
    assert control["stack_size"] == 2  # the student and control stack leaves it out
    # its test metrics are the control's test configurations: evaluated again from the
    # dataset and split every other model uses
    ds = load_dataset(res / "data" / "dataset.h5")
    split = load_split(res / "data" / "split.json")
    direct = evaluate_model(res / "models/augmented/L1-W8-S4/seed0/model.pt", ds, split.test)
    assert aug["test_f_rmse"] == pytest.approx(direct["test_f_rmse"], rel=1e-9)
    assert aug["test_e_rmse"] == pytest.approx(direct["test_e_rmse"], rel=1e-9)

    extra = load_dataset(res / "augment" / "dataset.h5")
    eps = load_labels(res / "augment" / "atom_energies.h5", extra)
    assert extra.n_conf == N_AUG and extra.source == "teacher-md"
    n_atoms = extra.n_atoms
    np.testing.assert_allclose(eps.sum(axis=1), extra.energy, atol=1e-4 * n_atoms.max())
    summary = json.loads((res / "augment" / "summary.json").read_text())
    assert summary["n_configs"] == N_AUG and summary["temperatures_K"] == [300.0, 1500.0]
    assert summary["n_abandoned_trajectories"] == 0
    for part in ("augmented", "train"):
        for spread in summary["spread"][part].values():
            assert 0 < spread["mean"] <= spread["max"] < np.inf
    log = (wd / "logs/test/models/augmented/L1-W8-S4/seed0/model.pt.log").read_text()
    n_train = int(control["n_train"]) + N_AUG
    assert f"{n_train} train / {len(split.valid)} valid / {len(split.test)} test" in log
