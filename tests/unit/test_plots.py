"""Every figure is written as a non-empty PNG and PDF from small synthetic tables, also when
the efficiency, RDF or LAMMPS data are missing; the role styling is fixed and colour-blind safe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import seaborn as sns

from aedistill import plots
from tests.helpers import TEACHER, synthetic_tables


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    paths = {}
    for name, df in synthetic_tables().items():
        paths[name] = d / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    return paths


def _check(out, name):
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.stat().st_size > 5000 and pdf.stat().st_size > 2000


def _figure(out, name, models_csv, **tables):
    """Figure ``name`` into out/name.{png,pdf}, both files checked; returns its notes."""
    notes = plots.make_figure(name, out / f"{name}.png", out / f"{name}.pdf", models_csv, **tables)
    _check(out, name)
    return notes


@pytest.mark.parametrize("name", plots.FIGURES)
def test_figure_complete_tables(tables, tmp_path, name):
    notes = _figure(
        tmp_path,
        name,
        tables["models"],
        histories_csv=tables["histories"],
        efficiency_csv=tables["efficiency"],
        rdf_csv=tables["rdf_errors"],
        run="synthetic",
        learning_curve_archs=["L1-W8-S8", "L2-W32-S16"],
    )
    # complete tables: no note about missing data (fig5 has LAMMPS timings here)
    assert notes == []


@pytest.mark.parametrize("name", plots.FIGURES)
def test_figure_missing_optional_tables(tables, tmp_path, name):
    empty = tmp_path / "empty.csv"
    empty.write_text("role,arch,seed,rdf_error_A\n")
    notes = _figure(
        tmp_path,
        name,
        tables["models"],
        histories_csv=tmp_path / "absent.csv",
        efficiency_csv=None,
        rdf_csv=empty,
        run="synthetic",
    )
    assert notes, "missing data must be reported in the figure"


@pytest.mark.parametrize("name", plots.FIGURES)
def test_figures_with_the_augmented_role(tmp_path, name):
    """The augmented role is drawn like any grid role; like the pipeline's, its models have
    no LAMMPS liquid (only students and controls run one)."""
    t = synthetic_tables(roles=("student", "control", "augmented"), seeds=(0, 1))
    t["rdf_errors"] = t["rdf_errors"][t["rdf_errors"]["role"] != "augmented"]
    csv = {}
    for k, df in t.items():
        csv[k] = tmp_path / f"{k}.csv"
        df.to_csv(csv[k], index=False)
    notes = _figure(
        tmp_path,
        name,
        csv["models"],
        histories_csv=csv["histories"],
        efficiency_csv=csv["efficiency"],
        rdf_csv=csv["rdf_errors"],
        run="synthetic",
        learning_curve_archs=["L1-W8-S8"],
    )
    assert all("augmented" not in n for n in notes) or name == "fig3", notes


def test_efficiency_rows_only_for_some_roles(tables, tmp_path):
    eff = pd.read_csv(tables["efficiency"])
    eff = eff[eff["role"] == "student"].drop(columns="lammps_time_per_step_per_atom_s")
    eff.to_csv(tmp_path / "eff.csv", index=False)
    notes = _figure(tmp_path, "fig2", tables["models"], efficiency_csv=tmp_path / "eff.csv")
    assert any("control" in n for n in notes)
    notes5 = _figure(tmp_path, "fig5", tables["models"], efficiency_csv=tmp_path / "eff.csv")
    assert any("LAMMPS" in n for n in notes5)


def test_role_style_fixed_and_distinct():
    roles = ["student", "control", "matched_control", "oracle", "born_again", "teacher"]
    roles += ["augmented", "student_wA10", "student_wA300", "student_wA30"]
    styles = [plots.role_style(r, roles) for r in roles]
    assert len({(c, m) for c, m, _ in styles}) == len(roles)
    # fixed: independent of which other roles exist
    assert plots.role_style("student", ["student"]) == plots.role_style("student", roles)
    cb = sns.color_palette("colorblind")
    assert plots.role_style("student")[0] == cb[0] and plots.role_style("control")[0] == cb[1]
    # w_A variants are ordered by value, not by name
    c10, c30, c300 = (plots.role_style(f"student_wA{v}", roles)[0] for v in (10, 30, 300))
    assert plots._WA_COLOURS[:3] == [c10, c30, c300]
    assert plots.ordered_roles(roles)[-3:] == ["student_wA10", "student_wA30", "student_wA300"]


def test_fig3_marks_fused_liquids(tables, tmp_path):
    rdf = pd.read_csv(tables["rdf_errors"])
    for fused, noted in (((rdf["role"] == "student") & (rdf["seed"] == 0), True), (False, False)):
        rdf["fused"] = fused
        rdf.to_csv(tmp_path / "rdf.csv", index=False)
        notes = _figure(tmp_path, "fig3", tables["models"], rdf_csv=tmp_path / "rdf.csv")
        assert any("fused" in n for n in notes) == noted


def _teacher_rows(rdf: pd.DataFrame, fused_seeds, reference: str) -> pd.DataFrame:
    """``rdf`` with teacher seeds 0 and 1 added (``fused_seeds`` fused) and ``reference``."""
    arch = TEACHER[0]
    rows = [
        dict(role="teacher", arch=arch, seed=s, rdf_error_A=0.4, rdf_error_vs_exp_A=0.5,
             first_peak_A=2.75, fused=s in fused_seeds)
        for s in (0, 1)
    ]  # fmt: skip
    out = pd.concat([rdf.assign(fused=False), pd.DataFrame(rows)], ignore_index=True)
    out["reference"] = reference
    out["skipped_references"] = "; ".join(f"teacher/{arch}/seed{s} (0.37 Å)" for s in fused_seeds)
    if reference.endswith("seed1"):
        out.loc[(out["role"] == "teacher") & (out["seed"] == 1), "rdf_error_A"] = 0.0
    else:
        out["rdf_error_A"] = np.nan
    return out


def test_fig3_names_a_fused_reference_and_rings_the_teacher(tables, tmp_path):
    """Teacher seed 0 fused, seed 1 is the reference: the footer says so and the teacher's
    points in C and D are ringed."""
    rdf = _teacher_rows(pd.read_csv(tables["rdf_errors"]), [0], f"teacher/{TEACHER[0]}/seed1")
    rdf.to_csv(tmp_path / "rdf.csv", index=False)
    notes = _figure(tmp_path, "fig3", tables["models"], rdf_csv=tmp_path / "rdf.csv")
    assert f"C: reference teacher/{TEACHER[0]}/seed1; not used, liquid fused: " in notes[0]
    assert f"teacher/{TEACHER[0]}/seed0 (0.37 Å)" in notes[0]
    ringed = [n for n in notes if "red rings" in n]
    assert [n[:2] for n in ringed] == ["C:", "D:"] and all("teacher" in n for n in ringed)
    # with no fused member there is neither a reference note nor a ring
    rdf = _teacher_rows(pd.read_csv(tables["rdf_errors"]), [], f"teacher/{TEACHER[0]}/seed0")
    rdf.to_csv(tmp_path / "rdf.csv", index=False)
    notes = _figure(tmp_path, "fig3", tables["models"], rdf_csv=tmp_path / "rdf.csv")
    assert not any("reference" in n or "fused" in n for n in notes), notes


def test_fig3_without_a_teacher_reference(tables, tmp_path):
    rdf = _teacher_rows(pd.read_csv(tables["rdf_errors"]), [0, 1], "none")
    rdf.to_csv(tmp_path / "rdf.csv", index=False)
    notes = _figure(tmp_path, "fig3", tables["models"], rdf_csv=tmp_path / "rdf.csv")
    assert notes[0].startswith("C: NO TEACHER REFERENCE: every teacher member's liquid fused")
    assert any(n.startswith("D: red rings") for n in notes)
    assert not any(n.startswith("C: red rings") or "no RDF data" in n for n in notes), notes


@pytest.mark.parametrize("name", ["fig2", "fig3"])
def test_unconverged_models_are_named_on_the_figure(tables, tmp_path, name):
    models = pd.read_csv(tables["models"])
    models["converged"] = [i % 3 != 0 for i in range(len(models))]
    n_bad = int((~models["converged"]).sum())
    path = tmp_path / "models.csv"
    models.to_csv(path, index=False)
    notes = _figure(tmp_path, name, path, rdf_csv=tables["rdf_errors"], run="synthetic")
    assert f"UNCONVERGED: {n_bad} of {len(models)} models (metrics.json 'converged')" in notes
    models["converged"] = True
    models.to_csv(path, index=False)
    notes = _figure(tmp_path, name, path, rdf_csv=tables["rdf_errors"], run="synthetic")
    assert not any("UNCONVERGED" in n for n in notes)
