"""Study across references: criterion and paired differences on hand-made tables."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest

from aedistill.study import study_tables, teacher_advantage
from aedistill.study_figures import run_study


def _models(teacher_f, control_f, student_f):
    rows = [
        dict(
            role="teacher",
            arch="L4-W128-S40",
            seed=s,
            n_weights=150000,
            test_f_rmse=f,
            test_e_rmse=0.01,
        )
        for s, f in enumerate(teacher_f)
    ]
    for arch, nw in (("L1-W8-S4", 300), ("L2-W16-S8", 1600)):
        for s in range(2):
            rows.append(
                dict(
                    role="control",
                    arch=arch,
                    seed=s,
                    n_weights=nw,
                    test_f_rmse=control_f[arch][s],
                    test_e_rmse=0.02,
                )
            )
            rows.append(
                dict(
                    role="student",
                    arch=arch,
                    seed=s,
                    n_weights=nw,
                    test_f_rmse=student_f[arch][s],
                    test_e_rmse=0.01,
                )
            )
    return pd.DataFrame(rows)


GOOD = _models(
    [0.010, 0.012],
    {"L1-W8-S4": [0.030, 0.026], "L2-W16-S8": [0.020, 0.022]},
    {"L1-W8-S4": [0.025, 0.023], "L2-W16-S8": [0.019, 0.020]},
)
BAD = _models(
    [0.027],
    {"L1-W8-S4": [0.020, 0.020], "L2-W16-S8": [0.018, 0.019]},
    {"L1-W8-S4": [0.031, 0.030], "L2-W16-S8": [0.025, 0.024]},
)


def test_teacher_advantage_criterion():
    good = teacher_advantage(GOOD)
    assert good["smallest_control_arch"] == "L1-W8-S4"
    assert good["teacher_f_rmse"] == pytest.approx(0.011)
    assert good["smallest_control_f_rmse"] == pytest.approx(0.028)
    assert good["teacher_over_smallest_control"] == pytest.approx(0.011 / 0.028)
    assert good["criterion_met"] is True
    bad = teacher_advantage(BAD)
    assert bad["teacher_over_smallest_control"] == pytest.approx(0.027 / 0.020)
    assert bad["criterion_met"] is False
    assert math.isnan(bad["teacher_f_rmse_std"])  # one member: no spread


def test_study_tables_and_outputs(tmp_path):
    dirs = []
    for name, df in (("emt", BAD), ("meam", GOOD)):
        d = tmp_path / name / "tables"
        d.mkdir(parents=True)
        df.to_csv(d / "models.csv", index=False)
        dirs.append(tmp_path / name)
    (tmp_path / "meam" / "data").mkdir()
    (tmp_path / "meam" / "data" / "summary.json").write_text('{"source": "meam"}')
    (tmp_path / "emt" / "data").mkdir()
    (tmp_path / "emt" / "data" / "summary.json").write_text('{"source": "ani-al"}')
    # the meam run has a LAMMPS stage: its reference teacher's liquid is reported
    (tmp_path / "meam" / "tables" / "rdf_errors.csv").write_text(
        "role,arch,seed,reference,rdf_error_A,rdf_error_vs_exp_A,first_peak_A,first_min_A,"
        "second_peak_A,first_peak_ok,min_r_A,fused\n"
        "control,L1-W8-S4,0,teacher/L4-W128-S40/seed0,0.2,0.5,2.8,3.9,5.3,True,2.2,False\n"
        "teacher,L4-W128-S40,0,teacher/L4-W128-S40/seed0,0.0,0.31,2.76,3.95,5.25,True,2.3,False\n"
    )
    tables = study_tables(dirs)
    crit, paired = tables["criterion"], tables["paired"]
    assert list(crit["reference"]) == ["ani-al", "meam"]  # the data source names it
    assert list(crit["run"]) == ["emt", "meam"] and list(crit["train_subset"]) == [1, 1]
    assert list(crit["criterion_met"]) == [False, True]
    liquid = crit.set_index("reference")
    assert liquid.loc["meam", "teacher_liquid_first_peak_A"] == 2.76
    assert liquid.loc["meam", "teacher_liquid_rdf_error_vs_exp_A"] == 0.31
    assert liquid.loc["meam", "teacher_liquid_second_peak_A"] == 5.25
    assert math.isnan(liquid.loc["ani-al", "teacher_liquid_first_peak_A"])
    row = paired[
        (paired.reference == "meam")
        & (paired.arch == "L1-W8-S4")
        & (paired.metric == "test_f_rmse")
        & (paired.role == "student")
    ].iloc[0]
    diffs = np.array([0.025 - 0.030, 0.023 - 0.026])
    assert row["mean_diff"] == pytest.approx(diffs.mean())
    assert row["std_diff"] == pytest.approx(np.sqrt(((diffs - diffs.mean()) ** 2).sum() / 1))
    run_study(dirs, tmp_path / "out")
    assert (tmp_path / "out" / "study.png").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "out" / "criterion.csv")) == 2
    # two runs of one source and subset are told apart by their directories; the subset
    # comes from split.json
    (tmp_path / "meam2").mkdir()
    shutil.copytree(tmp_path / "meam", tmp_path / "meam2", dirs_exist_ok=True)
    (tmp_path / "meam3" / "data").mkdir(parents=True)
    shutil.copytree(tmp_path / "meam" / "tables", tmp_path / "meam3" / "tables")
    (tmp_path / "meam3" / "data" / "summary.json").write_text('{"source": "meam"}')
    (tmp_path / "meam3" / "data" / "split.json").write_text('{"train_subset": 0.5}')
    crit = study_tables([tmp_path / d for d in ("meam", "meam2", "meam3")])["criterion"]
    assert list(crit["reference"]) == ["meam", "meam (meam2)", "meam"]
    assert list(crit["train_subset"]) == [1, 1, 0.5]
    verdict = pd.read_csv(tmp_path / "out" / "verdict.csv")
    assert set(verdict["role"]) == {"student", "control"} and set(verdict["train_subset"]) == {1}
    assert (tmp_path / "out" / "data_size.png").stat().st_size > 10_000


# --------------------------------------------------------------------------- the verdict
def _grid(ref_shift: float, n_seeds: int = 4) -> pd.DataFrame:
    """control, matched_control and student on two architectures, and a teacher.

    Paired Δ (student − control) per seed: +4, +5, +6, +5 meV/Å on the small architecture
    (every seed worse: a clear t-test), ±1 on the large one; student − matched_control is
    0 or +1 meV/Å (seeds alternate).
    """
    rows = [
        dict(role="teacher", arch="L2-W64-S20", seed=s, n_weights=20000, test_f_rmse=0.010,
             test_e_rmse=0.001, converged=True)
        for s in range(2)
    ]  # fmt: skip
    small = [0.004, 0.005, 0.006, 0.005]
    large = [0.001, -0.001, 0.001, -0.001]
    for s in range(n_seeds):
        for arch, nw, delta in (("L1-W8-S4", 300, small[s]), ("L2-W16-S8", 1600, large[s])):
            base = 0.020 + ref_shift + 0.001 * s
            for role, f, conv in (
                ("control", base, True),
                ("matched_control", base + delta - 0.001 * (s % 2), s != 0),
                ("student", base + delta, False),
            ):
                rows.append(
                    dict(role=role, arch=arch, seed=s, n_weights=nw, test_f_rmse=f,
                         test_e_rmse=0.01, converged=conv)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_verdict_paired_holm_and_converged_fraction(tmp_path):
    from scipy import stats

    from aedistill.analysis import holm
    from aedistill.study import RunInfo

    runs = []
    for subset in (0.5, 1.0):
        d = tmp_path / f"s-emt-f{100 * subset:g}"
        (d / "tables").mkdir(parents=True)
        _grid(0.01 * (1 - subset)).to_csv(d / "tables" / "models.csv", index=False)
        runs.append(RunInfo(d, "emt", subset))
    t = study_tables(runs)
    assert list(t["criterion"]["train_subset"]) == [0.5, 1.0]
    paired, verdict = t["paired"], t["verdict"]
    # every grid role against both baselines (matched_control against control only)
    comps = set(zip(paired["role"], paired["baseline"], strict=True))
    assert comps == {
        ("student", "control"),
        ("matched_control", "control"),
        ("student", "matched_control"),
    }
    # Holm within (reference, subset, role, baseline, metric): the two architectures
    fam = paired[
        (paired["train_subset"] == 1.0)
        & (paired["role"] == "student")
        & (paired["baseline"] == "control")
        & (paired["metric"] == "test_f_rmse")
    ].set_index("arch")
    p_small = stats.ttest_1samp([0.004, 0.005, 0.006, 0.005], 0).pvalue
    p_large = stats.ttest_1samp([0.001, -0.001, 0.001, -0.001], 0).pvalue
    assert fam.loc["L1-W8-S4", "p_ttest"] == pytest.approx(p_small)
    assert fam.loc["L1-W8-S4", "p_holm_ttest"] == pytest.approx(min(1, 2 * p_small))
    assert fam.loc["L2-W16-S8", "p_holm_ttest"] == pytest.approx(max(min(1, 2 * p_small), p_large))
    np.testing.assert_allclose(
        fam.loc[["L1-W8-S4", "L2-W16-S8"], "p_holm_wilcoxon"],
        holm(fam.loc[["L1-W8-S4", "L2-W16-S8"], "p_wilcoxon"]),
    )
    assert math.isnan(fam.loc["ALL", "p_holm_ttest"])  # the pooled row is not adjusted
    # the verdict: one row per reference × subset × grid role × arch, no teacher
    assert len(verdict) == 2 * 3 * 2 and "teacher" not in set(verdict["role"])
    assert list(verdict["role"].drop_duplicates()) == ["control", "matched_control", "student"]
    row = verdict[
        (verdict["train_subset"] == 1.0)
        & (verdict["role"] == "student")
        & (verdict["arch"] == "L1-W8-S4")
    ].iloc[0]
    assert row["n_seeds"] == 4 and row["run"] == "s-emt-f100"
    f = 0.020 + 0.001 * np.arange(4) + np.array([0.004, 0.005, 0.006, 0.005])
    assert row["test_f_rmse_mean"] == pytest.approx(f.mean())
    assert row["test_f_rmse_std"] == pytest.approx(f.std(ddof=1))
    assert row["delta_vs_control"] == pytest.approx(0.005)
    assert row["delta_vs_matched_control"] == pytest.approx(0.0005)
    assert row["p_holm_ttest_vs_control"] == pytest.approx(min(1, 2 * p_small))
    assert row["verdict_vs_control"] == "worse"
    assert row["p_ttest_vs_matched_control"] == pytest.approx(
        stats.ttest_1samp([0, 0.001, 0, 0.001], 0).pvalue
    )
    assert row["verdict_vs_matched_control"] == "no significant difference"
    # converged: no student; involved = 4 students + 4 controls + 3 of 4 matched controls
    assert row["converged_fraction"] == 0
    assert row["converged_fraction_involved"] == pytest.approx(7 / 12)
    control = verdict[(verdict["role"] == "control") & (verdict["arch"] == "L1-W8-S4")]
    assert control["verdict_vs_control"].fillna("").eq("").all()
    assert control["converged_fraction"].eq(1).all()  # compared with nothing: itself only
    assert control["converged_fraction_involved"].eq(1).all()


def test_study_figures(tmp_path):
    from aedistill.study import RunInfo, write_tables
    from aedistill.study_figures import draw_figure

    runs = []
    for subset in (0.25, 1.0):
        d = tmp_path / f"s-emt-f{100 * subset:g}"
        (d / "tables").mkdir(parents=True)
        models = _grid(0.0)
        models.to_csv(d / "tables" / "models.csv", index=False)
        hist = models[["role", "arch", "seed"]].merge(pd.DataFrame({"epoch": [1, 2, 3]}), "cross")
        hist["valid_f_rmse"] = 0.05 / hist["epoch"]
        hist.to_csv(d / "tables" / "histories.csv", index=False)
        runs.append(RunInfo(d, "emt", subset))
    out = {name: tmp_path / "study" / f"{name}.csv" for name in ("paired", "verdict")}
    write_tables(runs, out)
    for kind, table in (("paired_delta", "paired"), ("data_size", "verdict")):
        draw_figure(kind, [tmp_path / f"{kind}.png", tmp_path / f"{kind}.pdf"], out[table])
        assert (tmp_path / f"{kind}.png").stat().st_size > 10_000
        assert (tmp_path / f"{kind}.pdf").read_bytes()[:4] == b"%PDF"
    draw_figure("learning_curves", [tmp_path / "lc.png"], runs=runs)
    assert (tmp_path / "lc.png").stat().st_size > 10_000


def test_training_set_errors_in_paired_and_verdict(tmp_path):
    """H9: where models.csv has training-set errors, paired.csv compares them like the test
    errors and verdict.csv gets their means, paired Δ, Holm p and word per baseline."""
    from aedistill.study import RunInfo

    models = _grid(0.0)
    rng = np.random.default_rng(0)
    models["train_f_rmse"] = 0.5 * models["test_f_rmse"] + 1e-4 * rng.standard_normal(len(models))
    models["train_e_rmse"] = 0.001
    student = models["role"] == "student"
    models.loc[student, "train_e_rmse"] = 0.0005 + 1e-6 * np.arange(student.sum())
    d = tmp_path / "s-emt-f100"
    (d / "tables").mkdir(parents=True)
    models.to_csv(d / "tables" / "models.csv", index=False)
    t = study_tables([RunInfo(d, "emt", 1.0)])
    paired, verdict = t["paired"], t["verdict"]
    assert set(paired["metric"]) == {"test_f_rmse", "test_e_rmse", "train_f_rmse", "train_e_rmse"}
    row = verdict[(verdict["role"] == "student") & (verdict["arch"] == "L1-W8-S4")].iloc[0]
    pick = (models["arch"] == "L1-W8-S4") & (models["role"] == "student")
    assert row["train_f_rmse_mean"] == pytest.approx(models.loc[pick, "train_f_rmse"].mean())
    ctrl = (models["arch"] == "L1-W8-S4") & (models["role"] == "control")
    delta = models.loc[pick, "train_f_rmse"].to_numpy() - models.loc[ctrl, "train_f_rmse"]
    assert row["delta_train_f_rmse_vs_control"] == pytest.approx(delta.mean())
    de = models.loc[pick, "train_e_rmse"].to_numpy() - models.loc[ctrl, "train_e_rmse"]
    assert row["delta_train_e_rmse_vs_control"] == pytest.approx(de.mean())
    assert -0.0005 <= de.mean() < -0.00049
    assert row["verdict_train_e_rmse_vs_control"] == "better"  # every seed 0.5 meV lower
    p = paired[
        (paired["role"] == "student")
        & (paired["baseline"] == "control")
        & (paired["metric"] == "train_e_rmse")
        & (paired["arch"] == "L1-W8-S4")
    ]["p_holm_ttest"].iloc[0]
    assert row["p_holm_ttest_train_e_rmse_vs_control"] == pytest.approx(p) and p < 0.05
