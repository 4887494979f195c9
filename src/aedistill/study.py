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

Figures (:func:`draw_figure`): ``paired_delta`` (bars of paired Δ F-RMSE per reference and
architecture, largest subset), ``data_size`` (paired Δ F-RMSE of the student against control
and matched_control vs train_subset) and ``learning_curves`` (validation F-RMSE vs epoch,
mean over seeds per role, at train_subset 1 or the largest subset).
"""

from __future__ import annotations

import json
import logging
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

log = logging.getLogger(__name__)

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
#: Figure kinds of :func:`draw_figure` and the tables or per-run files they read.
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


# --------------------------------------------------------------------------- figures
def _largest_subset(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each reference's largest train_subset (1 when the study has it)."""
    top = df.groupby("reference", sort=False)["train_subset"].transform("max")
    return df[df["train_subset"] == top]


def _subplots(n_rows: int, n_cols: int, w: float = 4.2, h: float = 3.3):
    import matplotlib.pyplot as plt

    from aedistill.plots import apply_style

    apply_style()
    return plt.subplots(
        max(1, n_rows), max(1, n_cols), figsize=(w * max(1, n_cols), h * max(1, n_rows)),
        squeeze=False,
    )  # fmt: skip


def plot_paired_delta(paired: pd.DataFrame):
    """Bars: paired Δ F-RMSE (role − baseline, mean ± std over seeds, meV/Å) per reference
    and architecture, for the run's own comparisons (:func:`aedistill.analysis.comparisons`)
    at each reference's largest train_subset."""
    sel = paired[(paired["metric"] == "test_f_rmse") & (paired["arch"] != "ALL")]
    sel = _largest_subset(sel)
    own = set(comparisons(sel["role"].tolist() + sel["baseline"].tolist()))
    sel = sel[[(r, b) in own for r, b in zip(sel["role"], sel["baseline"], strict=True)]]
    comps = list(dict.fromkeys(zip(sel["role"], sel["baseline"], strict=True)))
    refs = list(dict.fromkeys(sel["reference"]))
    fig, axes = _subplots(1, len(refs), w=4.5, h=3.8)
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
        subset = g["train_subset"].iloc[0]
        ax.set_title(f"reference: {ref}" + (f" (train subset {subset:g})" if subset < 1 else ""))
        ax.set_ylabel("paired Δ force RMSE (meV/Å)\n< 0: role better")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_data_size(verdict: pd.DataFrame, roles: Sequence[str] = ("student",)):
    """Paired Δ F-RMSE (meV/Å, mean ± std over seeds) of ``roles`` against control and
    matched_control vs train_subset: one panel per architecture (rows) × reference (columns)."""
    refs = list(dict.fromkeys(verdict["reference"]))
    archs = list(verdict.sort_values("n_weights", kind="stable")["arch"].drop_duplicates())
    fig, axes = _subplots(len(archs), len(refs))
    styles = {"control": ("o", "-"), "matched_control": ("s", "--")}
    for i, arch in enumerate(archs):
        for j, ref in enumerate(refs):
            ax = axes[i][j]
            g = verdict[(verdict["reference"] == ref) & (verdict["arch"] == arch)]
            for role in roles:
                h = g[g["role"] == role].sort_values("train_subset")
                for base, (marker, ls) in styles.items():
                    d = h[f"delta_vs_{base}"]
                    if not np.isfinite(d).any():
                        continue
                    ax.errorbar(
                        h["train_subset"],
                        1000 * d,
                        yerr=1000 * h[f"delta_vs_{base}_std"].fillna(0),
                        marker=marker,
                        ls=ls,
                        label=f"{role} − {base}",
                    )
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(sorted(set(verdict["train_subset"])))
            ax.set_title(f"{ref}, {arch}")
            ax.set_xlabel("training subset (fraction of the split's train set)")
            ax.set_ylabel("paired Δ force RMSE (meV/Å)\n< 0: role better")
    handles = [h for ax in axes.flat for h in [ax.get_legend_handles_labels()] if h[0]]
    if handles:
        axes[0][0].legend(*handles[0], fontsize=8)
    fig.tight_layout()
    return fig


