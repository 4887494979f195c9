"""The paper-protocol tables (docs/study.md part 4) on hand-made runs: the energy term's share
of the validation error, and the leak contrast with its set-up check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aedistill.protocol import energy_share, leak_contrast, protocol_tables

ARCHS = ("L1-W8-S4", "L2-W16-S8")


def _models(student_gap, control_shift=0.0):
    """control, matched_control and student per arch × 4 seeds; student − matched_control
    test F-RMSE = ``student_gap[arch][seed]``."""
    rows = []
    for arch in ARCHS:
        for s in range(4):
            base = 0.02 + 0.001 * s
            for role, f in (
                ("control", base + 0.0005 + control_shift),
                ("matched_control", base + control_shift),
                ("student", base + control_shift + student_gap[arch][s]),
            ):
                rows.append(
                    dict(role=role, arch=arch, seed=s, n_weights=300, test_f_rmse=f,
                         test_e_rmse=0.002, best_epoch=2)
                )  # fmt: skip
    return pd.DataFrame(rows)


OWN = {"L1-W8-S4": [0.004, 0.005, 0.006, 0.005], "L2-W16-S8": [0.001, 0.0, 0.001, 0.0]}
LEAKY = {"L1-W8-S4": [0.001, 0.001, 0.003, 0.002], "L2-W16-S8": [0.001, 0.001, 0.0, 0.0]}


def test_leak_contrast_is_the_difference_of_paired_gaps():
    out = leak_contrast(_models(OWN), _models(LEAKY)).set_index(["metric", "arch"])
    row = out.loc[("test_f_rmse", "L1-W8-S4")]
    d = np.subtract(LEAKY["L1-W8-S4"], OWN["L1-W8-S4"])
    assert row["D_mean"] == pytest.approx(d.mean())
    assert row["p_ttest"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    d2 = np.subtract(LEAKY["L2-W16-S8"], OWN["L2-W16-S8"])
    p2 = stats.ttest_1samp(d2, 0).pvalue
    # Holm over the two architectures: the smaller p doubled, the larger at least that
    p1 = row["p_ttest"]
    lo, hi = sorted([p1, p2])
    expected = min(1, 2 * lo) if p1 == lo else max(min(1, 2 * lo), hi)
    assert row["p_holm_ttest"] == pytest.approx(expected)
    # the controls are the same models in both runs: the set-up check reads 0
    assert out["max_abs_control_diff"].eq(0).all()
    # energies equal in both: D = 0 on every seed
    assert out.loc[("test_e_rmse", "L1-W8-S4"), "D_mean"] == 0


def test_leak_contrast_flags_controls_that_differ():
    out = leak_contrast(_models(OWN), _models(LEAKY, control_shift=1e-4))
    f = out[out["metric"] == "test_f_rmse"]
    assert f["max_abs_control_diff"].to_numpy() == pytest.approx([1e-4, 1e-4])
    # the shift cancels in the paired gaps: D is unchanged
    same = leak_contrast(_models(OWN), _models(LEAKY))
    np.testing.assert_allclose(f["D_mean"], same[same["metric"] == "test_f_rmse"]["D_mean"])


def test_energy_share_at_the_best_epoch():
    models = pd.DataFrame(
        [dict(role="control", arch="L1-W8-S4", seed=s, best_epoch=2) for s in range(2)]
        + [dict(role="student", arch="L1-W8-S4", seed=0, best_epoch=1)]
    )
    rows = []
    for role, seed, w_a in (("control", 0, 0.0), ("control", 1, 0.0), ("student", 0, 100.0)):
        for epoch in (1, 2):
            rows.append(
                dict(role=role, arch="L1-W8-S4", seed=seed, epoch=epoch, w_E=1.0,
                     w_F=10.0 if w_a == 0 else 30.0, w_A=w_a, valid_e_rmse=0.1 * epoch,
                     valid_f_rmse=0.02 * (seed + 1), valid_eps_rmse=np.nan if w_a == 0 else 0.01)
            )  # fmt: skip
    out = energy_share(pd.DataFrame(rows), models).set_index("role")
    shares = [0.2 / (0.2 + 10 * 0.02), 0.2 / (0.2 + 10 * 0.04)]
    assert out.loc["control", "energy_share_mean"] == pytest.approx(np.mean(shares))
    assert out.loc["control", "n"] == 2
    assert out.loc["student", "energy_share_mean"] == pytest.approx(0.1 / (0.1 + 0.6 + 1.0))


def test_protocol_tables_pair_each_leaky_run_with_its_own_split_run(tmp_path):
    runs = {}
    for ref, gap in (("emt-total", OWN), ("emt-total-leaky", LEAKY), ("meam-total-leaky", OWN)):
        d = tmp_path / ref
        (d / "tables").mkdir(parents=True)
        m = _models(gap)
        m.to_csv(d / "tables" / "models.csv", index=False)
        h = m[["role", "arch", "seed"]].assign(
            epoch=2, w_E=1.0, w_F=10.0, w_A=0.0, valid_e_rmse=0.01, valid_f_rmse=0.02,
            valid_eps_rmse=np.nan,
        )  # fmt: skip
        h.to_csv(d / "tables" / "histories.csv", index=False)
        runs[ref] = d
    runs["ani-al-model-total"] = tmp_path / "not-finished"
    t = protocol_tables(runs)
    assert set(t["energy_share"]["reference"]) == {
        "emt-total",
        "emt-total-leaky",
        "meam-total-leaky",
    }
    assert set(t["leak"]["reference"]) == {"emt-total"}  # meam has no own-split run
