"""Study across references: criterion and paired differences on hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aedistill.study import run_study, study_tables, teacher_advantage


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
    crit, paired = study_tables(dirs)
    assert list(crit["reference"]) == ["ani-al (emt)", "meam"]  # the data source names it
    assert list(crit["criterion_met"]) == [False, True]
    liquid = crit.set_index("reference")
    assert liquid.loc["meam", "teacher_liquid_first_peak_A"] == 2.76
    assert liquid.loc["meam", "teacher_liquid_rdf_error_vs_exp_A"] == 0.31
    assert liquid.loc["meam", "teacher_liquid_second_peak_A"] == 5.25
    assert math.isnan(liquid.loc["ani-al (emt)", "teacher_liquid_first_peak_A"])
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
