"""DFT-quality offline reference: aluminium labelled by the published ANI-Al potential.

The potential is the 8-member ANI ensemble of Smith et al., "Automated discovery of a robust
interatomic potential for aluminum", Nat. Commun. 12, 1257 (2021), trained on the same PBE
DFT data (the ANI-Al dataset) as the teacher–student paper. Its NeuroChem files are
downloaded from GitHub ``atomistic-ml/ani-al`` at the pinned commit :data:`MODEL_COMMIT`,
folder ``model/`` (the repository has no licence: the files are not shipped), and each file
is checked against its git blob id (``ani_al_model.gitblob`` in this package) *before* use;
``dataset.ani_al_model.local_dir`` points at a local copy instead (checked the same way).

Labels, in float64, from the ensemble mean: energy E (eV), forces −∇E (eV/Å) and exact
per-atom energies ε (eV, Σε = E). Energies take the ``ani-al`` source's zero: Hartree → eV,
then ``+ energy_shift_per_atom`` (72 eV) per atom, as in hippynn's ANI-Al example; without
the shift E/atom ≈ −74.5 eV, whose float32 rounding (~4 meV/atom) is as large as the
errors the models are compared on. The members' spread of the total energy flags
configurations outside the potential's training domain (a dimer: up to 0.47 eV; the default
families: ≤ 3.2 meV/atom): configurations whose member standard deviation per atom exceeds
``max_member_std_per_atom`` are **dropped** with a logged count (the run goes on with the
rest; it stops only if none is left), and the spread of every kept configuration is stored
in the canonical dataset (``energy_member_std``).

The configuration families are those of :mod:`aedistill.data.generate` (as for EMT and
MEAM), so the three references differ only in the potential. MD snapshots are driven by the
potential itself by default (``md_driver: model``) or, faster, by EMT (``md_driver: emt``);
see docs/calibration.md for both build times.

Neighbour lists: torchani's ``cell_list`` refuses the 2 × 2 × 2 fcc cells of the default
data (smaller than twice the 7 Å cutoff); ``all_pairs`` handles them with periodic images.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree

from aedistill.data.ani_al import download, git_blob_sha1_of
from aedistill.data.canonical import Dataset, from_atoms_list
from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

MODEL_REPOSITORY = "atomistic-ml/ani-al"
MODEL_COMMIT = "5db4cf050d129ffc3530aacb75d5b4cfb0f41780"
#: the repository folder that holds the model files (manifest paths start with it)
MODEL_FOLDER = "model/"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{MODEL_REPOSITORY}/{MODEL_COMMIT}/"
MODEL_NAME = "model-Al-75"
AEV_PARAMS = "rAl-7.0R_32-5.0A_a8-8.params"
N_MEMBERS = 8
SUM_TOLERANCE_PER_ATOM = 1e-8  # eV; |Σε − E| allowed per atom (float64)


def read_manifest() -> list[tuple[str, str]]:
    """(git blob id, path below ``model/``) of every model file, from the shipped manifest."""
    text = (resources.files("aedistill.data") / "ani_al_model.gitblob").read_text()
    out = []
    for line in text.splitlines():
        if line.strip():
            blob, path = line.split(maxsplit=1)
            if not path.startswith(MODEL_FOLDER):
                raise RuntimeError(f"ani_al_model.gitblob: {path} is not under {MODEL_FOLDER}")
            out.append((blob, path[len(MODEL_FOLDER) :]))
    return out


def _check_file(path: Path, blob: str, key: str) -> None:
    if not path.is_file():
        raise UserInputError(f"{path}: ANI-Al model file missing ({key})")
    got = git_blob_sha1_of(path)
    if got != blob:
        raise UserInputError(
            f"{path}: git blob id {got} does not match {blob} of {MODEL_REPOSITORY}@"
            f"{MODEL_COMMIT[:10]} ({key}); the file is corrupt or another version"
        )


def model_files(settings: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Path:
    """Directory holding ``model-Al-75/`` with every manifest file checked; downloads if needed.

    ``settings`` is ``dataset.ani_al_model``. With ``local_dir`` set, that copy is checked
    and used (nothing is downloaded); otherwise files missing from
    ``<cache_dir>/ani-al-model`` are downloaded from ``base_url`` (one file at a time,
    written atomically) and every file is checked before it is used.
    """
    manifest = read_manifest()
    if settings.get("local_dir"):
        root = Path(settings["local_dir"])
        for blob, rel in manifest:
            _check_file(root / rel, blob, "dataset.ani_al_model.local_dir")
        return root
    root = Path(cache_dir) / "ani-al-model"
    base = str(settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"
    n_new = 0
    for blob, rel in manifest:
        dest = root / rel
        if dest.is_file() and git_blob_sha1_of(dest) == blob:
            continue
        download(f"{base}{MODEL_FOLDER}{rel}", dest, retries=int(settings.get("retries", 3)))
        n_new += 1
        try:
            _check_file(dest, blob, "downloaded from dataset.ani_al_model.base_url")
        except UserInputError:
            dest.unlink(missing_ok=True)  # never leave a wrong file that looks cached
            raise
    log.info("ANI-Al model: %d files checked (%d downloaded) in %s", len(manifest), n_new, root)
    return root


def load_ensemble(root: str | os.PathLike[str]):
    """The 8-member ANI-Al model (torchani ``ANI``, float64) from checked NeuroChem files."""
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    import torchani
    from torchani import neurochem

    d = Path(root) / MODEL_NAME
    try:
        aev, symbols = neurochem.load_aev_computer_and_symbols(
            d / AEV_PARAMS, neighborlist="all_pairs"
        )
        sae = neurochem.load_sae(d / "sae_linfit.dat")
        ensemble = neurochem.load_ensemble(symbols, d / "train", N_MEMBERS)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserInputError(f"{d}: unreadable ANI-Al NeuroChem model ({exc})") from exc
    model = torchani.arch.ANI(symbols, aev, ensemble, sae, periodic_table_index=True)
    return model.double().eval()


class AniAlCalculator(Calculator):
    """ASE calculator: the ANI-Al ensemble mean in float64.

    Properties: ``energy``/``free_energy`` (eV), ``forces`` (eV/Å, −∇E by autograd),
    ``energies`` (per-atom energies ε, eV; Σε = E), ``member_energies`` (total energy of
    each of the 8 members, eV). Energies are shifted by ``energy_shift_per_atom`` eV per
    atom (module docstring). Aluminium only.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "member_energies"]

    def __init__(self, model, energy_shift_per_atom: float = 72.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.shift = float(energy_shift_per_atom)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        import torch

        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        if not np.all(a.numbers == 13):
            raise UserInputError("ANI-Al reference: only aluminium (Z = 13) is supported")
        n = len(a)
        z = torch.as_tensor(a.numbers, dtype=torch.long).unsqueeze(0)
        x = torch.tensor(a.positions, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
        cell = torch.tensor(np.asarray(a.cell[:]), dtype=torch.float64)
        pbc = torch.tensor(np.asarray(a.pbc, dtype=bool))
        kw = {"cell": cell, "pbc": pbc} if a.pbc.any() else {}
        members = self.model.atomic_energies((z, x), ensemble_values=True, **kw).energies
        eps = members[:, 0].mean(0)  # (n,) Hartree
        energy = eps.sum()
        (grad,) = torch.autograd.grad(energy, x)
        eps_ev = eps.detach().numpy() * Hartree + self.shift
        e_ev = float(energy.detach()) * Hartree + self.shift * n
        if abs(eps_ev.sum() - e_ev) > SUM_TOLERANCE_PER_ATOM * n:
            raise RuntimeError(f"ANI-Al: Σε = {eps_ev.sum():.8f} eV ≠ E = {e_ev:.8f} eV")
        self.results = {
            "energy": e_ev,
            "free_energy": e_ev,
            "forces": -grad[0].numpy() * Hartree,
            "energies": eps_ev,
            "member_energies": members[:, 0].sum(-1).detach().numpy() * Hartree + self.shift * n,
        }


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """``dataset.ani_al_model`` (the schema fills the defaults)."""
    return dict(config["dataset"].get("ani_al_model", {}) or {})


def make_calculator(
    config: Mapping[str, Any], cache_dir: str | os.PathLike[str]
) -> AniAlCalculator:
    """The checked (and, if needed, downloaded) ANI-Al ensemble as an ASE calculator."""
    s = settings_of(config)
    model = load_ensemble(model_files(s, cache_dir))
    return AniAlCalculator(model, s.get("energy_shift_per_atom", 72.0))


def build_ani_al_model_dataset(
    config: Mapping[str, Any], cache_dir: str | os.PathLike[str]
) -> Dataset:
    """Generate the configuration families and label them with the ANI-Al ensemble.

    Deterministic from ``dataset.generate.seed``. Out-of-domain configurations (member
    spread above ``max_member_std_per_atom`` eV/atom) are dropped and counted in
    ``Dataset.info``.
    """
    from aedistill.data.generate import generate_configurations

    s = settings_of(config)
    calc = make_calculator(config, cache_dir)
    driver = s.get("md_driver", "model")
    if driver == "emt":
        from aedistill.data.emt import emt_calculator

        md_calc = emt_calculator
    else:
        md_calc = lambda: calc  # noqa: E731 - the potential drives its own MD
    t0 = time.perf_counter()
    frames = generate_configurations(config["dataset"]["generate"], md_calc)
    t_gen = time.perf_counter() - t0
    energies, forces, eps, member_std = [], [], [], []
    for i, atoms in enumerate(frames):
        a = atoms.copy()
        a.calc = calc
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces().copy())
        eps.append(a.get_potential_energies().copy())
        member_std.append(float(np.std(calc.results["member_energies"])))
        if (i + 1) % 40 == 0:
            log.info("ANI-Al labels: %d/%d configurations", i + 1, len(frames))
    t_label = time.perf_counter() - t0 - t_gen
    n_atoms = np.array([len(a) for a in frames])
    spread = np.asarray(member_std) / n_atoms  # eV/atom
    limit = float(s.get("max_member_std_per_atom", 0.01))
    keep = np.flatnonzero(spread <= limit)
    dropped = np.flatnonzero(spread > limit)
    if dropped.size:
        log.warning(
            "ANI-Al: dropped %d of %d configurations outside the potential's domain (member "
            "std > %.4f eV/atom; dataset.ani_al_model.max_member_std_per_atom): indices %s",
            dropped.size,
            len(frames),
            limit,
            dropped.tolist(),
        )
    if keep.size == 0:
        raise UserInputError(
            "dataset.ani_al_model.max_member_std_per_atom: every configuration is outside the "
            f"ANI-Al domain (smallest member std {spread.min():.4f} eV/atom > {limit})"
        )
    ds = from_atoms_list(
        [frames[i] for i in keep],
        [energies[i] for i in keep],
        [forces[i] for i in keep],
        [eps[i] for i in keep],
        source="ani-al-model",
    )
    ds.energy_member_std = np.asarray(member_std)[keep]
    ds.info = {
        "md_driver": driver,
        "n_out_of_domain_dropped": int(dropped.size),
        "max_member_std_per_atom_eV": limit,
        "member_std_per_atom_eV_median": float(np.median(spread[keep])),
        "member_std_per_atom_eV_max": float(spread[keep].max()),
        "generate_seconds": round(t_gen, 1),
        "label_seconds": round(t_label, 1),
        "model": f"{MODEL_REPOSITORY}@{MODEL_COMMIT}/{MODEL_FOLDER}{MODEL_NAME}",
    }
    log.info("ANI-Al model reference: %s", ds.info)
    return ds
