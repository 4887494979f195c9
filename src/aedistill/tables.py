"""The tidy tables that join per-model files: ``tables/models.csv``, ``tables/histories.csv``
and ``tables/efficiency.csv`` (paths: :mod:`aedistill.paths`), and the columns of each
model's ``history.csv``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from aedistill.io import read_json, write_csv
from aedistill.paths import model_key

#: Columns of ``history.csv`` (one row per epoch; errors in eV/atom and eV/Å, ε in eV).
HISTORY_COLUMNS = [
    "epoch",
    "lr",
    "w_E",
    "w_F",
    "w_A",
    "train_e_rmse",
    "train_f_rmse",
    "train_f_mae",
    "valid_e_rmse",
    "valid_f_rmse",
    "valid_f_mae",
    "train_eps_rmse",
    "valid_eps_rmse",
    "wall_s",
    "valid_loss",
]
#: Columns of ``tables/efficiency.csv`` before the accuracy columns of models.csv.
EFFICIENCY_COLUMNS = [
    "role",
    "arch",
    "seed",
    "n_weights",
    "device",
    "threads",
    "torch_version",
    "kernel",
    "calculator",
    "n_atoms",
    "time_per_step_per_atom_s",
    "time_per_step_per_atom_iqr_s",
    "drift_meV_per_atom_ps",
    "max_atoms",
    "bytes_per_atom",
    "memory_method",
    "lammps_time_per_step_per_atom_s",
    "cpu_model",
]


def summarize_models(
    metrics_paths: Sequence[str | os.PathLike[str]],
    history_paths: Sequence[str | os.PathLike[str]],
    models_csv: str | os.PathLike[str],
    histories_csv: str | os.PathLike[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model (``tables/models.csv``) and all learning curves (``histories.csv``)."""
    columns = [
        "run", "role", "arch", "atom_layers", "width", "sensitivities", "seed", "n_weights",
        "epochs", "best_epoch", "train_time_s", "test_e_rmse", "test_e_mae", "test_f_rmse",
        "test_f_mae", "test_eps_rmse", "test_eps_true_rmse", "train_e_rmse", "train_f_rmse",
    ]  # fmt: skip
    rows = [json.loads(Path(p).read_text()) for p in metrics_paths]
    models = pd.DataFrame(rows)
    extra = [c for c in models.columns if c not in columns]
    models = models.reindex(columns=columns + extra).sort_values(["role", "arch", "seed"])
    frames = []
    for mp, hp in zip(metrics_paths, history_paths, strict=True):
        m = json.loads(Path(mp).read_text())
        h = pd.read_csv(hp)
        h.insert(0, "seed", m["seed"])
        h.insert(0, "arch", m["arch"])
        h.insert(0, "role", m["role"])
        frames.append(h)
    hist_cols = ["role", "arch", "seed", *HISTORY_COLUMNS]
    histories = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=hist_cols)
    write_csv(models_csv, models)
    write_csv(histories_csv, histories[hist_cols])
    return models, histories


def efficiency_table(
    timing_files, memory_files, models_csv, lammps_timing_files=(), run: str | None = None
):
    """``tables/efficiency.csv``: one row per timed model, joined with models.csv accuracy.

    ``lammps_time_per_step_per_atom_s`` comes from the LAMMPS stage's timing files (NaN for
    models without one, or when the stage is disabled: pass no files).
    """
    rows = {}
    for f in timing_files:
        t = read_json(f)
        key = (t["role"], t["arch"], int(t["seed"]))
        rows[key] = {c: t.get(c) for c in EFFICIENCY_COLUMNS if c in t}
    for f in memory_files:
        m = read_json(f)
        key = (m["role"], m["arch"], int(m["seed"]))
        row = rows.setdefault(key, {"role": key[0], "arch": key[1], "seed": key[2]})
        row["max_atoms"] = m.get("max_atoms")
        row["bytes_per_atom"] = m.get("bytes_per_atom")
        row["memory_method"] = m.get("memory_method")
    for row in rows.values():
        row["lammps_time_per_step_per_atom_s"] = float("nan")
    for f in lammps_timing_files:
        key = model_key(f)
        if key in rows:
            rows[key]["lammps_time_per_step_per_atom_s"] = float(
                read_json(f)["time_per_step_per_atom_s"]
            )
    df = pd.DataFrame(list(rows.values()), columns=EFFICIENCY_COLUMNS)
    df["seed"] = df["seed"].astype(int)
    acc = pd.read_csv(models_csv)
    keys = ["role", "arch", "seed"]
    extra = [c for c in acc.columns if c not in df.columns or c in keys]
    df = df.merge(acc[extra], on=keys, how="left", validate="one_to_one")
    if run is not None:
        if "run" in df.columns:
            df["run"] = df["run"].fillna(run)
        else:
            df.insert(0, "run", run)
    return df.sort_values(keys, kind="stable").reset_index(drop=True)
