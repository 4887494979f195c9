"""The liquid-aluminium RDF run in LAMMPS, resumable from restart files.

Cubic fcc Al supercell scaled to the liquid density (:func:`aedistill.lammps.check_rdf_geometry`),
velocities at the melt temperature (``melt_temperature``, default T), NVT melt there, NVT
equilibration at T, NVT production; g(r) is computed in Python from frames taken every
``rdf_every`` production steps (:mod:`aedistill.rdf`). The steps of :func:`run_rdf`: set up
the box (or read it from a restart file), melt and equilibrate (:meth:`_RdfRun.equilibrate`),
produce and time the frames (:meth:`_RdfRun.produce`), write g(r) and the timing record.

On several MPI ranks (``lammps.ranks``: :func:`run_rdf_job` starts ``LAUNCHER -n N python -m
aedistill.mpi rdf ...``, :mod:`aedistill.mpi`) every rank runs :func:`run_rdf`; the frames are
gathered by atom id and rank 0 writes the restart state and the outputs.

Units: LAMMPS ``units metal`` (eV, Å, ps); config times are fs and converted here.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedistill.errors import UserInputError
from aedistill.lammps import (
    AL_MASS,
    check_rdf_geometry,
    gather_by_id,
    lattice_constant_for_density,
    mliap_pair_commands,
    new_lammps,
    world,
)

log = logging.getLogger(__name__)


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
    rank calls it; the frames are gathered and the files written by rank 0 (the other ranks
    return the same timing record and write nothing).
    """
    import torch

    from aedistill.rdf import RdfAccumulator

    s = dict(settings)
    box = check_rdf_geometry(s)
    restart_every = int(s.get("restart_every", 0) or 0)
    rdir = Path(restart_dir) if restart_dir is not None else rdf_restart_dir(rdf_csv)
    torch.set_num_threads(int(threads))
    fingerprint = _fingerprint(s, mliap_path, pair_commands)
    state = _read_restart_state(rdir, fingerprint) if restart_every > 0 else None
    acc = RdfAccumulator(float(s["rdf_rmax"]), int(s["rdf_bins"]))
    lmp = new_lammps(mliap=pair_commands is None, n_atoms=4 * int(s["supercell"]) ** 3)
    try:
        pair = (
            pair_commands
            if pair_commands is not None
            else mliap_pair_commands(lmp, mliap_path, ["Al"])
        )
        rank, n_ranks = world(lmp)
        run = _RdfRun(lmp, s, acc, rdir, fingerprint, restart_every, rank, n_ranks)
        resumed_from = run.set_up(pair, state)
        log.info(
            "RDF run: %d atoms, box %.3f Å, a = %.4f Å (%.4f g/cm³), T = %.0f K, "
            "%d MPI ranks x %d threads",
            run.n_atoms,
            box,
            lattice_constant_for_density(float(s["density"])),
            float(s["density"]),
            float(s["temperature"]),
            n_ranks,
            threads,
        )
        run.equilibrate()
        run.produce(box)
        version = int(lmp.version())
    finally:
        lmp.close()
    timing = _write_outputs(run, s, box, threads, version, resumed_from, rdf_csv, timing_json)
    if not run.root:
        return timing
    if rdir.is_dir():
        shutil.rmtree(rdir)
    log.info("wrote %s and %s", rdf_csv, timing_json)
    return timing


