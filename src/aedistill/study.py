"""When does distillation pay off? Compare runs that differ in the reference data and in the
training-set size.

Each run directory (``results/<run_name>``) holds ``tables/models.csv`` (and, for the
learning curves, ``tables/histories.csv``). A run is described by :class:`RunInfo`: its
reference (a name) and its ``dataset.split.train_subset`` — given by the study
(``workflow/rules/study.smk``) or, for plain run directories (``aedistill study``), read from
the run's ``data/summary.json`` (the dataset source) and ``data/split.json``
(:func:`describe_runs`). Per run this module reports

* the **criterion fixed before looking at student results** (``criterion.csv``): the method
  presupposes a teacher clearly better than the small models — teacher test F-RMSE (mean over
  members) ≤ ``CRITERION_RATIO`` × the smallest control's (mean over seeds); where the run
  has ``tables/rdf_errors.csv``, the reference teacher's 1200 K liquid (first peak, first
  minimum, second peak (Å), closest pair, error vs the 1198 K experiment; :mod:`aedistill.rdf`);
* per architecture, the paired (same arch and seed) differences in test F-RMSE and E/atom
  RMSE (``paired.csv``, :func:`aedistill.analysis.paired_table`) of every role against
  ``control`` and ``matched_control`` (:func:`study_comparisons`), with a paired t-test, a
  Wilcoxon signed-rank test and both **Holm-adjusted across the architectures** of each
  (reference, train_subset, role, baseline, metric) family (``p_holm_ttest``,
  ``p_holm_wilcoxon``; the pooled ``arch == "ALL"`` rows are not adjusted);
* the **verdict** (``verdict.csv``, :func:`verdict_table`): per reference × subset × role ×
  architecture the test F-RMSE (mean ± std over seeds), the paired Δ against control and
  matched_control with their p-values, a verdict word and the converged fraction of the
  models involved.

Figures (:func:`aedistill.study_figures.draw_figure`): ``paired_delta`` (bars of paired Δ F-RMSE per reference and
architecture, largest subset), ``data_size`` (paired Δ F-RMSE of the student against control
and matched_control vs train_subset) and ``learning_curves`` (validation F-RMSE vs epoch,
mean over seeds per role, at train_subset 1 or the largest subset).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aedistill.analysis import comparisons, holm, paired_table, read_models, reference_rows
from aedistill.io import write_csv
from aedistill.roles import ROLES, verdict_key

CRITERION_RATIO = 0.5
#: The roles every other grid role is compared with (paired, same arch and seed): the
#: control family of :data:`aedistill.roles.ROLES`.
BASELINES = tuple(name for name, s in ROLES.items() if s.family == "control")
#: Roles outside the student/control grid (other architectures: nothing to pair with).
NON_GRID_ROLES = tuple(name for name, s in ROLES.items() if not s.grid)
#: Family-wise error rate of the verdict (Holm-adjusted paired t-test).
ALPHA = 0.05
#: Tables of a study, in the order they are written.
TABLES = ("criterion", "paired", "verdict")
#: Figure kinds of :func:`aedistill.study_figures.draw_figure` and the tables or per-run
#: files they read.
FIGURES = {
    "paired_delta": "paired",
    "data_size": "verdict",
    "learning_curves": "histories",
}


@dataclass(frozen=True)
class RunInfo:
    """A run of a study: its directory, reference name and training subset."""

    run_dir: Path
    reference: str
    train_subset: float = 1.0

    @property
    def run(self) -> str:
        return self.run_dir.name

    @classmethod
    def from_mapping(cls, d: Mapping[str, object]) -> RunInfo:
        """From ``{"run_dir": ..., "reference": ..., "train_subset": ...}`` (the study
        rules' params)."""
        return cls(Path(str(d["run_dir"])), str(d["reference"]), float(d["train_subset"]))


def describe_run(run: str | os.PathLike[str] | RunInfo) -> RunInfo:
    """:class:`RunInfo` of a plain run directory: the reference named after the dataset
    source (``data/summary.json``; the directory's name without one), the subset from
    ``data/split.json`` (1 when absent)."""
    if isinstance(run, RunInfo):
        return run
    d = Path(run)
    subset = 1.0
    split = d / "data" / "split.json"
    if split.exists():
        subset = float(json.loads(split.read_text()).get("train_subset", 1.0))
    summary = d / "data" / "summary.json"
    source = json.loads(summary.read_text()).get("source") if summary.exists() else None
    return RunInfo(d, source or d.name, subset)


def describe_runs(runs: Sequence[str | os.PathLike[str] | RunInfo]) -> list[RunInfo]:
    """:func:`describe_run` of each; plain run directories that would share a reference and
    a subset (two runs of one source) are told apart as ``<source> (<run dir>)``."""
    infos = [describe_run(r) for r in runs]
    plain = [not isinstance(r, RunInfo) for r in runs]
    keys = [(i.reference, i.train_subset) for i in infos]
    return [
        RunInfo(i.run_dir, f"{i.reference} ({i.run})", i.train_subset)
        if p and keys.count(k) > 1 and i.reference != i.run
        else i
        for i, p, k in zip(infos, plain, keys, strict=True)
    ]


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


def study_comparisons(roles: Sequence[str]) -> list[tuple[str, str]]:
    """(role, baseline) pairs of a study: the run's own :func:`aedistill.analysis.comparisons`
    plus every other grid role against each baseline present (so a new role is compared
    with control and matched_control without further code)."""
    present = list(dict.fromkeys(roles))
    out = list(comparisons(present))
    for base in BASELINES:
        if base not in present:
            continue
        for role in present:
            if role not in (*BASELINES, *NON_GRID_ROLES) and (role, base) not in out:
                out.append((role, base))
    return out


def add_holm(paired: pd.DataFrame, family: Sequence[str]) -> pd.DataFrame:
    """``paired`` with ``p_holm_ttest`` and ``p_holm_wilcoxon``: its per-architecture p-values
    Holm-adjusted within each ``family`` group (the architectures of one comparison); NaN
    for the pooled ``arch == "ALL"`` rows."""
    out = paired.copy()
    per_arch = out["arch"] != "ALL"
    at = list(out.columns).index("p_wilcoxon") + 1
    for k, test in enumerate(("ttest", "wilcoxon")):
        adjusted = pd.Series(math.nan, index=out.index)
        if per_arch.any():
            grouped = out[per_arch].groupby(list(family), sort=False)[f"p_{test}"]
            adjusted[per_arch] = grouped.transform(lambda p: holm(p.to_numpy()))
        out.insert(at + k, f"p_holm_{test}", adjusted)
    return out


def _run_columns(info: RunInfo) -> dict[str, object]:
    return {"reference": info.reference, "train_subset": info.train_subset, "run": info.run}


def study_tables(runs: Sequence[str | os.PathLike[str] | RunInfo]) -> dict[str, pd.DataFrame]:
    """The tables of :data:`TABLES` for ``runs`` (run directories or :class:`RunInfo`):
    ``criterion`` (one row per run), ``paired`` (per run/role/baseline/arch/metric, with
    Holm-adjusted p-values) and ``verdict`` (:func:`verdict_table`)."""
    crit_rows, paired_parts, model_parts = [], [], []
    for info in describe_runs(runs):
        models = read_models(info.run_dir / "tables" / "models.csv")
        cols = _run_columns(info)
        crit_rows.append(cols | teacher_advantage(models) | teacher_liquid(info.run_dir))
        p = paired_table(models, pairs=study_comparisons(models["role"].unique()))
        models = models.drop(columns=[c for c in cols if c in models.columns])
        for i, (k, v) in enumerate(cols.items()):
            p.insert(i, k, v)
            models.insert(i, k, v)
        paired_parts.append(p)
        model_parts.append(models)
    paired = pd.concat(paired_parts, ignore_index=True)
    paired = add_holm(paired, ["reference", "train_subset", "role", "baseline", "metric"])
    models = pd.concat(model_parts, ignore_index=True)
    return {
        "criterion": pd.DataFrame(crit_rows),
        "paired": paired,
        "verdict": verdict_table(models, paired),
    }


def _converged(series: pd.Series) -> pd.Series:
    """models.csv's ``converged`` as 1.0/0.0 (NaN where a model did not record it)."""
    return series.map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})


