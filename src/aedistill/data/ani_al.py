"""ANI-Al (Smith et al., Nat. Commun. 12, 1257 (2021)): download, verify, extract, read.

The archive ``data/Al-data.tgz`` of the ``atomistic-ml/ani-al`` repository holds HDF5 files in
the ANI "pyanitools" layout (nested groups whose leaves hold ``coordinates`` (Å), ``cell``
(Å), ``energy`` (Hartree), ``force`` (Hartree/Å) and ``species``). It is read with hippynn's
``PyAniDirectoryDB``; energies and forces are converted to eV and eV/Å and, as in hippynn's
ANI-Al example, ``energy_shift_per_atom`` (72 eV) is added per atom.

Downloads are checked (sha256 if configured, else the git blob id) *before* extraction, and
extraction refuses members that would land outside the target directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import Hartree

from aedistill.data.canonical import Dataset
from aedistill.errors import UserInputError
from aedistill.io import atomic_path

log = logging.getLogger(__name__)


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1_of(path: str | os.PathLike[str]) -> str:
    """Git's blob id: SHA-1 of ``b"blob <size>\\0" + content``."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_archive(path: str | os.PathLike[str], sha256: str | None, git_blob_sha1: str | None):
    """Raise :class:`UserInputError` unless the file matches the configured checksum."""
    if sha256:
        got = sha256_of(path)
        if got != sha256.lower():
            raise UserInputError(
                f"{path}: sha256 {got} does not match dataset.ani_al.sha256 {sha256}"
            )
    elif git_blob_sha1:
        got = git_blob_sha1_of(path)
        if got != git_blob_sha1.lower():
            raise UserInputError(
                f"{path}: git blob id {got} does not match dataset.ani_al.git_blob_sha1 {git_blob_sha1}"
            )
    else:
        raise UserInputError(
            "dataset.ani_al: set sha256 or git_blob_sha1; unverified downloads are refused"
        )


def download(url: str, dest: str | os.PathLike[str], retries: int = 3, timeout: float = 60) -> None:
    """Download ``url`` to ``dest`` atomically, retrying with back-off."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            log.info("downloading %s (attempt %d/%d)", url, attempt, retries)
            with urllib.request.urlopen(url, timeout=timeout) as r, atomic_path(dest) as tmp:
                with open(tmp, "wb") as f:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
            return
        except OSError as exc:
            last = exc
            log.warning("download failed: %s", exc)
            time.sleep(min(30, 2**attempt))
    raise UserInputError(f"{url}: download failed after {retries} attempts ({last})")


def safe_extract(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract a tar archive, refusing links and members whose path leaves ``target``."""
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(archive)
    except (tarfile.TarError, OSError) as exc:
        raise UserInputError(f"{archive}: not a readable tar archive ({exc})") from exc
    with tar:
        members = tar.getmembers()
        for m in members:
            dest = (target / m.name).resolve()
            if not dest.is_relative_to(target):
                raise UserInputError(
                    f"{archive}: member {m.name!r} would be written outside {target}"
                )
            if m.issym() or m.islnk() or m.isdev():
                raise UserInputError(f"{archive}: member {m.name!r} is a link or device; refused")
        tar.extractall(target, members=members, filter="data")
    return [target / m.name for m in members if m.isfile()]


def read_ani_directory(
    directory: str | os.PathLike[str],
    energy_shift_per_atom: float = 72.0,
    max_configs: int | None = None,
) -> Dataset:
    """Read all ``*.h5`` files below ``directory`` (pyanitools layout) into a :class:`Dataset`.

    Energies: Hartree → eV, then ``+ energy_shift_per_atom · n_atoms``; forces Hartree/Å → eV/Å.
    """
    import torch
    from hippynn.databases.h5_pyanitools import PyAniDirectoryDB

    directory = Path(directory)
    h5_dirs = sorted({p.parent for p in directory.rglob("*.h5")})
    if not h5_dirs:
        raise UserInputError(f"{directory}: no .h5 files found in the ANI-Al archive")
    keys = ["species", "coordinates", "cell", "energy", "force"]
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # keep float64 through hippynn's reader
    try:
        for d in h5_dirs:
            try:
                db = PyAniDirectoryDB(
                    str(d),
                    inputs=keys[:3],
                    targets=keys[3:],
                    seed=0,
                    quiet=True,
                    allow_unfound=True,
                )
            except (OSError, KeyError, ValueError) as exc:
                raise UserInputError(f"{d}: unreadable ANI-Al HDF5 data ({exc})") from exc
            for k in keys:
                if k not in db.arr_dict:
                    raise UserInputError(f"{d}: ANI-Al data lacks the '{k}' arrays")
                arrays[k].append(np.asarray(db.arr_dict[k]))
    finally:
        torch.set_default_dtype(old)
    n_max = max(a.shape[1] for a in arrays["species"])

    def pad(parts: list[np.ndarray]) -> np.ndarray:
        out = []
        for a in parts:
            w = [(0, 0)] * a.ndim
            w[1] = (0, n_max - a.shape[1])
            out.append(np.pad(a, w))
        return np.concatenate(out)

    species = pad(arrays["species"]).astype(np.int64)
    pos = pad(arrays["coordinates"]).astype(np.float64)
    forces = pad(arrays["force"]).astype(np.float64) * Hartree
    cell = np.concatenate(arrays["cell"]).astype(np.float64).reshape(-1, 3, 3)
    n_atoms = (species > 0).sum(axis=1)
    energy = np.concatenate(arrays["energy"]).astype(np.float64).reshape(-1) * Hartree
    energy = energy + energy_shift_per_atom * n_atoms
    if max_configs is not None:
        sl = slice(0, max_configs)
        species, pos, forces, cell, energy = species[sl], pos[sl], forces[sl], cell[sl], energy[sl]
    pbc = np.ones((len(species), 3), dtype=bool)
    return Dataset(species, pos, cell, pbc, energy, forces, None, source="ani-al")


def fetch_archive(settings: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Path:
    """``<cache_dir>/Al-data.tgz``, downloaded if missing (``settings`` = dataset.ani_al),
    verified either way. A copy placed there beforehand is used as is once it verifies."""
    archive = Path(cache_dir) / "Al-data.tgz"
    if not archive.exists():
        download(settings["url"], archive, retries=settings["retries"])
    verify_archive(archive, settings["sha256"], settings["git_blob_sha1"])
    return archive


def build_ani_al_dataset(config: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Dataset:
    """Download (once, cached in ``cache_dir``), verify, extract and read ANI-Al."""
    a = config["dataset"]["ani_al"]
    cache = Path(cache_dir)
    archive = fetch_archive(a, cache)
    extracted = cache / "extracted"
    if not extracted.exists():
        with atomic_path(extracted) as tmp:  # extract to a temp dir, rename when complete
            tmp.unlink()
            safe_extract(archive, tmp)
    return read_ani_directory(extracted, a["energy_shift_per_atom"], a["max_configs"])