@dataclass
class _RdfRun:
    """One RDF run's LAMMPS instance and what it carries between restart points: the
    absolute LAMMPS step, the timed production wall time (s), the production temperatures
    (K) and the g(r) frames (``acc``; rank 0's under MPI, the other ranks' stay empty)."""

    lmp: Any
    s: dict[str, Any]
    acc: Any
    rdir: Path
    fingerprint: str
    restart_every: int
    rank: int = 0
    n_ranks: int = 1
    step: int = 0
    wall: float = 0.0
    temps: list[float] = field(default_factory=list)
    last_restart: int = 0
    n_atoms: int = 0

    @property
    def root(self) -> bool:
        """Rank 0: the one that keeps the frames and writes the files."""
        return self.rank == 0

    @property
    def dt_ps(self) -> float:
        return float(self.s["timestep"]) / 1000.0

    @property
    def damp(self) -> float:
        return 100 * self.dt_ps

    @property
    def t_melt(self) -> float:
        return float(self.s.get("melt_temperature") or self.s["temperature"])

    @property
    def n_frames_total(self) -> int:
        n_prod, every = int(self.s["production_steps"]), int(self.s["rdf_every"])
        return n_prod // every + (n_prod % every > 0)

    def set_up(self, pair: list[str], state: dict[str, Any] | None) -> int | None:
        """Box, atoms, pair style and velocities, or all of it from the restart point of
        ``state``; returns the step resumed from (None: a fresh start)."""
        s, lmp = self.s, self.lmp
        setup = ["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p"]
        if state is None:
            a = lattice_constant_for_density(float(s["density"]))
            n_cells = int(s["supercell"])
            setup += [
                f"lattice fcc {a!r}",
                f"region box block 0 {n_cells} 0 {n_cells} 0 {n_cells}",
                "create_box 1 box",
                "create_atoms 1 box",
                f"mass 1 {AL_MASS}",
            ]
        else:  # box, atoms, velocities, masses and step count from the restart file
            setup = [setup[0], setup[2], f"read_restart {self.rdir / state['restart_file']}"]
        lmp.commands_string(
            "\n".join(
                [
                    *setup,
                    *pair,
                    f"timestep {self.dt_ps!r}",
                    "thermo_style custom step temp pe press",
                ]
            )
        )
        if state is None:
            seed = int(s.get("velocity_seed", 12345))
            lmp.command(f"velocity all create {self.t_melt!r} {seed} mom yes rot yes dist gaussian")
        else:
            self.step = int(state["step"])
            self.wall, self.temps = float(state["wall_s"]), list(state["temperatures"])
            self.acc.load_state(state["rdf"])
            log.info(
                "resumed from %s at step %d (%d of %d production frames done)",
                self.rdir / state["restart_file"],
                self.step,
                self.acc.n_frames,
                self.n_frames_total,
            )
        self.n_atoms = int(lmp.get_natoms())
        self.last_restart = self.step
        return self.step if state is not None else None

    def restart_point(self) -> None:
        """A restart point when ``restart_every`` steps passed since the last one."""
        if self.restart_every > 0 and self.step - self.last_restart >= self.restart_every:
            _write_restart_point(
                self.lmp,
                self.rdir,
                {
                    "fingerprint": self.fingerprint,
                    "step": self.step,
                    "wall_s": self.wall,
                    "temperatures": self.temps,
                    "rdf": self.acc.state(),
                },
                root=self.root,
            )
            self.last_restart = self.step

    def equilibrate(self) -> None:
        """NVT melt at the melt temperature, then NVT equilibration at T (stages in absolute
        LAMMPS steps: melt [0, m), equilibrate [m, m + e)); a resumed run skips what it did."""
        temp = float(self.s["temperature"])
        stages = [
            ("melt", self.t_melt, int(self.s["melt_steps"])),
            ("equilibrate", temp, int(self.s["equilibration_steps"])),
        ]
        stage_start = 0
        for name, t_target, steps in stages:
            stage_end = stage_start + steps
            if self.step < stage_end:
                self._stage(name, t_target, steps, stage_end)
            stage_start = stage_end

    def _stage(self, name: str, t_target: float, steps: int, stage_end: int) -> None:
        lmp = self.lmp
        t0 = time.perf_counter()
        lmp.command(f"fix nvt all nvt temp {t_target!r} {t_target!r} {self.damp!r}")
        while self.step < stage_end:
            chunk = stage_end - self.step
            if self.restart_every > 0:
                chunk = min(chunk, self.restart_every - (self.step - self.last_restart))
            lmp.command(f"run {chunk}")
            self.step += chunk
            if self.step < stage_end:
                self.restart_point()  # mid-stage: the thermostat's state goes with it
        lmp.command("unfix nvt")
        self.restart_point()  # at a stage end: the next stage starts a fresh thermostat
        log.info(
            "%s: %d steps at %.0f K in %.1f s; T = %.1f K, pe = %.4f eV/atom",
            name,
            steps,
            t_target,
            time.perf_counter() - t0,
            lmp.get_thermo("temp"),
            lmp.get_thermo("pe") / self.n_atoms,
        )

    def produce(self, box: float) -> None:
        """NVT production at T: a g(r) frame every ``rdf_every`` steps, the MD timed."""
        lmp, n_atoms = self.lmp, self.n_atoms
        temp = float(self.s["temperature"])
        every, n_prod = int(self.s["rdf_every"]), int(self.s["production_steps"])
        prod_start = int(self.s["melt_steps"]) + int(self.s["equilibration_steps"])
        lmp.command(f"fix nvt all nvt temp {temp!r} {temp!r} {self.damp!r}")
        lmp.command("run 0")  # setup outside the timed loop
        cell = np.diag([box, box, box])
        report = max(1, n_prod // 10)
        done = self.step - prod_start
        while done < n_prod:
            chunk = min(every, n_prod - done)
            t0 = time.perf_counter()
            lmp.command(f"run {chunk} pre no post no")
            self.wall += time.perf_counter() - t0
            done += chunk
            self.step += chunk
            self.temps.append(lmp.get_thermo("temp"))
            if self.n_ranks > 1:
                x = gather_by_id(lmp, "x", n_atoms)  # collective
            else:
                x = np.array(lmp.numpy.extract_atom("x")[:n_atoms])
            if self.root:
                self.acc.add(x, cell)
            if done % report < chunk or done == n_prod:
                log.info(
                    "production %d/%d steps: T = %.1f K, pe = %.4f eV/atom, %.3g s/step/atom",
                    done,
                    n_prod,
                    self.temps[-1],
                    lmp.get_thermo("pe") / n_atoms,
                    self.wall / done / n_atoms,
                )
            if done < n_prod:
                self.restart_point()


def _write_outputs(
    run: _RdfRun, s, box: float, threads: int, version: int, resumed_from, rdf_csv, timing_json
) -> dict[str, Any]:
    """g(r) (with the even/odd-frame averages: the sampling floor of the RDF errors) and the
    production timing record, written by rank 0 only; every rank returns the record."""
    import pandas as pd
    import torch

    from aedistill.io import write_csv, write_json

    acc, n_prod = run.acc, int(s["production_steps"])
    timing = {
        "n_atoms": run.n_atoms,
        "steps": n_prod,
        "ranks": run.n_ranks,
        "threads": int(threads),
        "wall_s": run.wall,
        "time_per_step_per_atom_s": run.wall / n_prod / run.n_atoms,
        "frames": acc.n_frames,
        "temperature_mean_K": float(np.mean(run.temps)),
        "box_A": box,
        "lammps_version": version,
        "torch_version": torch.__version__,
        "device": "cpu",
        "resumed_from_step": resumed_from,
    }
    if not run.root:
        return timing
    r, g = acc.result()
    table = {"r_A": r, "g": g}
    if acc.n_frames >= 2:
        table["g_even"], table["g_odd"] = acc.halves()
    write_csv(rdf_csv, pd.DataFrame(table))
    write_json(timing_json, timing)
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