def plot_learning_curves(runs: Sequence[RunInfo]):
    """Validation F-RMSE (meV/Å) vs epoch, mean over seeds per role (grid roles), one panel
    per reference (rows) × architecture (columns), at each reference's largest train_subset
    (1 when the study has it). Reads each run's ``tables/histories.csv``."""
    from matplotlib.ticker import MaxNLocator

    from aedistill.plots import ordered_roles, role_style

    chosen: dict[str, RunInfo] = {}
    for info in runs:
        if info.reference not in chosen or info.train_subset > chosen[info.reference].train_subset:
            chosen[info.reference] = info
    frames = []
    for ref, info in chosen.items():
        path = info.run_dir / "tables" / "histories.csv"
        if not path.exists():
            log.warning("%s: no learning curves for reference %s", path, ref)
            continue
        h = pd.read_csv(path)
        h = h[~h["role"].isin(NON_GRID_ROLES)]
        h.insert(0, "reference", ref)
        h.insert(1, "train_subset", info.train_subset)
        frames.append(h)
    hist = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    refs = list(dict.fromkeys(hist["reference"])) if len(hist) else []
    archs = list(dict.fromkeys(hist["arch"])) if len(hist) else []
    roles = ordered_roles(hist["role"].unique()) if len(hist) else []
    fig, axes = _subplots(len(refs), len(archs))
    for i, ref in enumerate(refs):
        for j, arch in enumerate(archs):
            ax = axes[i][j]
            g = hist[(hist["reference"] == ref) & (hist["arch"] == arch)]
            for role in roles:
                curve = g[g["role"] == role].groupby("epoch")["valid_f_rmse"].mean()
                if curve.empty:
                    continue
                colour, _, label = role_style(role, roles)
                ax.plot(curve.index, 1000 * curve.to_numpy(), color=colour, label=label)
            subset = g["train_subset"].iloc[0] if len(g) else 1.0
            ax.set_title(f"{ref}, {arch} (train subset {subset:g})")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("validation force RMSE (meV/Å)")
            ax.set_yscale("log")
    if refs and archs:
        axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_figure(
    kind: str,
    out: Sequence[str | os.PathLike[str]],
    table: str | os.PathLike[str] | None = None,
    runs: Sequence[str | os.PathLike[str] | RunInfo] = (),
) -> None:
    """Draw figure ``kind`` of :data:`FIGURES` to each path of ``out`` (format from the
    suffix, atomically): ``paired_delta`` reads the paired table and ``data_size`` the
    verdict table (``table``), ``learning_curves`` the runs' histories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aedistill.io import atomic_path

    if kind == "paired_delta":
        fig = plot_paired_delta(pd.read_csv(table))
    elif kind == "data_size":
        fig = plot_data_size(pd.read_csv(table))
    elif kind == "learning_curves":
        fig = plot_learning_curves(describe_runs(runs))
    else:
        raise ValueError(f"unknown study figure {kind!r} (expected one of {list(FIGURES)})")
    for path in out:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip("."), dpi=150)
    plt.close(fig)


def plot_study(paired: pd.DataFrame, path_png: str | os.PathLike[str]) -> None:
    """``study.png`` of ``aedistill study``: :func:`plot_paired_delta`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aedistill.io import atomic_path

    fig = plot_paired_delta(paired)
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)


def run_study(
    run_dirs: Sequence[str | os.PathLike[str] | RunInfo], out_dir: str | os.PathLike[str]
) -> None:
    """``aedistill study``: criterion.csv, paired.csv, verdict.csv, study.png,
    data_size.png and learning_curves.png of ``run_dirs`` into ``out_dir``."""
    out = Path(out_dir)
    runs = describe_runs(run_dirs)
    tables = write_tables(runs, {name: out / f"{name}.csv" for name in TABLES})
    plot_study(tables["paired"], out / "study.png")
    draw_figure("data_size", [out / "data_size.png"], table=out / "verdict.csv")
    draw_figure("learning_curves", [out / "learning_curves.png"], runs=runs)
    log.info("criterion:\n%s", tables["criterion"].to_string(index=False))
