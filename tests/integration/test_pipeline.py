"""The whole chain on config/test.yaml, for real, then the HTML report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.integration.test_data_stage import _copy_workflow, snakemake

pytestmark = pytest.mark.slow


def test_full_pipeline_and_report(repo, tmp_path):
    wd = _copy_workflow(repo, tmp_path)
    r = snakemake(wd, "--cores", "2", "--configfile", "config/test.yaml", timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
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
    # student and control of one seed differ only by the ε term: same weight count
    s, c = (models[(models.role == r) & (models.seed == 0)].iloc[0] for r in ("student", "control"))
    assert s["n_weights"] == c["n_weights"]
    check = pd.read_csv(res / "labels" / "labels_check.csv")
    n_conf = json.loads((res / "data" / "summary.json").read_text())["n_configurations"]
    assert len(check) == 2 * n_conf  # one row per (teacher member, configuration)
    assert (check["abs_diff"] <= check["tolerance"]).all()
    eff = pd.read_csv(res / "tables" / "efficiency.csv")
    assert (eff["time_per_step_per_atom_s"] > 0).all() and (eff["bytes_per_atom"] > 0).all()
    rdf = pd.read_csv(res / "tables" / "rdf_errors.csv")
    assert (rdf["rdf_error_A"] >= 0).all()
    for name in ("fig2", "fig3", "fig4", "fig5"):
        assert (res / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (res / "figures" / f"{name}.pdf").stat().st_size > 1_000
    for table in ("analysis", "paired", "born_again"):
        assert len(pd.read_csv(res / "tables" / f"{table}.csv")) > 0
    r = snakemake(wd, "report", "--cores", "1", "--configfile", "config/test.yaml", timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    html = (res / "report.html").read_text(errors="ignore")
    assert "fig2" in html and len(html) > 100_000