def verdict_word(delta: float, p_holm: float, alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` (the role's F-RMSE lower / higher than the baseline's at the
    Holm-adjusted paired t-test's p < ``alpha``), ``no significant difference``, or ``""``
    without pairs."""
    if not np.isfinite(delta):
        return ""
    if np.isfinite(p_holm) and p_holm < alpha:
        return "better" if delta < 0 else "worse"
    return "no significant difference"


def verdict_table(
    models: pd.DataFrame, paired: pd.DataFrame, metric: str = "test_f_rmse"
) -> pd.DataFrame:
    """One row per reference × train_subset × grid role × architecture.

    ``models``: models.csv rows of every run with columns reference, train_subset, run;
    ``paired``: :func:`study_tables`' paired table. Columns: reference, train_subset, run,
    role, arch, n_weights, n_seeds, ``<metric>_mean``/``_std`` (over seeds; eV/Å for
    forces), and for each baseline b of :data:`BASELINES`: ``delta_vs_<b>`` (mean paired
    role − b), ``delta_vs_<b>_std``, ``rel_delta_vs_<b>``, ``n_pairs_vs_<b>``,
    ``p_ttest_vs_<b>``, ``p_wilcoxon_vs_<b>``, ``p_holm_ttest_vs_<b>``,
    ``p_holm_wilcoxon_vs_<b>``, ``verdict_vs_<b>`` (:func:`verdict_word`); then
    ``converged_fraction`` (the role's models) and ``converged_fraction_involved`` (the
    role's and its baselines' models of that architecture: every model the row's numbers
    use). NaN / empty where a baseline is absent or a model recorded no convergence.
    """
    keys = ["reference", "train_subset", "run"]
    grid = models[~models["role"].isin(NON_GRID_ROLES)].copy()
    conv = _converged(grid["converged"]) if "converged" in grid.columns else math.nan
    grid["_converged"] = conv
    g = grid.groupby([*keys, "role", "arch"], sort=False)
    out = pd.DataFrame(
        {
            "n_weights": g["n_weights"].first(),
            "n_seeds": g["seed"].nunique(),
            f"{metric}_mean": g[metric].mean(),
            f"{metric}_std": g[metric].std(ddof=1),
            "converged_fraction": g["_converged"].mean(),
        }
    ).reset_index()
    sel = paired[(paired["metric"] == metric) & (paired["arch"] != "ALL")]
    stats = {
        "mean_diff": "delta_vs_{}",
        "std_diff": "delta_vs_{}_std",
        "rel_diff": "rel_delta_vs_{}",
        "n": "n_pairs_vs_{}",
        "p_ttest": "p_ttest_vs_{}",
        "p_wilcoxon": "p_wilcoxon_vs_{}",
        "p_holm_ttest": "p_holm_ttest_vs_{}",
        "p_holm_wilcoxon": "p_holm_wilcoxon_vs_{}",
    }
    for base in BASELINES:
        part = sel[sel["baseline"] == base][[*keys, "role", "arch", *stats]]
        part = part.rename(columns={k: v.format(base) for k, v in stats.items()})
        out = out.merge(part, on=[*keys, "role", "arch"], how="left")
        out[f"verdict_vs_{base}"] = [
            verdict_word(d, p)
            for d, p in zip(out[f"delta_vs_{base}"], out[f"p_holm_ttest_vs_{base}"], strict=True)
        ]
    # every model a row's numbers use: the role's and, of the same run and architecture, the
    # baselines it was paired with
    involved = []
    for _, r in out.iterrows():
        roles = {r["role"]} | {b for b in BASELINES if r[f"n_pairs_vs_{b}"] > 0}
        same = (grid["run"] == r["run"]) & (grid["arch"] == r["arch"])
        involved.append(float(grid.loc[same & grid["role"].isin(roles), "_converged"].mean()))
    out["converged_fraction_involved"] = involved
    ref_order = {ref: i for i, ref in enumerate(dict.fromkeys(models["reference"]))}
    sort_keys = {"reference": ref_order.get, "role": verdict_key}

    def order(column: pd.Series) -> pd.Series:
        return column.map(sort_keys[column.name]) if column.name in sort_keys else column

    out = out.sort_values(
        ["reference", "train_subset", "role", "n_weights", "arch"], key=order, kind="stable"
    )
    cols = [*keys, "role", "arch", "n_weights", "n_seeds", f"{metric}_mean", f"{metric}_std"]
    cols += [v.format(base) for base in BASELINES for v in stats.values()]
    cols += [f"verdict_vs_{base}" for base in BASELINES]
    cols += ["converged_fraction", "converged_fraction_involved"]
    out = out[cols].reset_index(drop=True)
    return _add_other_metrics(out, grid, paired, metric, [*keys, "role", "arch"])


def _add_other_metrics(
    out: pd.DataFrame, grid: pd.DataFrame, paired: pd.DataFrame, metric: str, on: list[str]
) -> pd.DataFrame:
    """The verdict's columns for the other metrics of :data:`aedistill.analysis.PAIRED_METRICS`
    that the models have (test energy, training-set forces and energy, H9): ``<m>_mean``,
    ``<m>_std`` and per baseline b ``delta_<m>_vs_<b>``, ``p_holm_ttest_<m>_vs_<b>``,
    ``verdict_<m>_vs_<b>``."""
    from aedistill.analysis import PAIRED_METRICS

    for m in PAIRED_METRICS:
        if m == metric or m not in grid.columns or not grid[m].notna().any():
            continue
        g = grid.groupby(on, sort=False)[m]
        agg = pd.DataFrame({f"{m}_mean": g.mean(), f"{m}_std": g.std(ddof=1)}).reset_index()
        out = out.merge(agg, on=on, how="left")
        sel = paired[(paired["metric"] == m) & (paired["arch"] != "ALL")]
        for base in BASELINES:
            part = sel[sel["baseline"] == base][[*on, "mean_diff", "p_holm_ttest"]]
            delta, p = f"delta_{m}_vs_{base}", f"p_holm_ttest_{m}_vs_{base}"
            part = part.rename(columns={"mean_diff": delta, "p_holm_ttest": p})
            out = out.merge(part, on=on, how="left")
            out[f"verdict_{m}_vs_{base}"] = [
                verdict_word(d, q) for d, q in zip(out[delta], out[p], strict=True)
            ]
    return out


def write_tables(
    runs: Sequence[str | os.PathLike[str] | RunInfo],
    out: Mapping[str, str | os.PathLike[str]],
) -> dict[str, pd.DataFrame]:
    """Compute :func:`study_tables` and write each table named in ``out`` (name → path)."""
    tables = study_tables(runs)
    for name, path in out.items():
        write_csv(path, tables[name])
    return tables
