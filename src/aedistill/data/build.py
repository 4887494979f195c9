"""Build the canonical dataset from the configured source, validate it, write it + the split."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aedistill.data.canonical import Dataset, save_dataset, validate_dataset
from aedistill.data.split import make_split, save_split
from aedistill.errors import UserInputError
from aedistill.io import write_json

log = logging.getLogger(__name__)


def build_dataset(config: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Dataset:
    """Dispatch on ``dataset.source``; every source returns a canonical :class:`Dataset`."""
    source = config["dataset"]["source"]
    if source == "emt":
        from aedistill.data.emt import build_emt_dataset

        return build_emt_dataset(config)
    if source == "meam":
        from aedistill.data.meam import build_meam_dataset

        return build_meam_dataset(config)
    if source == "ani-al":
        from aedistill.data.ani_al import build_ani_al_dataset

        return build_ani_al_dataset(config, cache_dir)
    if source == "ani-al-model":
        from aedistill.data.ani_al_model import build_ani_al_model_dataset

        return build_ani_al_model_dataset(config, cache_dir)
    if source == "extxyz":
        from aedistill.data.extxyz import read_labelled_file

        return read_labelled_file(config["dataset"]["path"])
    raise UserInputError(f"dataset.source: unknown source {source!r}")


#: sources whose configurations come from aedistill.data.generate (dataset.generate)
GENERATED_SOURCES = ("emt", "meam", "ani-al-model")


def n_train_only(config: Mapping[str, Any]) -> int:
    """How many of the last configurations train only: the compressed cells of
    ``dataset.generate.n_compressed`` (generated last; absent = 0). ani-al-model may drop
    out-of-domain configurations; the last ``n_compressed`` still train only."""
    if config["dataset"]["source"] not in GENERATED_SOURCES:
        return 0
    return int(config["dataset"]["generate"].get("n_compressed") or 0)


def download_source(config: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> list[Path]:
    """Fetch what ``dataset.source`` needs from the internet into ``cache_dir`` and check it
    (the workflow runs this as a local job on the submit host, which has internet where
    compute nodes may not); offline sources need nothing. Returns the fetched paths."""
    source = config["dataset"]["source"]
    if source == "ani-al":
        from aedistill.data.ani_al import fetch_archive

        return [fetch_archive(config["dataset"]["ani_al"], cache_dir)]
    if source == "ani-al-model":
        from aedistill.data.ani_al_model import model_files, settings_of

        return [model_files(settings_of(config), cache_dir)]
    return []


def summarize(ds: Dataset) -> dict[str, Any]:
    n = ds.n_atoms
    return {
        "source": ds.source,
        "n_configurations": ds.n_conf,
        "n_atoms_min": int(n.min()),
        "n_atoms_max": int(n.max()),
        "n_atoms_total": int(n.sum()),
        "energy_per_atom_eV_min": float((ds.energy / n).min()),
        "energy_per_atom_eV_max": float((ds.energy / n).max()),
        "max_abs_force_eV_per_A": float(np.abs(ds.forces).max()),
        "has_atom_energies": ds.atom_energies is not None,
        **ds.info,
    }


def run(
    config: Mapping[str, Any],
    dataset_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
) -> None:
    """Build, validate and write dataset, split and summary (nothing is written on error)."""
    ds = build_dataset(config, cache_dir)
    where = config["dataset"]["path"] or f"dataset source {config['dataset']['source']}"
    validate_dataset(ds, str(where), config["dataset"]["species"])
    if ds.atom_energies is not None:
        sums = ds.atom_energies.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - ds.energy) > 1e-6 * np.maximum(1, ds.n_atoms))
        if bad.size:
            raise UserInputError(
                f"{where}: configuration {bad[0]}: per-atom energies sum to "
                f"{sums[bad[0]]:.6f} eV, energy is {ds.energy[bad[0]]:.6f} eV"
            )
    s = config["dataset"]["split"]
    split = make_split(
        ds.n_conf,
        s["train"],
        s["valid"],
        s["test"],
        s["seed"],
        s.get("train_subset", 1.0),
        train_only=n_train_only(config),
    )
    summary = summarize(ds) | {k: len(v) for k, v in split.as_dict().items()}
    summary |= {"train_subset": split.train_subset, "n_train_full": split.n_train_full}
    log.info("dataset: %s", summary)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    save_dataset(dataset_path, ds)
    save_split(split_path, split, ds.n_conf, s["seed"])
    write_json(summary_path, summary)
