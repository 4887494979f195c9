"""When does distillation pay off? Compare runs that differ only in the reference data.

Each run directory (``results/<run_name>``) holds ``tables/models.csv``. Per reference this
module reports

* the **criterion fixed before looking at student results**: the method presupposes a teacher
  clearly better than the small models — teacher test F-RMSE (mean over members) ≤
  ``CRITERION_RATIO`` × the smallest control's (mean over seeds);
* per architecture, the paired (same arch and seed) student − control and
  student − matched_control differences in test F-RMSE and E/atom RMSE (mean ± std over seeds),
  from :func:`aedistill.analysis.paired_table`;
* where the run has ``tables/rdf_errors.csv``: the reference teacher's 1200 K liquid — first
  peak, first minimum, second peak (Å), closest pair and its error vs the 1198 K experiment
  (:mod:`aedistill.rdf`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aedistill.analysis import paired_table, read_models, reference_rows
from aedistill.io import atomic_path, write_csv

log = logging.getLogger(__name__)

CRITERION_RATIO = 0.5


def teacher_advantage(models: pd.DataFrame) -> dict[str, float | str | bool]:
    """Teacher vs smallest control (by number of weights) on test F-RMSE (eV/Å)."""
    teacher = models[models["role"] == "teacher"]["test_f_rmse"]
    controls = models[models["role"] == "control"]
    out: dict[str, float | str | bool] = {
        "teacher_f_rmse": float(teacher.mean()) if len(teacher) else math.nan,
        "teacher_f_rmse_std": float(teacher.std(ddof=1)) if len(teacher) > 1 else math.nan,
        "n_teachers": int(len(teacher)),
    }
    if controls.empty:
        out |= {"smallest_control_arch": "", "smallest_control_f_rmse": math.nan}
    else:
        smallest = controls.sort_values(["n_weights", "arch"]).iloc[0]["arch"]
        f = controls[controls["arch"] == smallest]["test_f_rmse"]
        out |= {
            "smallest_control_arch": str(smallest),
            "smallest_control_f_rmse": float(f.mean()),
            "smallest_control_f_rmse_std": float(f.std(ddof=1)) if len(f) > 1 else math.nan,
        }
    ratio = out["teacher_f_rmse"] / out["smallest_control_f_rmse"]  # type: ignore[operator]
    out["teacher_over_smallest_control"] = float(ratio)
    out["criterion_ratio"] = CRITERION_RATIO
    out["criterion_met"] = bool(ratio <= CRITERION_RATIO)
    return out


#: rdf_errors.csv columns reported for the reference teacher, as teacher_liquid_<column>
TEACHER_LIQUID_COLUMNS = (
    "first_peak_A",
    "first_min_A",
    "second_peak_A",
    "min_r_A",
    "rdf_error_vs_exp_A",
    "sampling_floor_A",
)


def teacher_liquid(run_dir: str | os.PathLike[str]) -> dict[str, float]:
    """The reference teacher's liquid g(r) features from ``tables/rdf_errors.csv`` (NaN
    where the run has no LAMMPS stage)."""
    out = {f"teacher_liquid_{c}": math.nan for c in TEACHER_LIQUID_COLUMNS}
    path = Path(run_dir) / "tables" / "rdf_errors.csv"
    if not path.exists():
        return out
    df = pd.read_csv(path)
    ref = df[reference_rows(df)]
    if ref.empty:
        return out
    row = ref.iloc[0]
    return out | {
        f"teacher_liquid_{c}": float(row[c]) for c in TEACHER_LIQUID_COLUMNS if c in row.index
    }


def _reference_name(run_dir: Path) -> str:
    """``<dataset source> (<run dir>)`` where the run has ``data/summary.json``, else the dir."""
    summary = run_dir / "data" / "summary.json"
    if summary.exists():
        source = json.loads(summary.read_text()).get("source")
        if source and source != run_dir.name:
            return f"{source} ({run_dir.name})"
    return run_dir.name


def study_tables(run_dirs: Sequence[str | os.PathLike[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(criterion table: one row per reference, paired table: per reference/role/arch/metric)."""
    crit_rows, paired_rows = [], []
    for d in run_dirs:
        d = Path(d)
        models = read_models(d / "tables" / "models.csv")
        ref = _reference_name(d)
        crit_rows.append({"reference": ref} | teacher_advantage(models) | teacher_liquid(d))
        p = paired_table(models)
        p.insert(0, "reference", ref)
        paired_rows.append(p)
    return pd.DataFrame(crit_rows), pd.concat(paired_rows, ignore_index=True)


def plot_study(paired: pd.DataFrame, path_png: str | os.PathLike[str]) -> None:
    """Bar chart: paired Δ F-RMSE (role − baseline, mean ± std over seeds) per reference/arch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = paired[(paired["metric"] == "test_f_rmse") & (paired["arch"] != "ALL")]
    comps = sel[["role", "baseline"]].drop_duplicates().itertuples(index=False)
    comps = [c for c in comps]
    refs = list(dict.fromkeys(sel["reference"]))
    fig, axes = plt.subplots(
        1, max(1, len(refs)), figsize=(4.5 * max(1, len(refs)), 3.8), squeeze=False
    )
    for ax, ref in zip(axes[0], refs, strict=False):
        g = sel[sel["reference"] == ref]
        archs = list(dict.fromkeys(g["arch"]))
        width = 0.8 / max(1, len(comps))
        for k, (role, base) in enumerate(comps):
            h = g[(g["role"] == role) & (g["baseline"] == base)].set_index("arch").reindex(archs)
            xs = [i + (k - (len(comps) - 1) / 2) * width for i in range(len(archs))]
            ax.bar(
                xs,
                1000 * h["mean_diff"],
                width,
                yerr=1000 * h["std_diff"].fillna(0),
                capsize=3,
                label=f"{role} − {base}",
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(archs)), archs, rotation=30, ha="right")
        ax.set_title(f"reference: {ref}")
        ax.set_ylabel("paired Δ force RMSE (meV/Å)\n< 0: role better")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)


def run_study(run_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> None:
    crit, paired = study_tables(run_dirs)
    out = Path(out_dir)
    write_csv(out / "criterion.csv", crit)
    write_csv(out / "paired.csv", paired)
    plot_study(paired, out / "study.png")
    log.info("criterion:\n%s", crit.to_string(index=False))
