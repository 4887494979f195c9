"""The figures of a study (:mod:`aedistill.study` writes its tables): one function per kind
of :data:`aedistill.study.FIGURES`, drawn by :func:`draw_figure`.

``paired_delta``: bars of paired Δ F-RMSE per reference and architecture (largest subset);
``data_size``: paired Δ F-RMSE of the student against control and matched_control vs
train_subset; ``learning_curves``: validation F-RMSE vs epoch, mean over seeds per role, at
train_subset 1 or the largest subset. :func:`run_study` is ``aedistill study``: the tables
and figures of finished runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aedistill.analysis import comparisons
from aedistill.study import (
    FIGURES,
    NON_GRID_ROLES,
    TABLES,
    RunInfo,
    describe_runs,
    write_tables,
)

log = logging.getLogger(__name__)


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
