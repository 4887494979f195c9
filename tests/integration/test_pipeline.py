"""The whole chain on config/test.yaml, for real (the session's ``finished_run``), then the
HTML report. What an edit of the config reruns in that run: test_rerun.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_snakemake

pytestmark = pytest.mark.slow


def test_full_pipeline_and_report(finished_run):
    wd = finished_run
    res = wd / "results" / "test"
    models = pd.read_csv(res / "tables" / "models.csv")
    # 2 teachers, 1 Born-Again, student + control x 1 arch x 2 seeds
    assert sorted(models.groupby("role").size().items()) == [
        ("born_again", 1),
        ("control", 2),
        ("student", 2),
        ("teacher", 2),
    ]
    assert np.isfinite(models["test_f_rmse"]).all() and (models["n_weights"] > 0).all()
    # Born-Again students train the teachers' architecture, the grid roles a smaller one
    n_weights = models.groupby("role")["n_weights"].unique()
    assert len(n_weights["teacher"]) == 1 and list(n_weights["born_again"]) == list(
        n_weights["teacher"]
    )
    assert n_weights["student"].max() < n_weights["teacher"].min()
    check = pd.read_csv(res / "labels" / "labels_check.csv")
    n_conf = json.loads((res / "data" / "summary.json").read_text())["n_configurations"]
    assert len(check) == 2 * n_conf  # one row per (teacher member, configuration)
    assert (check["abs_diff"] <= check["tolerance"]).all()
    eff = pd.read_csv(res / "tables" / "efficiency.csv")
    assert (eff["time_per_step_per_atom_s"] > 0).all() and (eff["bytes_per_atom"] > 0).all()
    rdf = pd.read_csv(res / "tables" / "rdf_errors.csv")
    name = rdf["role"] + "/" + rdf["arch"] + "/seed" + rdf["seed"].astype(str)
    ref = rdf[name == rdf["reference"]]
    assert len(ref) == 1 and ref["role"].item() == "teacher"
    assert ref["rdf_error_A"].item() == 0.0  # the reference against itself
    # every other model's liquid differs from the reference's (LAMMPS seed 0 of each role)
    others = rdf.drop(ref.index)
    assert sorted(others["role"]) == ["born_again", "control", "student"]
    assert (np.isfinite(others["rdf_error_A"]) & (others["rdf_error_A"] > 0)).all()
    for name in ("fig2", "fig3", "fig4", "fig5"):
        assert (res / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (res / "figures" / f"{name}.pdf").stat().st_size > 1_000
    for table in ("analysis", "paired", "born_again"):
        assert len(pd.read_csv(res / "tables" / f"{table}.csv")) > 0
    r = run_snakemake(wd, "report", "--cores", "1", "--configfile", "config/test.yaml", timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    html = (res / "report.html").read_text(errors="ignore")
    assert "fig2" in html and len(html) > 100_000
