"""g(r), RDF error and first peak against hand computations (no LAMMPS needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from aedistill.errors import UserInputError
from aedistill.lammps import check_rdf_geometry, lammps_box, lattice_constant_for_density
from aedistill.rdf import (
    NO_REFERENCE,
    RDF_TABLE_COLUMNS,
    experimental_gr,
    first_peak,
    liquid_fused,
    radial_distribution,
    rdf_error,
    rdf_error_vs_experiment,
    rdf_errors_table,
    rdf_features,
    write_rdf_errors,
)


def test_ideal_gas_gives_one():
    """Uniformly random points: g(r) = 1 in expectation, with the N(N-1)/V normalisation."""
    rng = np.random.default_rng(0)
    box = 20.0
    cell = np.eye(3) * box
    frames = [(rng.uniform(0, box, size=(800, 3)), cell) for _ in range(5)]
    r, g = radial_distribution(frames, r_max=8.0, n_bins=40)
    assert abs(g[r > 2].mean() - 1.0) < 0.01
    assert np.all(np.abs(g[r > 2] - 1.0) < 0.1)


def test_fcc_first_shell_position_and_coordination():
    """Perfect fcc: first shell at a/√2 holding 12 neighbours (∫ 4πr²ρ g dr = 12)."""
    a = 4.05
    atoms = bulk("Al", "fcc", a=a, cubic=True).repeat(4)
    n, vol = len(atoms), atoms.get_volume()
    r, g = radial_distribution([(atoms.positions, atoms.cell[:])], r_max=3.5, n_bins=70)
    dr = r[1] - r[0]
    assert abs(first_peak(r, g) - a / np.sqrt(2)) < dr
    coordination = np.sum(4 * np.pi * r**2 * (n - 1) / vol * g * dr)
    assert coordination == pytest.approx(12.0, rel=0.02)


def test_rdf_error_hand_values():
    r = np.linspace(0.05, 6.95, 70)
    g = 1 + np.sin(r)
    assert rdf_error(r, g, r, g) == 0.0
    assert rdf_error(r, g, r, g + 0.1) == pytest.approx(0.1 * 70 * 0.1)
    with pytest.raises(UserInputError, match="different bins"):
        rdf_error(r, g, r[:-1], g[:-1])
    with pytest.raises(UserInputError, match="different bins"):
        rdf_error(r, g, r + 0.01, g)


def test_first_peak_is_refined_between_bins():
    r = np.linspace(0.025, 6.975, 140)
    g = 1 + 2 * np.exp(-((r - 2.83) ** 2) / 0.02)
    assert first_peak(r, g) == pytest.approx(2.83, abs=0.005)


def test_rmax_beyond_half_box_is_refused():
    cell = np.eye(3) * 10.0
    with pytest.raises(UserInputError, match="half the cell"):
        radial_distribution([(np.array([[0.0, 0, 0], [1, 1, 1]]), cell)], 5.5, 10)
    settings = {"density": 2.375, "supercell": 3, "rdf_rmax": 7.0}
    with pytest.raises(UserInputError, match="lammps.rdf_rmax"):
        check_rdf_geometry(settings)
    assert check_rdf_geometry({**settings, "supercell": 4}) > 14.0


def test_lattice_constant_for_density():
    # solid Al: 2.70 g/cm³ ↔ a = 4.05 Å (4 × 26.98 g/mol / N_A / a³)
    assert lattice_constant_for_density(2.699) == pytest.approx(4.05, abs=0.002)


def test_lammps_box_is_a_rotation_to_lower_triangular():
    rng = np.random.default_rng(3)
    cell = np.diag([5.0, 6.0, 7.0]) + rng.normal(0, 1.0, (3, 3))
    lcell, rot = lammps_box(cell)
    assert np.allclose(rot @ rot.T, np.eye(3))
    assert np.allclose(lcell, cell @ rot)
    assert np.allclose(np.triu(lcell, 1), 0) and np.all(np.diag(lcell) > 0)
    assert np.allclose(lcell @ lcell.T, cell @ cell.T)  # same lengths and angles


def test_rdf_errors_table(tmp_path):
    r = np.linspace(0.05, 6.95, 70)
    g_ref = 1 + np.exp(-((r - 2.8) ** 2) / 0.05)
    g_ref[r < 2.0] = 0.0  # a liquid: no pairs closer than 2 Å (else it is fused)
    paths = {}
    for name, shift in [("ref", 0.0), ("other", 0.2)]:
        p = tmp_path / f"{name}.csv"
        pd.DataFrame({"r_A": r, "g": g_ref + shift}).to_csv(p, index=False)
        paths[name] = p
    entries = [
        ("teacher", "L4-W128-S40", 0, paths["ref"]),
        ("student", "L1-W8-S4", 1, paths["other"]),
    ]
    table = rdf_errors_table(entries, [("teacher", "L4-W128-S40", 0)])
    assert list(table.columns) == RDF_TABLE_COLUMNS
    assert table["rdf_error_vs_exp_A"].notna().all()
    by_role = table.set_index("role")
    assert by_role.loc["teacher", "rdf_error_A"] == 0.0
    assert by_role.loc["student", "rdf_error_A"] == pytest.approx(0.2 * 6.9 + 0.2 * 0.1)
    assert by_role.loc["student", "first_peak_A"] == pytest.approx(2.8, abs=0.01)
    assert set(table["reference"]) == {"teacher/L4-W128-S40/seed0"}
    assert table["first_peak_ok"].all()
    with pytest.raises(UserInputError, match="reference"):
        rdf_errors_table(entries, [("teacher", "L4-W128-S40", 3)])


def test_reference_with_an_unphysical_first_peak_is_flagged(tmp_path, caplog):
    r = np.linspace(0.05, 6.95, 70)
    p = tmp_path / "ref.csv"
    g = np.where(r < 2.0, 0.0, 1 + np.exp(-((r - 3.4) ** 2) / 0.05))
    pd.DataFrame({"r_A": r, "g": g}).to_csv(p, index=False)
    with caplog.at_level("WARNING"):
        table = rdf_errors_table([("teacher", "T", 0, p)], [("teacher", "T", 0)])
    assert not table["first_peak_ok"].iloc[0]
    assert "first peak at 3.4" in caplog.text and "outside 2.7-2.9" in caplog.text


def test_fused_atom_pairs_are_flagged(tmp_path, caplog):
    # a liquid peak at 2.8 Å plus a few pairs at 0.3 Å: g there is huge (tiny shell volume)
    r = np.linspace(0.05, 6.95, 70)
    g = 1 + np.exp(-((r - 2.8) ** 2) / 0.05)
    g[r < 2.0] = 0.0
    ok = tmp_path / "ok.csv"
    pd.DataFrame({"r_A": r, "g": g}).to_csv(ok, index=False)
    g_bad = g.copy()
    g_bad[2] = 30.0  # r = 0.25 Å
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"r_A": r, "g": g_bad}).to_csv(bad, index=False)
    with caplog.at_level("WARNING"):
        table = rdf_errors_table(
            [("teacher", "T", 0, ok), ("student", "S", 0, bad)], [("teacher", "T", 0)]
        ).set_index("role")
    assert not table.loc["teacher", "fused"] and table.loc["teacher", "min_r_A"] > 2.0
    assert table.loc["student", "fused"] and table.loc["student", "min_r_A"] == pytest.approx(0.25)
    assert "student/S/seed0: atom pairs at 0.25" in caplog.text


def _liquid_csvs(tmp_path):
    """A liquid g(r) (peak at 2.8 Å, nothing below 2 Å), the same plus pairs at 0.25 Å
    (fused atoms) and the liquid shifted up by 0.2 (an error of 0.2 × 7 Å against it)."""
    r = np.linspace(0.05, 6.95, 70)
    g = 1 + np.exp(-((r - 2.8) ** 2) / 0.05)
    g[r < 2.0] = 0.0
    g_fused = g.copy()
    g_fused[2] = 30.0  # r = 0.25 Å
    out = {}
    for name, gg in (("ok", g), ("fused", g_fused), ("shifted", np.where(g > 0, g + 0.2, 0))):
        out[name] = tmp_path / f"{name}.csv"
        pd.DataFrame({"r_A": r, "g": gg}).to_csv(out[name], index=False)
    return out


TEACHERS = [("teacher", "T", 0), ("teacher", "T", 1), ("teacher", "T", 2)]


def test_a_fused_reference_is_flagged_and_not_used(tmp_path, caplog):
    """Teacher seed 0's liquid fused: seed 1 is the reference, seed 0 is named as skipped
    (and is an ordinary fused row measured against seed 1), seed 2 is never read."""
    liq = _liquid_csvs(tmp_path)
    entries = [
        ("teacher", "T", 0, liq["fused"]),
        ("teacher", "T", 1, liq["ok"]),
        ("student", "S", 0, liq["shifted"]),
    ]
    with caplog.at_level("WARNING"):
        table = rdf_errors_table(entries, TEACHERS).set_index(["role", "seed"])
    assert set(table["reference"]) == {"teacher/T/seed1"}
    assert set(table["skipped_references"]) == {"teacher/T/seed0 (0.25 Å)"}
    assert table.loc[("teacher", 0), "fused"] and not table.loc[("teacher", 1), "fused"]
    # errors against seed 1's liquid, not seed 0's: the student's +0.2 above 2 Å
    # (|Δg| = 0.2 on the 50 bins from 2.05 Å; 0.1 Å bins)
    assert table.loc[("student", 0), "rdf_error_A"] == pytest.approx(0.2 * 50 * 0.1)
    assert table.loc[("teacher", 1), "rdf_error_A"] == 0.0
    assert table.loc[("teacher", 0), "rdf_error_A"] == pytest.approx(30.0 * 0.1)
    assert "reference teacher/T/seed1: the liquid of teacher/T/seed0 (0.25 Å) fused atoms" in (
        caplog.text
    )


def test_an_unfused_first_member_stays_the_reference(tmp_path):
    liq = _liquid_csvs(tmp_path)
    entries = [("teacher", "T", 0, liq["ok"]), ("student", "S", 0, liq["fused"])]
    table = rdf_errors_table(entries, TEACHERS)
    assert set(table["reference"]) == {"teacher/T/seed0"}
    assert set(table["skipped_references"]) == {""}


def test_every_member_fused_leaves_only_the_experiment(tmp_path, caplog):
    liq = _liquid_csvs(tmp_path)
    entries = [(*t, liq["fused"]) for t in TEACHERS[:2]] + [("student", "S", 0, liq["ok"])]
    with caplog.at_level("WARNING"):
        table = rdf_errors_table(entries, TEACHERS[:2])
    assert set(table["reference"]) == {NO_REFERENCE}
    assert table["rdf_error_A"].isna().all()
    assert table["rdf_error_vs_exp_A"].notna().all()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "every teacher member's liquid fused" in errors[0].getMessage()
    assert "teacher/T/seed0 (0.25 Å); teacher/T/seed1 (0.25 Å)" in errors[0].getMessage()


def test_a_reached_candidate_without_its_liquid_is_an_error(tmp_path):
    liq = _liquid_csvs(tmp_path)
    with pytest.raises(UserInputError, match="teacher/T/seed1 has no rdf.csv.*seed0 fused"):
        rdf_errors_table([("teacher", "T", 0, liq["fused"])], TEACHERS)


def test_write_rdf_errors_joins_the_reference_candidates(tmp_path):
    """The workflow passes the RDF models and, separately, the candidates it ran (seed 0
    twice when it is both): one row per model, the fallback candidate included."""
    liq = _liquid_csvs(tmp_path)
    models = [("teacher", "T", 0), ("student", "S", 0)]
    out = tmp_path / "rdf_errors.csv"
    write_rdf_errors(
        models, [liq["fused"], liq["shifted"]], TEACHERS, [liq["fused"], liq["ok"]], out
    )
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(zip(table["role"], table["seed"], strict=True)) == [
        ("student", 0),
        ("teacher", 0),
        ("teacher", 1),
    ]
    assert set(table["reference"]) == {"teacher/T/seed1"}
    assert liquid_fused(liq["fused"]) and not liquid_fused(liq["ok"])


def test_experimental_curve_features_are_the_published_ones():
    """Liquid Al at 1198 K: first peak 2.75-2.80 Å, first minimum 3.90 Å, second peak 5.20 Å."""
    r, g = experimental_gr()
    assert r[0] == 0.0 and r[-1] == pytest.approx(10.0) and np.allclose(np.diff(r), 0.05)
    f = rdf_features(r, g)
    assert 2.75 <= f["first_peak_A"] <= 2.80
    assert f["first_min_A"] == pytest.approx(3.90, abs=0.03)
    assert f["second_peak_A"] == pytest.approx(5.20, abs=0.03)


def test_features_of_a_curve_without_a_second_shell_are_nan():
    r = np.linspace(0.025, 6.975, 140)
    g = np.exp(-((r - 2.8) ** 2) / 0.05)  # one peak, then flat zero: no turning points
    f = rdf_features(r, g)
    assert f["first_peak_A"] == pytest.approx(2.8, abs=0.01)
    assert np.isnan(f["first_min_A"]) and np.isnan(f["second_peak_A"])


def test_rdf_error_vs_experiment_hand_values():
    r = np.linspace(0.025, 6.975, 140)  # the model's bins (0.05 Å)
    r_exp, g_exp = experimental_gr()
    g = np.interp(r, r_exp, g_exp)
    assert rdf_error_vs_experiment(r, g) == pytest.approx(0.0, abs=1e-12)
    # shifted by 0.1 everywhere: ∫ |Δg| dr = 0.1 × 7 Å
    assert rdf_error_vs_experiment(r, g + 0.1) == pytest.approx(0.7)
    with pytest.raises(UserInputError, match="rdf_rmax"):
        rdf_error_vs_experiment(np.linspace(0.05, 12.0, 100), np.ones(100))


def test_no_error_vs_experiment_far_from_its_temperature(tmp_path, caplog):
    r = np.linspace(0.05, 6.95, 70)
    p = tmp_path / "ref.csv"
    pd.DataFrame({"r_A": r, "g": 1 + np.exp(-((r - 2.8) ** 2) / 0.05)}).to_csv(p, index=False)
    entries = [("teacher", "T", 0, p)]
    near = rdf_errors_table(entries, [("teacher", "T", 0)], temperature_K=1200.0)
    assert near["rdf_error_vs_exp_A"].iloc[0] > 0
    with caplog.at_level("WARNING"):
        far = rdf_errors_table(entries, [("teacher", "T", 0)], temperature_K=1500.0)
    assert np.isnan(far["rdf_error_vs_exp_A"].iloc[0])
    assert "no error vs the 1198 K experiment" in caplog.text


def test_sampling_floor_of_an_ideal_gas_shrinks_with_frames(tmp_path):
    """Uniform random positions: the exact g is 1, the even/odd floor estimates the measured
    ∫|g − 1| dr (same order) and falls about as 1/sqrt(frames)."""
    from aedistill.rdf import RdfAccumulator, read_sampling_floor

    rng = np.random.default_rng(0)
    cell = np.eye(3) * 12.0
    floors, errors = {}, {}
    for n_frames in (8, 128):
        acc = RdfAccumulator(5.0, 50)
        for _ in range(n_frames):
            acc.add(rng.uniform(0, 12.0, size=(100, 3)), cell)
        r, g = acc.result()
        floors[n_frames] = acc.sampling_floor()
        errors[n_frames] = rdf_error(r, g, r, np.ones_like(g))
        g_even, g_odd = acc.halves()
        np.testing.assert_allclose(0.5 * (g_even + g_odd), g)  # equal halves: their mean is g
        assert 0.3 < floors[n_frames] / errors[n_frames] < 3
        path = tmp_path / f"rdf{n_frames}.csv"
        pd.DataFrame({"r_A": r, "g": g, "g_even": g_even, "g_odd": g_odd}).to_csv(path)
        assert read_sampling_floor(path) == pytest.approx(floors[n_frames])
    assert 2 < floors[8] / floors[128] < 8  # sqrt(16) = 4
    old = tmp_path / "old.csv"
    pd.DataFrame({"r_A": r, "g": g}).to_csv(old)
    assert np.isnan(read_sampling_floor(old))
