"""Dataset sources (EMT, MEAM via LAMMPS, ANI-Al, extxyz) and the canonical dataset + split."""

from aedistill.data.canonical import Dataset, load_dataset, save_dataset, validate_dataset
from aedistill.data.split import Split, load_split, make_split, save_split

__all__ = [
    "Dataset",
    "Split",
    "load_dataset",
    "load_split",
    "make_split",
    "save_dataset",
    "save_split",
    "validate_dataset",
]
