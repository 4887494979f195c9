"""Numbers behind the figures: Pareto fronts, paired student-vs-control statistics,
hypervolumes and the Born-Again table.

Inputs are the tidy tables of the pipeline (see :mod:`aedistill.paths`):

* ``tables/models.csv`` — one row per trained model (role, arch, seed, n_weights,
  test_e_rmse in eV/atom, test_f_rmse in eV/Å, ...);
* ``tables/efficiency.csv`` — optional; one row per timed model
  (time_per_step_per_atom_s, bytes_per_atom, lammps_time_per_step_per_atom_s, ...);
* ``tables/rdf_errors.csv`` — optional; rdf_error_A per (role, arch, seed);
* ``labels/teacher_vs_true.json`` — optional; passed through.

Outputs (all tidy CSVs):

* ``paired.csv`` — per (role, baseline, arch, metric): differences role − baseline of models
  with the same (arch, seed) (same initial weights), with mean, std, n, a paired t-test and a
  Wilcoxon signed-rank test;
* ``born_again.csv`` — E and F test RMSE (mean ± std over seeds) of teachers and Born-Again
  students;
* ``analysis.csv`` — long format ``section, role, baseline, arch, x, y, metric, value``:
  Pareto-front membership, hypervolumes, paired summaries, teacher ε vs true ε.

Conventions. Every metric is minimised (errors, time, memory, weights). A role's point for
an architecture is the mean over seeds of its accuracy (models.csv) and the mean over the
timed seeds of its cost (efficiency.csv): speed and memory do not depend on the seed.

**Hypervolume reference point.** For one pair of axes, every role is scored against the same
reference point ``r = 1.1 × (max over all roles' points)`` per axis (teacher and Born-Again
included), so a role's front always dominates a non-empty region and fronts of different roles
are comparable. The hypervolume is reported raw (axis units multiplied) and normalised by the
area of the box ``[0, r_x] × [0, r_y]`` (``hypervolume_norm`` in [0, 1]; larger = better).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aedistill.config import grid_archs
from aedistill.errors import UserInputError
from aedistill.io import read_json, write_csv
from aedistill.roles import comparisons as role_comparisons

log = logging.getLogger(__name__)

#: Margin of the common hypervolume reference point above the worst point (fraction).
HV_MARGIN = 0.1

#: Cost axes (column in the per-(role, arch) summary, readable name) a Pareto front is drawn on.
COST_AXES = {
    "n_weights": "number of weights",
    "time_per_step_per_atom_s": "ASE time per MD step per atom (s)",
    "bytes_per_atom": "memory per atom (bytes)",
    "lammps_time_per_step_per_atom_s": "LAMMPS time per MD step per atom (s)",
}
#: Accuracy axes.
ACCURACY_AXES = {
    "test_f_rmse": "test force RMSE (eV/Å)",
    "test_e_rmse": "test energy RMSE (eV/atom)",
    "rdf_error_A": "RDF error vs teacher (Å)",
    "rdf_error_vs_exp_A": "RDF error vs experiment, 1198 K (Å)",
}

MODELS_REQUIRED = ("role", "arch", "seed", "n_weights", "test_e_rmse", "test_f_rmse")


# --------------------------------------------------------------------------- config
def learning_curve_archs(config: Mapping[str, Any]) -> list[str]:
    """Architecture slugs of Fig 4: ``figures.learning_curve_archs``, else the first grid one.

    Raises :class:`UserInputError` for a slug that is not a grid architecture.
    """
    grid = [a.slug for a in grid_archs(config)]
    archs = list(config["figures"]["learning_curve_archs"]) or grid[:1]
    unknown = [a for a in archs if a not in grid]
    if unknown:
        raise UserInputError(
            f"config key 'figures.learning_curve_archs': {unknown} are not in "
            f"grid.architectures {grid}"
        )
    return archs


# --------------------------------------------------------------------------- reading
def read_table(
    path: str | os.PathLike[str] | None, required: Sequence[str] = ()
) -> pd.DataFrame | None:
    """Read a tidy CSV; ``None`` when ``path`` is None, missing or has no rows.

    Raises :class:`UserInputError` naming the file when required columns are missing.
    """
    if path is None or not Path(path).exists():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserInputError(f"{path}: missing columns {missing}")
    if df.empty:
        return None
    return df


def reference_rows(rdf: pd.DataFrame) -> pd.Series:
    """True for the rows of an ``rdf_errors`` table that are the reference model itself."""
    name = rdf["role"] + "/" + rdf["arch"] + "/seed" + rdf["seed"].astype(str)
    return name == rdf["reference"]


def read_rdf_errors(path: str | os.PathLike[str] | None) -> pd.DataFrame | None:
    """Read ``tables/rdf_errors.csv``; the reference model's own ``rdf_error_A`` (0 by
    definition) becomes NaN, its error vs experiment stays. ``None`` when absent or empty."""
    df = read_table(path, ("role", "arch", "seed", "rdf_error_A"))
    if df is not None and "reference" in df.columns:
        df = df.copy()
        df.loc[reference_rows(df), "rdf_error_A"] = np.nan
    return None if df is None or df.empty else df


def read_models(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``tables/models.csv``; it must exist and have rows."""
    df = read_table(path, MODELS_REQUIRED)
    if df is None:
        raise UserInputError(f"{path}: models table is missing or has no rows")
    return df


