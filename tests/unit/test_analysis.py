"""Pareto fronts, hypervolumes, paired statistics and the Born-Again table on hand-made
tables whose answers are worked out here by hand (independently of scipy where possible)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aedistill import analysis
from aedistill.config import load_config
from aedistill.errors import UserInputError


# --------------------------------------------------------------------------- Pareto
def test_pareto_mask_known_front():
    #        a    b    c    d    e (dup of b)  f (NaN)
    x = [1.0, 2.0, 3.0, 2.5, 2.0, np.nan]
    y = [5.0, 3.0, 1.0, 4.0, 3.0, 0.1]
    # d (2.5, 4) is dominated by b (2, 3); b and its duplicate e both stay; NaN never on it
    assert analysis.pareto_mask(x, y).tolist() == [True, True, True, False, True, False]


def test_pareto_mask_weak_domination_and_single_point():
    # (1, 2) is dominated by (1, 1): equal x, strictly smaller y
    assert analysis.pareto_mask([1, 1, 2], [2, 1, 0.5]).tolist() == [False, True, True]
    assert analysis.pareto_mask([3.0], [4.0]).tolist() == [True]
    assert analysis.pareto_mask([], []).tolist() == []


def test_hypervolume_of_hand_made_front():
    # front (1,3), (2,2), (3,1) with ref (4,4): staircase area by hand
    # strips: x∈[1,4], y∈[3,4] → 3; x∈[2,4], y∈[2,3] → 2; x∈[3,4], y∈[1,2] → 1; total 6
    assert analysis.hypervolume_2d([1, 2, 3], [3, 2, 1], (4, 4)) == pytest.approx(6.0)
    # a dominated point and a point outside the box change nothing
    assert analysis.hypervolume_2d([1, 2, 3, 3.5, 5], [3, 2, 1, 3.5, 0.5], (4, 4)) == pytest.approx(
        6.0
    )
    # order of points is irrelevant; single point = rectangle
    assert analysis.hypervolume_2d([3, 1, 2], [1, 3, 2], (4, 4)) == pytest.approx(6.0)
    assert analysis.hypervolume_2d([1], [1], (4, 5)) == pytest.approx(12.0)
    assert analysis.hypervolume_2d([], [], (1, 1)) == 0.0


def test_hypervolume_matches_monte_carlo_area():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, 12), rng.uniform(0, 1, 12)
    ref = (1.1, 1.2)
    u = rng.uniform(0, 1, (200_000, 2)) * ref
    dominated = ((u[:, None, 0] >= x) & (u[:, None, 1] >= y)).any(axis=1)
    mc = dominated.mean() * ref[0] * ref[1]
    assert analysis.hypervolume_2d(x, y, ref) == pytest.approx(mc, abs=0.01)


def _models(rows):
    cols = ["role", "arch", "seed", "n_weights", "test_e_rmse", "test_f_rmse"]
    return pd.DataFrame(rows, columns=cols)


def test_pareto_and_hypervolume_tables_per_role():
    # student: 3 archs all on the front; control: the middle arch is dominated by its smaller one
    rows = []
    for seed, eps in ((0, -0.001), (1, 0.001)):
        rows += [
            ("student", "L1-W8-S8", seed, 100, 0.01, 0.30 + eps),
            ("student", "L1-W16-S8", seed, 200, 0.01, 0.20 + eps),
            ("student", "L2-W32-S16", seed, 400, 0.01, 0.10 + eps),
            ("control", "L1-W8-S8", seed, 100, 0.01, 0.40 + eps),
            ("control", "L1-W16-S8", seed, 200, 0.01, 0.45 + eps),
            ("control", "L2-W32-S16", seed, 400, 0.01, 0.20 + eps),
        ]
    points = analysis.summarise_points(_models(rows))
    front = analysis.pareto_table(points, "n_weights", "test_f_rmse")
    on = {(r.role, r.arch): r.on_front for r in front.itertuples()}
    assert on[("control", "L1-W16-S8")] is False
    assert sum(on.values()) == 5
    # mean over seeds is the y value
    s = front[(front.role == "student") & (front.arch == "L1-W8-S8")]
    assert s["y_value"].item() == pytest.approx(0.30)
    hv = analysis.hypervolume_table(front).set_index("role")
    ref = (1.1 * 400, 1.1 * 0.45)
    assert hv.loc["student", "ref_x"] == pytest.approx(ref[0])
    assert hv.loc["control", "ref_y"] == pytest.approx(ref[1])
    # by hand: student staircase (100,.3),(200,.2),(400,.1)
    hv_s = (ref[0] - 100) * (ref[1] - 0.3) + (ref[0] - 200) * 0.1 + (ref[0] - 400) * 0.1
    hv_c = (ref[0] - 100) * (ref[1] - 0.4) + (ref[0] - 400) * 0.2
    assert hv.loc["student", "hypervolume"] == pytest.approx(hv_s)
    assert hv.loc["control", "hypervolume"] == pytest.approx(hv_c)
    assert hv.loc["student", "hypervolume_norm"] == pytest.approx(hv_s / (ref[0] * ref[1]))
    assert hv.loc["student", "hypervolume"] > hv.loc["control", "hypervolume"]


# --------------------------------------------------------------------------- paired stats
def test_paired_stats_hand_computed_t():
    d = [-0.02, -0.01, -0.03, 0.005]
    n = len(d)
    mean = sum(d) / n
    var = sum((v - mean) ** 2 for v in d) / (n - 1)
    t = mean / math.sqrt(var / n)
    st = analysis.paired_stats(d)
    assert st["n"] == 4
    assert st["mean_diff"] == pytest.approx(mean)
    assert st["std_diff"] == pytest.approx(math.sqrt(var))
    assert st["t_stat"] == pytest.approx(t)
    # two-sided p for t with 3 dof, closed form: F(t) for nu=3 is
    # 1/2 + (1/pi) [ t/(sqrt3 (1 + t^2/3)) + atan(t/sqrt3) ]
    a = abs(t) / math.sqrt(3)
    cdf = 0.5 + (a / (1 + a * a) + math.atan(a)) / math.pi
    assert st["p_ttest"] == pytest.approx(2 * (1 - cdf), rel=1e-9)
    # Wilcoxon, exact: |d| ranks 3 (0.02), 2 (0.01), 4 (0.03), 1 (0.005); W+ = 1, W- = 9;
    # statistic min = 1; P(W <= 1) under H0 with n=4: subsets with rank-sum <= 1: {}, {1} → 2/16
    assert st["wilcoxon_stat"] == pytest.approx(1.0)
    assert st["p_wilcoxon"] == pytest.approx(2 * 2 / 16)


def test_paired_stats_degenerate_cases():
    one = analysis.paired_stats([-0.1])
    assert one["n"] == 1 and math.isnan(one["std_diff"]) and math.isnan(one["p_ttest"])
    zero = analysis.paired_stats([0.0, 0.0, 0.0])
    assert zero["mean_diff"] == 0 and math.isnan(zero["p_ttest"]) and math.isnan(zero["p_wilcoxon"])
    assert analysis.paired_stats([])["n"] == 0


def test_paired_table_pairs_on_arch_and_seed():
    rows = [
        # arch A: student better in every seed; seed 3 of the control is missing → 3 pairs
        ("student", "A", 0, 10, 0.010, 0.10),
        ("student", "A", 1, 10, 0.011, 0.12),
        ("student", "A", 2, 10, 0.012, 0.11),
        ("student", "A", 3, 10, 0.012, 0.50),
        ("control", "A", 0, 10, 0.011, 0.13),
        ("control", "A", 1, 10, 0.012, 0.14),
        ("control", "A", 2, 10, 0.012, 0.16),
        # arch B: student worse
        ("student", "B", 0, 20, 0.010, 0.09),
        ("student", "B", 1, 20, 0.010, 0.08),
        ("control", "B", 0, 20, 0.010, 0.07),
        ("control", "B", 1, 20, 0.010, 0.07),
        ("teacher", "T", 0, 99, 0.001, 0.01),
    ]
    p = analysis.paired_table(_models(rows))
    assert set(zip(p.role, p.baseline, strict=True)) == {("student", "control")}
    fa = p[(p.arch == "A") & (p.metric == "test_f_rmse")].iloc[0]
    d = np.array([0.10 - 0.13, 0.12 - 0.14, 0.11 - 0.16])
    assert fa["n"] == 3
    assert fa["mean_diff"] == pytest.approx(d.mean())
    assert fa["std_diff"] == pytest.approx(d.std(ddof=1))
    assert fa["rel_diff"] == pytest.approx(d.mean() / np.mean([0.13, 0.14, 0.16]))
    assert bool(fa["role_wins"])
    fb = p[(p.arch == "B") & (p.metric == "test_f_rmse")].iloc[0]
    assert fb["mean_diff"] == pytest.approx(0.015) and not fb["role_wins"]
    pooled = p[(p.arch == "ALL") & (p.metric == "test_f_rmse")].iloc[0]
    assert pooled["n"] == 5
    assert pooled["mean_diff"] == pytest.approx((d.sum() + 0.02 + 0.01) / 5)
    # E: arch B all differences zero → t-test undefined
    eb = p[(p.arch == "B") & (p.metric == "test_e_rmse")].iloc[0]
    assert eb["mean_diff"] == 0 and math.isnan(eb["p_ttest"])

    wins = analysis.win_summary(p).set_index("metric")
    assert wins.loc["test_f_rmse", "n_arch"] == 2
    assert wins.loc["test_f_rmse", "frac_arch_win"] == pytest.approx(0.5)


def test_comparisons_cover_all_roles_present():
    roles = ["student", "control", "matched_control", "oracle", "student_wA300", "student_wA30"]
    assert analysis.comparisons(roles + ["teacher", "born_again"]) == [
        ("student", "control"),
        ("matched_control", "control"),
        ("oracle", "control"),
        ("student_wA30", "control"),
        ("student_wA300", "control"),
        ("student", "matched_control"),
        ("oracle", "student"),
    ]
    assert analysis.comparisons(["student", "teacher"]) == []
    # the augmented student against the control (no teacher data) and its plain student
    assert analysis.comparisons(["augmented", "control", "student"]) == [
        ("student", "control"),
        ("augmented", "control"),
        ("augmented", "student"),
    ]


def test_holm_against_a_hand_computed_example():
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005 × 4 = 0.02; 0.01 × 3 = 0.03;
    # 0.03 × 2 = 0.06; 0.04 × 1 = 0.04, raised to the running maximum 0.06 (step-down)
    adjusted = analysis.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # an undefined test (NaN) stays NaN and does not count: m = 2, 0.02 × 2 = 0.04, 0.04 × 1
    adjusted = analysis.holm([0.02, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    # capped at 1; one test is its own adjustment; ties keep their order
    np.testing.assert_allclose(analysis.holm([0.6, 0.7]), [1.0, 1.0])
    np.testing.assert_allclose(analysis.holm([0.2]), [0.2])
    np.testing.assert_allclose(analysis.holm([0.01, 0.01, 0.5]), [0.03, 0.03, 0.5])
    assert analysis.holm([]).shape == (0,)


def test_paired_table_with_given_pairs():
    rows = [
        ("control", "A", 0, 0.030), ("control", "A", 1, 0.032),
        ("oracle", "A", 0, 0.020), ("oracle", "A", 1, 0.024),
        ("matched_control", "A", 0, 0.025), ("matched_control", "A", 1, 0.025),
    ]  # fmt: skip
    models = pd.DataFrame(rows, columns=["role", "arch", "seed", "test_f_rmse"])
    models["n_weights"], models["test_e_rmse"] = 100, 0.01
    p = analysis.paired_table(models, ["test_f_rmse"], pairs=[("oracle", "matched_control")])
    assert set(zip(p["role"], p["baseline"], strict=True)) == {("oracle", "matched_control")}
    row = p[p["arch"] == "A"].iloc[0]
    assert row["mean_diff"] == pytest.approx(((0.020 - 0.025) + (0.024 - 0.025)) / 2)


# --------------------------------------------------------------------------- Born-Again
def test_born_again_table_mean_std():
    rows = [("teacher", "T", s, 99, e, f) for s, e, f in ((0, 0.38, 0.092), (1, 0.40, 0.094))]
    rows += [("born_again", "T", s, 99, e, f) for s, e, f in ((0, 0.36, 0.080), (1, 0.38, 0.086))]
    rows += [("student", "A", 0, 10, 1.0, 1.0)]
    ba = analysis.born_again_table(_models(rows)).set_index("role")
    assert list(ba.index) == ["teacher", "born_again"]
    assert ba.loc["born_again", "test_f_rmse_mean"] == pytest.approx(0.083)
    assert ba.loc["born_again", "test_f_rmse_std"] == pytest.approx(0.006 / math.sqrt(2))
    assert ba.loc["teacher", "test_e_rmse_mean"] == pytest.approx(0.39)
    assert ba.loc["born_again", "rel_f_vs_teacher"] == pytest.approx(0.083 / 0.093 - 1)
    assert ba.loc["teacher", "n_seeds"] == 2
    assert analysis.born_again_table(_models(rows[-1:])).empty


# --------------------------------------------------------------------------- driver
def test_run_analysis_writes_tables_without_optional_inputs(tmp_path):
    rows = []
    for seed in range(3):
        rows += [
            ("student", "A", seed, 10, 0.01, 0.10 + 0.01 * seed),
            ("control", "A", seed, 10, 0.01, 0.12 + 0.01 * seed + 0.001 * seed**2),
            ("teacher", "T", seed, 99, 0.005, 0.05),
        ]
    _models(rows).to_csv(tmp_path / "models.csv", index=False)
    (tmp_path / "tvt.json").write_text(
        '{"eps_rmse": 0.012, "per_member": [0.01, 0.014], "ok": true}'
    )
    out = {k: tmp_path / f"{k}.csv" for k in ("analysis", "paired", "born_again")}
    analysis.run_analysis(
        tmp_path / "models.csv",
        out["analysis"],
        out["paired"],
        out["born_again"],
        efficiency_csv=tmp_path / "absent.csv",
        rdf_csv=None,
        teacher_vs_true_json=tmp_path / "tvt.json",
    )
    a = pd.read_csv(out["analysis"])
    assert list(a.columns) == analysis.ANALYSIS_COLUMNS
    # only the n_weights axis has fronts; no time/memory/RDF rows
    assert set(a.loc[a.section == "pareto", "x"]) == {"n_weights"}
    assert set(a.loc[a.section == "pareto", "y"]) == {"test_f_rmse", "test_e_rmse"}
    inputs = a[a.section == "inputs"].set_index("metric")["value"]
    assert inputs.to_dict() == {"models.n_rows": 9, "efficiency.n_rows": 0, "rdf_errors.n_rows": 0}
    assert a.loc[a.section == "inputs", "arch"].isna().all()
    tvt = a[a.section == "teacher_vs_true"].set_index("metric")["value"]
    assert tvt.to_dict() == {"eps_rmse": 0.012, "per_member.0": 0.01, "per_member.1": 0.014}
    win = a[
        (a.section == "paired_summary") & (a.metric == "frac_arch_win") & (a.y == "test_f_rmse")
    ]
    assert win["value"].item() == 1.0
    p = pd.read_csv(out["paired"])
    # differences -0.02, -0.021, -0.024: t by hand
    d = np.array([-0.02, -0.021, -0.024])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    row = p[(p.arch == "A") & (p.metric == "test_f_rmse")].iloc[0]
    assert row["t_stat"] == pytest.approx(t)
    assert len(pd.read_csv(out["born_again"])) == 1


def test_missing_models_table_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="models"):
        analysis.read_models(tmp_path / "models.csv")
    (tmp_path / "models.csv").write_text("role,arch\nstudent,A\n")
    with pytest.raises(UserInputError, match="missing columns"):
        analysis.read_models(tmp_path / "models.csv")


def test_learning_curve_archs_default_and_check(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "grid:\n  architectures:\n"
        "    - {atom_layers: 2, width: 32, sensitivities: 16}\n"
        "    - {atom_layers: 1, width: 16, sensitivities: 8}\n"
    )
    config = load_config(cfg)
    assert analysis.learning_curve_archs(config) == ["L2-W32-S16"]
    config["figures"]["learning_curve_archs"] = ["L1-W16-S8"]
    assert analysis.learning_curve_archs(config) == ["L1-W16-S8"]
    config["figures"]["learning_curve_archs"] = ["L3-W3-S3"]
    with pytest.raises(UserInputError, match="figures.learning_curve_archs"):
        analysis.learning_curve_archs(config)


def test_rdf_reference_row_has_no_error_vs_itself_but_keeps_vs_experiment(tmp_path):
    p = tmp_path / "rdf.csv"
    p.write_text(
        "role,arch,seed,reference,rdf_error_A,rdf_error_vs_exp_A,first_peak_A\n"
        "teacher,T,0,teacher/T/seed0,0.0,0.31,2.7\n"
        "teacher,T,1,teacher/T/seed0,0.05,0.33,2.7\n"
        "student,A,0,teacher/T/seed0,0.2,0.4,2.7\n"
    )
    df = analysis.read_rdf_errors(p).set_index(["role", "seed"])
    assert np.isnan(df.loc[("teacher", 0), "rdf_error_A"])
    assert df.loc[("teacher", 0), "rdf_error_vs_exp_A"] == 0.31
    assert df.loc[("teacher", 1), "rdf_error_A"] == 0.05
    points = analysis.summarise_points(
        pd.DataFrame(
            dict(role=["teacher", "student"], arch=["T", "A"], seed=[0, 0], n_weights=[9, 1])
        ).assign(test_f_rmse=0.1, test_e_rmse=0.01),
        rdf=analysis.read_rdf_errors(p),
    ).set_index("role")
    assert points.loc["teacher", "rdf_error_vs_exp_A_mean"] == pytest.approx(0.32)
    assert points.loc["teacher", "rdf_error_A_mean"] == pytest.approx(0.05)
    empty = tmp_path / "empty.csv"
    empty.write_text("role,arch,seed,reference,rdf_error_A\n")
    assert analysis.read_rdf_errors(empty) is None
