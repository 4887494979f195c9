"""The paper-protocol study's own tables (docs/study.md part 4): what the verdict tables of
:mod:`aedistill.study` do not say about the protocol variants.

* **Energy share** (the quantity behind H7): per run, role and architecture, the share of the
  energy term in the validation error at the best epoch, w_E·E-RMSE / (w_E·E-RMSE +
  w_F·F-RMSE [+ w_A·ε-RMSE]), from ``histories.csv`` (the RMSE halves of the Lerr terms; the
  energy is the loss's own: E/N under ``loss.energy: per_atom``, E under ``total``).
* **The leak contrast** (H8): for each reference with runs ``<x>-total`` and
  ``<x>-total-leaky``, per architecture and seed, D = (student − matched_control) in the leaky
  run − the same in the own-split run, on test F-RMSE and E-RMSE; paired t-test, Wilcoxon,
  Holm across the architectures. With it, the set-up check: the controls and matched
  controls read nothing the leak changes, so their errors must be equal in both runs
  (``max_abs_control_diff``).

``aedistill protocol STUDY_CONFIG`` writes both into ``results/<study>/tables/`` for the runs
that have finished.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aedistill.analysis import holm, paired_stats, read_models
from aedistill.io import write_csv

#: Suffix of a reference name whose teachers trained on another split (config/study/
#: paper-protocol.yaml), and of the run it is compared with.
LEAKY_SUFFIX = "-leaky"
#: Roles whose errors the leak cannot change (they read no teacher labels).
LEAK_FREE_ROLES = ("control", "matched_control")
LEAK_METRICS = ("test_f_rmse", "test_e_rmse", "train_f_rmse", "train_e_rmse")


def energy_share(histories: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Per role and architecture: the energy term's share of the validation error at each
    model's best epoch (see module docstring), mean and std over seeds, and n."""
    best = models[["role", "arch", "seed", "best_epoch"]]
    h = histories.merge(best, on=["role", "arch", "seed"])
    h = h[h["epoch"] == h["best_epoch"]].copy()
    eps = h["w_A"] * h["valid_eps_rmse"].fillna(0.0)
    e = h["w_E"] * h["valid_e_rmse"]
    h["share"] = e / (e + h["w_F"] * h["valid_f_rmse"] + eps.where(h["w_A"] > 0, 0.0))
    g = h.groupby(["role", "arch"], sort=False)["share"]
    return pd.DataFrame(
        {"n": g.size(), "energy_share_mean": g.mean(), "energy_share_std": g.std(ddof=1)}
    ).reset_index()


def leak_contrast(total: pd.DataFrame, leaky: pd.DataFrame) -> pd.DataFrame:
    """H8 for one reference: per metric and architecture, D = (student − matched_control)
    of the leaky run − that of the own-split run, paired by architecture and seed; Holm
    across the architectures of each metric; ``max_abs_control_diff``: the largest |Δ| of a
    control or matched control between the two runs on that metric (0 if the set-up holds)."""
    keys = ["arch", "seed"]
    rows = []
    for metric in LEAK_METRICS:
        if metric not in total.columns or metric not in leaky.columns:
            continue
        gaps = []
        for models in (total, leaky):
            s = models[models["role"] == "student"][[*keys, metric]]
            m = models[models["role"] == "matched_control"][[*keys, metric]]
            gaps.append(s.merge(m, on=keys, suffixes=("_s", "_m")))
        d = gaps[0].merge(gaps[1], on=keys, suffixes=("_own", "_leaky"))
        d["D"] = (d[f"{metric}_s_leaky"] - d[f"{metric}_m_leaky"]) - (
            d[f"{metric}_s_own"] - d[f"{metric}_m_own"]
        )
        same = total[total["role"].isin(LEAK_FREE_ROLES)].merge(
            leaky[leaky["role"].isin(LEAK_FREE_ROLES)], on=["role", *keys], suffixes=("_o", "_l")
        )
        for arch, g in d.groupby("arch", sort=False):
            st = paired_stats(g["D"])
            ctrl = same[same["arch"] == arch]
            diff = (ctrl[f"{metric}_o"] - ctrl[f"{metric}_l"]).abs()
            rows.append(
                dict(
                    metric=metric,
                    arch=arch,
                    n=st["n"],
                    D_mean=st["mean_diff"],
                    D_std=st["std_diff"],
                    p_ttest=st["p_ttest"],
                    p_wilcoxon=st["p_wilcoxon"],
                    max_abs_control_diff=float(diff.max()) if len(diff) else math.nan,
                )
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm_ttest"] = np.nan
    for _, idx in out.groupby("metric").groups.items():
        out.loc[idx, "p_holm_ttest"] = holm(out.loc[idx, "p_ttest"])
    return out


def protocol_tables(runs: Mapping[str, str | os.PathLike[str]]) -> dict[str, pd.DataFrame]:
    """``energy_share`` and ``leak`` tables of the finished ``runs`` (reference name → run
    directory with ``tables/models.csv`` and ``histories.csv``); runs without tables are
    left out, a leaky run without its own-split partner gives no leak rows."""
    done = {ref: Path(d) for ref, d in runs.items() if (Path(d) / "tables" / "models.csv").exists()}
    models = {ref: read_models(d / "tables" / "models.csv") for ref, d in done.items()}
    shares = []
    for ref, d in done.items():
        h = pd.read_csv(d / "tables" / "histories.csv")
        share = energy_share(h, models[ref])
        share.insert(0, "reference", ref)
        shares.append(share)
    leaks = []
    for ref in done:
        own = ref.removesuffix(LEAKY_SUFFIX)
        if ref.endswith(LEAKY_SUFFIX) and own in done:
            part = leak_contrast(models[own], models[ref])
            part.insert(0, "reference", own)
            leaks.append(part)
    return {
        "energy_share": pd.concat(shares, ignore_index=True) if shares else pd.DataFrame(),
        "leak": pd.concat(leaks, ignore_index=True) if leaks else pd.DataFrame(),
    }


def write_protocol_tables(
    runs: Mapping[str, str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write :func:`protocol_tables` as ``protocol_<name>.csv`` in ``out_dir``."""
    written = {}
    for name, df in protocol_tables(runs).items():
        path = Path(out_dir) / f"protocol_{name}.csv"
        write_csv(path, df)
        written[name] = path
    return written


def study_runs(study_runs: Sequence) -> dict[str, Path]:
    """{reference: run directory} of a planned study (:func:`aedistill.studyplan.plan_study`)."""
    from aedistill.paths import run_dir

    return {r.reference: Path(run_dir(r.name)) for r in study_runs}
