"""A role lives in one place: a throw-away role added to :data:`aedistill.roles.ROLES` (and
nowhere else) is a valid grid role, has a plan and settings, is trained by the rules'
``students`` target, is compared with its baseline in the tables and drawn in the figures.
"""

from __future__ import annotations

import pandas as pd
import pytest
import seaborn as sns

from aedistill import analysis, plots, roles, settings, study
from aedistill.config import validate_config
from aedistill.errors import UserInputError
from tests.helpers import copy_workflow, job_stats, run_snakemake, synthetic_tables

#: The whole definition of the new role: a student learning the teacher's ε with half the
#: student's force weight and no w_A term, compared with the control.
TOY = """
ROLES["toy"] = RoleSpec(
    "toy", "student", "toy student", "X", 8, 8, 5, {"student": ("w_E", "w_F")},
    lambda loss, role: LossWeights(
        float(loss["student"]["w_E"]), 0.5 * float(loss["student"]["w_F"])
    ),
    baselines=("control",), labels="teacher",
)
"""
GRID_ROLES = ["student", "control", "toy"]


@pytest.fixture
def toy(monkeypatch):
    """The running interpreter's registry with TOY added (undone after the test)."""
    namespace = dict(vars(roles), ROLES=dict(roles.ROLES))
    exec(TOY, namespace)
    monkeypatch.setattr(roles, "ROLES", namespace["ROLES"])


def test_an_unknown_grid_role_is_refused_in_one_line():
    with pytest.raises(UserInputError, match=r"key 'grid.roles': 'toy' is not one of student"):
        validate_config({"grid": {"roles": GRID_ROLES}})


def test_the_new_role_has_a_plan_and_settings(toy):
    config = validate_config({"grid": {"roles": GRID_ROLES}})
    plan = roles.plan_role(config, "toy")
    assert plan.weights == roles.LossWeights(1.0, 15.0, 0.0) and plan.labels == "teacher"
    assert "toy" in roles.role_pattern().split("|")
    s = settings.train_settings(config, ["toy"])
    assert s["loss"]["student"] == {"w_E": 1.0, "w_F": 30.0}  # not w_A: it does not read it
    assert s["labels"]["target"] == "mean"


def test_the_new_role_is_in_the_tables_and_figures(toy, tmp_path):
    tables = synthetic_tables(seeds=(0, 1, 2), roles=("student", "control", "toy"))
    paired = analysis.paired_table(tables["models"])
    assert {("toy", "control")} <= set(zip(paired["role"], paired["baseline"], strict=True))
    assert ("toy", "student") not in set(zip(paired["role"], paired["baseline"], strict=True))
    assert study.study_comparisons(["control", "toy"]) == [("toy", "control")]
    assert plots.ordered_roles(["toy", "teacher", "control"]) == ["teacher", "control", "toy"]
    assert plots.role_style("toy") == (sns.color_palette("colorblind", 10)[8], "X", "toy student")
    paths = {}
    for name, df in tables.items():
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    legends = []
    draw = plots.save_figure

    def save(fig, png, pdf):
        legends.extend(t.get_text() for leg in fig.legends for t in leg.get_texts())
        draw(fig, png, pdf)

    plots.save_figure = save
    try:
        plots.make_figure(
            "fig2", tmp_path / "f.png", tmp_path / "f.pdf", paths["models"],
            efficiency_csv=paths["efficiency"],
        )  # fmt: skip
    finally:
        plots.save_figure = draw
    assert "toy student" in legends, legends
    assert pd.read_csv(paths["models"])["role"].eq("toy").any()


@pytest.mark.slow
def test_the_rules_train_the_new_role(repo, tmp_path):
    """The same definition appended to a workflow copy's roles.py: the `students` target
    trains it (a dry run)."""
    import yaml

    wd = copy_workflow(repo, tmp_path)
    with open(wd / "src" / "aedistill" / "roles.py", "a") as f:
        f.write(TOY)
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    cfg["grid"]["roles"] = GRID_ROLES
    (wd / "config" / "toy.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(wd, "students", "-n", "--configfile", "config/toy.yaml", timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    seeds = cfg["grid"]["seeds"]
    assert job_stats(r)["train_model"] == 2 * len(seeds)  # student and toy
    for s in seeds:
        assert f"results/test/models/toy/L1-W8-S4/seed{s}/metrics.json" in r.stdout