# --------------------------------------------------------------------------- Pareto
def pareto_mask(x: Iterable[float], y: Iterable[float]) -> np.ndarray:
    """Boolean mask of the non-dominated points when minimising both ``x`` and ``y``.

    A point is dominated when another point is no worse on both axes and strictly better on
    at least one. Duplicated points do not dominate each other (both stay on the front).
    Points with a NaN coordinate are never on the front.
    """
    x = np.asarray(list(x), dtype=float)
    y = np.asarray(list(y), dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    mask = np.zeros(len(x), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        le = (x[others] <= x[i]) & (y[others] <= y[i])
        lt = (x[others] < x[i]) | (y[others] < y[i])
        mask[i] = not np.any(le & lt)
    return mask


def hypervolume_2d(x: Iterable[float], y: Iterable[float], ref: tuple[float, float]) -> float:
    """Area dominated by the points ``(x, y)`` and bounded by the reference point ``ref``.

    Both axes are minimised; points not strictly better than ``ref`` on both axes add nothing.
    """
    pts = [
        (a, b)
        for a, b in zip(np.asarray(list(x), float), np.asarray(list(y), float), strict=True)
        if np.isfinite(a) and np.isfinite(b) and a < ref[0] and b < ref[1]
    ]
    if not pts:
        return 0.0
    pts.sort()
    area = 0.0
    best_y = ref[1]
    # sweep left to right; each point adds the strip between its x and ref_x below best_y so far
    for a, b in pts:
        if b < best_y:
            area += (ref[0] - a) * (best_y - b)
            best_y = b
    return float(area)


def summarise_points(
    models: pd.DataFrame,
    efficiency: pd.DataFrame | None = None,
    rdf: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (role, arch): mean, std and count over seeds of every metric present.

    Columns ``<metric>_mean``, ``<metric>_std`` (ddof=1, NaN for one seed), ``<metric>_n``
    for the accuracy metrics of ``models`` and the cost metrics of ``efficiency``/``rdf``;
    plus ``n_weights`` (mean over seeds; identical for an architecture).
    """
    keys = ["role", "arch"]
    parts = [_agg(models, keys, ["test_f_rmse", "test_e_rmse", "n_weights"])]
    if efficiency is not None:
        cols = [c for c in COST_AXES if c != "n_weights" and c in efficiency.columns]
        if cols:
            parts.append(_agg(efficiency, keys, cols))
    if rdf is not None:
        cols = [c for c in ("rdf_error_A", "rdf_error_vs_exp_A") if c in rdf.columns]
        if cols:
            parts.append(_agg(rdf, keys, cols))
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p, on=keys, how="left")
    out["n_weights"] = out["n_weights_mean"]
    return out.sort_values(["role", "n_weights"]).reset_index(drop=True)


def _agg(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    g = df.groupby(keys)[cols]
    mean = g.mean().add_suffix("_mean")
    std = g.std(ddof=1).add_suffix("_std")
    n = g.count().add_suffix("_n")
    return pd.concat([mean, std, n], axis=1).reset_index()


def pareto_table(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Front membership per role on axes ``x`` (cost) and ``y`` (accuracy), both ``*_mean``.

    Returns columns role, arch, x, y, x_value, y_value, on_front; rows with NaN values are
    dropped (a role without cost measurements has no front on that axis).
    """
    xc = x if x == "n_weights" else f"{x}_mean"
    yc = f"{y}_mean"
    if xc not in points.columns or yc not in points.columns:
        return pd.DataFrame(columns=["role", "arch", "x", "y", "x_value", "y_value", "on_front"])
    rows = []
    for role, grp in points.groupby("role", sort=True):
        grp = grp[np.isfinite(grp[xc]) & np.isfinite(grp[yc])]
        if grp.empty:
            continue
        mask = pareto_mask(grp[xc], grp[yc])
        for (_, r), m in zip(grp.iterrows(), mask, strict=True):
            rows.append(
                dict(
                    role=role,
                    arch=r["arch"],
                    x=x,
                    y=y,
                    x_value=r[xc],
                    y_value=r[yc],
                    on_front=bool(m),
                )
            )
    return pd.DataFrame(rows, columns=["role", "arch", "x", "y", "x_value", "y_value", "on_front"])


def hypervolume_table(front: pd.DataFrame, margin: float = HV_MARGIN) -> pd.DataFrame:
    """Hypervolume of each role's front for one pair of axes (output of :func:`pareto_table`).

    The common reference point is ``(1 + margin) ×`` the per-axis maximum over all roles.
    Returns columns role, x, y, ref_x, ref_y, hypervolume, hypervolume_norm, n_front.
    """
    cols = ["role", "x", "y", "ref_x", "ref_y", "hypervolume", "hypervolume_norm", "n_front"]
    if front.empty:
        return pd.DataFrame(columns=cols)
    ref = (
        (1 + margin) * float(front["x_value"].max()),
        (1 + margin) * float(front["y_value"].max()),
    )
    rows = []
    for role, grp in front.groupby("role", sort=True):
        on = grp[grp["on_front"]]
        hv = hypervolume_2d(on["x_value"], on["y_value"], ref)
        box = ref[0] * ref[1]
        rows.append(
            dict(
                role=role,
                x=grp["x"].iloc[0],
                y=grp["y"].iloc[0],
                ref_x=ref[0],
                ref_y=ref[1],
                hypervolume=hv,
                hypervolume_norm=hv / box if box > 0 else math.nan,
                n_front=int(len(on)),
            )
        )
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- paired stats
def comparisons(roles: Iterable[str]) -> list[tuple[str, str]]:
    """(role, baseline) pairs to test, among the roles present: each role against the
    baselines of its :class:`aedistill.roles.RoleSpec` (:func:`aedistill.roles.comparisons`).

    Today: every comparison role (student, matched_control, oracle, augmented, student_wA*
    by w_A) against control; student against matched_control (isolates the w_A term: same w_F);
    oracle against student (exact vs teacher per-atom energies); augmented against student
    (what the teacher's own configurations add).
    """
    return role_comparisons(roles)


def paired_stats(diff: Sequence[float]) -> dict[str, float]:
    """Statistics of paired differences ``diff`` (role − baseline, one per seed).

    Returns n, mean, std (ddof=1), sem, t statistic and two-sided p of the paired t-test
    (n ≥ 2 and std > 0), and the two-sided Wilcoxon signed-rank statistic and p (at least one
    non-zero difference; exact distribution for small n). NaN where a test is undefined.
    """
    from scipy import stats  # imported here: the workflow imports this module at parse time

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out: dict[str, float] = dict(
        n=n,
        mean_diff=float(d.mean()) if n else math.nan,
        std_diff=float(d.std(ddof=1)) if n >= 2 else math.nan,
        sem_diff=math.nan,
        t_stat=math.nan,
        p_ttest=math.nan,
        wilcoxon_stat=math.nan,
        p_wilcoxon=math.nan,
    )
    if n >= 2 and out["std_diff"] > 0:
        out["sem_diff"] = out["std_diff"] / math.sqrt(n)
        res = stats.ttest_1samp(d, 0.0)
        out["t_stat"], out["p_ttest"] = float(res.statistic), float(res.pvalue)
    if n >= 1 and np.any(d != 0):
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out["wilcoxon_stat"], out["p_wilcoxon"] = float(res.statistic), float(res.pvalue)
    return out


#: Metrics of the paired tables: test errors, then training-set errors (where recorded).
PAIRED_METRICS = ("test_f_rmse", "test_e_rmse", "train_f_rmse", "train_e_rmse")


def paired_table(
    models: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Paired role − baseline differences per architecture (pairs share arch and seed).

    One row per (role, baseline, arch, metric) plus a pooled row with ``arch == "ALL"``
    (every pair of every architecture; seeds of different architectures are treated as
    independent pairs). Columns: role, baseline, arch, metric, n, mean_role, mean_baseline,
    mean_diff, std_diff, sem_diff, rel_diff (mean_diff / mean_baseline), t_stat, p_ttest,
    wilcoxon_stat, p_wilcoxon, role_wins (mean_diff < 0). ``pairs``: the (role, baseline)
    comparisons, default :func:`comparisons` of the roles present. ``metrics``: default
    :data:`PAIRED_METRICS` that ``models`` has (models trained before the training-set
    errors were recorded have none).
    """
    if metrics is None:
        metrics = [m for m in PAIRED_METRICS if m in models.columns and models[m].notna().any()]
    rows = []
    if pairs is None:
        pairs = comparisons(models["role"].unique())
    for role, base in pairs:
        a = models[models["role"] == role]
        b = models[models["role"] == base]
        pairs = a.merge(b, on=["arch", "seed"], suffixes=("_r", "_b"))
        if pairs.empty:
            continue
        for metric in metrics:
            groups = [(arch, g) for arch, g in pairs.groupby("arch", sort=False)]
            groups.sort(key=lambda t: (t[1]["n_weights_r"].mean(), t[0]))
            groups.append(("ALL", pairs))
            for arch, g in groups:
                st = paired_stats(g[f"{metric}_r"] - g[f"{metric}_b"])
                mb = float(g[f"{metric}_b"].mean())
                rows.append(
                    dict(
                        role=role,
                        baseline=base,
                        arch=arch,
                        metric=metric,
                        mean_role=float(g[f"{metric}_r"].mean()),
                        mean_baseline=mb,
                        rel_diff=st["mean_diff"] / mb if mb else math.nan,
                        role_wins=bool(st["mean_diff"] < 0),
                        **st,
                    )
                )
    cols = [
        "role",
        "baseline",
        "arch",
        "metric",
        "n",
        "mean_role",
        "mean_baseline",
        "mean_diff",
        "std_diff",
        "sem_diff",
        "rel_diff",
        "t_stat",
        "p_ttest",
        "wilcoxon_stat",
        "p_wilcoxon",
        "role_wins",
    ]
    return pd.DataFrame(rows, columns=cols)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of the p-values of one family of tests (family-wise error
    rate): the i-th smallest of m becomes ``max_{j ≤ i} min(1, (m − j + 1) p_(j))``.

    NaN p-values (undefined tests) stay NaN and are not counted in the family size m.
    Returned in the order of ``p_values``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for i, k in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - i) * p[k]))
        out[k] = running
    return out


def win_summary(paired: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per (role, baseline, metric): fraction of architectures where the role's mean is lower.

    Columns role, baseline, metric, n_arch, frac_arch_win, frac_arch_win_significant (lower
    and paired t-test p < ``alpha``), mean_rel_diff (mean over architectures).
    """
    cols = [
        "role",
        "baseline",
        "metric",
        "n_arch",
        "frac_arch_win",
        "frac_arch_win_significant",
        "mean_rel_diff",
    ]
    per_arch = paired[paired["arch"] != "ALL"]
    rows = []
    for (role, base, metric), g in per_arch.groupby(["role", "baseline", "metric"], sort=False):
        sig = g["role_wins"] & (g["p_ttest"] < alpha)
        rows.append(
            dict(
                role=role,
                baseline=base,
                metric=metric,
                n_arch=len(g),
                frac_arch_win=float(g["role_wins"].mean()),
                frac_arch_win_significant=float(sig.mean()),
                mean_rel_diff=float(g["rel_diff"].mean()),
            )
        )
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- Born-Again
def born_again_table(models: pd.DataFrame) -> pd.DataFrame:
    """E and F test RMSE, mean ± std over seeds, of teachers and Born-Again students.

    Columns role, arch, n_seeds, test_e_rmse_mean, test_e_rmse_std, test_f_rmse_mean,
    test_f_rmse_std, rel_e_vs_teacher, rel_f_vs_teacher (mean / teacher mean − 1; NaN
    without teacher rows). Empty (with these columns) when there are neither.
    """
    cols = [
        "role",
        "arch",
        "n_seeds",
        "test_e_rmse_mean",
        "test_e_rmse_std",
        "test_f_rmse_mean",
        "test_f_rmse_std",
        "rel_e_vs_teacher",
        "rel_f_vs_teacher",
    ]
    sub = models[models["role"].isin(["teacher", "born_again"])]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    g = sub.groupby(["role", "arch"])
    out = pd.DataFrame(
        dict(
            n_seeds=g["seed"].nunique(),
            test_e_rmse_mean=g["test_e_rmse"].mean(),
            test_e_rmse_std=g["test_e_rmse"].std(ddof=1),
            test_f_rmse_mean=g["test_f_rmse"].mean(),
            test_f_rmse_std=g["test_f_rmse"].std(ddof=1),
        )
    ).reset_index()
    teacher = out[out["role"] == "teacher"]
    if len(teacher):
        te, tf = teacher["test_e_rmse_mean"].mean(), teacher["test_f_rmse_mean"].mean()
        out["rel_e_vs_teacher"] = out["test_e_rmse_mean"] / te - 1
        out["rel_f_vs_teacher"] = out["test_f_rmse_mean"] / tf - 1
    else:
        out["rel_e_vs_teacher"] = math.nan
        out["rel_f_vs_teacher"] = math.nan
    out["_order"] = out["role"].map({"teacher": 0, "born_again": 1})
    out = out.sort_values(["_order", "arch"])
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- teacher ε
def flatten_json(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested JSON object as ``{"a.b.c": value}`` (bools and text dropped)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_json(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten_json(v, f"{prefix}{i}."))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix.rstrip(".")] = float(obj)
    return out


# --------------------------------------------------------------------------- driver
ANALYSIS_COLUMNS = ["section", "role", "baseline", "arch", "x", "y", "metric", "value"]


def analysis_long(
    models: pd.DataFrame,
    efficiency: pd.DataFrame | None = None,
    rdf: pd.DataFrame | None = None,
    teacher_vs_true: dict[str, Any] | None = None,
    paired: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The long analysis table (``section, role, baseline, arch, x, y, metric, value``).

    Sections: ``pareto`` (metric on_front, 1/0, per role/arch/axes), ``hypervolume``
    (hypervolume, hypervolume_norm, ref_x, ref_y, n_front per role/axes), ``paired_summary``
    (frac_arch_win, frac_arch_win_significant, mean_rel_diff, n_arch per comparison),
    ``paired_pooled`` (mean_diff, p_ttest, p_wilcoxon, n over all pairs) and
    ``teacher_vs_true`` (numeric entries of labels/teacher_vs_true.json), ``inputs`` (metric
    ``<table>.n_rows``: how many rows each input table had; 0 = absent).
    """
    rows: list[dict[str, Any]] = []

    def add(section: str, metric: str, value: Any, **kw: Any) -> None:
        rows.append(dict(section=section, metric=metric, value=value, **kw))

    for name, df in (("models", models), ("efficiency", efficiency), ("rdf_errors", rdf)):
        add("inputs", f"{name}.n_rows", 0 if df is None else len(df))

    points = summarise_points(models, efficiency, rdf)
    for x in COST_AXES:
        for y in ACCURACY_AXES:
            front = pareto_table(points, x, y)
            for r in front.itertuples():
                add("pareto", "on_front", int(r.on_front), role=r.role, arch=r.arch, x=x, y=y)
            hv = hypervolume_table(front)
            for r in hv.itertuples():
                for m in ("hypervolume", "hypervolume_norm", "ref_x", "ref_y", "n_front"):
                    add("hypervolume", m, getattr(r, m), role=r.role, x=x, y=y)

    if paired is None:
        paired = paired_table(models)
    for r in win_summary(paired).itertuples():
        for m in ("n_arch", "frac_arch_win", "frac_arch_win_significant", "mean_rel_diff"):
            add("paired_summary", m, getattr(r, m), role=r.role, baseline=r.baseline, y=r.metric)
    for r in paired[paired["arch"] == "ALL"].itertuples():
        for m in ("n", "mean_diff", "rel_diff", "p_ttest", "p_wilcoxon"):
            add(
                "paired_pooled",
                m,
                getattr(r, m),
                role=r.role,
                baseline=r.baseline,
                arch="ALL",
                y=r.metric,
            )

    if teacher_vs_true:
        for k, v in flatten_json(teacher_vs_true).items():
            add("teacher_vs_true", k, v, role="teacher")

    return pd.DataFrame(rows).reindex(columns=ANALYSIS_COLUMNS)


def run_analysis(
    models_csv: str | os.PathLike[str],
    out_analysis: str | os.PathLike[str],
    out_paired: str | os.PathLike[str],
    out_born_again: str | os.PathLike[str],
    efficiency_csv: str | os.PathLike[str] | None = None,
    rdf_csv: str | os.PathLike[str] | None = None,
    teacher_vs_true_json: str | os.PathLike[str] | None = None,
) -> None:
    """Read the tables, compute everything and write the three CSVs (atomically)."""
    models = read_models(models_csv)
    efficiency = read_table(efficiency_csv, ("role", "arch", "seed"))
    rdf = read_rdf_errors(rdf_csv)
    tvt = None
    if teacher_vs_true_json is not None and Path(teacher_vs_true_json).exists():
        tvt = read_json(teacher_vs_true_json)
    for name, df in (("efficiency", efficiency), ("rdf_errors", rdf)):
        if df is None:
            log.warning("%s table absent or empty: its axes are left out", name)
    paired = paired_table(models)
    write_csv(out_paired, paired)
    write_csv(out_born_again, born_again_table(models))
    write_csv(out_analysis, analysis_long(models, efficiency, rdf, tvt, paired))
    log.info("analysis: %d models, %d paired rows", len(models), len(paired))
