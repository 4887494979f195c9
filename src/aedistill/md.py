"""ASE NVE timing of a model: time per MD step per atom, NVE energy drift, recorded context.

Protocol (one measurement = one fresh process, e.g. one Snakemake job): a cubic fcc Al
supercell (``efficiency.supercell``), Maxwell–Boltzmann velocities at
``efficiency.temperature`` (seeded, zero total momentum), ASE ``VelocityVerlet`` at
``efficiency.timestep`` fs. ``warmup_steps`` are run first and not timed (JIT compilation,
first neighbour list, allocator warm-up). Then ``blocks`` blocks of ``steps_per_block`` steps
are timed with ``time.perf_counter``; the reported time per step per atom is the median over
blocks, the spread their interquartile range. The total energy (potential + kinetic) of every
step after the warm-up is recorded from the calculator's results (no extra evaluation) and a
linear fit gives the NVE drift in meV/atom/ps.

An MD that blows up (non-finite energy, total energy jumping by more than
``blowup_energy_jump`` eV/atom from the start, or two atoms closer than ``min_distance`` Å at
the end of a block) raises :class:`MDBlowUpError` naming the step.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LATTICE_CONSTANT_AL = 4.05  # Å, fcc Al (same as the EMT dataset default)


class MDBlowUpError(RuntimeError):
    """The NVE trajectory became unphysical (the model is not usable for MD there)."""


@dataclass(frozen=True)
class TimingSettings:
    supercell: int = 6
    temperature: float = 300.0
    timestep: float = 1.0
    warmup_steps: int = 5
    steps_per_block: int = 10
    blocks: int = 3
    seed: int = 0
    lattice_constant: float = LATTICE_CONSTANT_AL
    blowup_energy_jump: float = 0.5  # eV/atom
    min_distance: float = 1.0  # Å

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TimingSettings:
        e = config["efficiency"]
        return cls(
            supercell=int(e["supercell"]),
            temperature=float(e["temperature"]),
            timestep=float(e["timestep"]),
            warmup_steps=int(e["warmup_steps"]),
            steps_per_block=int(e["steps_per_block"]),
            blocks=int(e["blocks"]),
            seed=int(e.get("velocity_seed", 0)),
            lattice_constant=float(config["dataset"]["generate"]["lattice_constant"]),
        )


def fcc_al(supercell: int, lattice_constant: float = LATTICE_CONSTANT_AL):
    """Cubic fcc Al supercell with 4 n³ atoms, periodic."""
    from ase.build import bulk

    return bulk("Al", "fcc", a=lattice_constant, cubic=True).repeat(int(supercell))


def machine_info() -> dict[str, Any]:
    """Host, CPU model, library versions and the settings that change speed."""
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.system()} {platform.machine()}",
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "kernel": os.environ.get("HIPPYNN_USE_CUSTOM_KERNELS", "default"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    for mod in ("hippynn", "ase", "numba", "numpy"):
        try:
            info[f"{mod}_version"] = __import__(mod).__version__
        except ImportError:
            info[f"{mod}_version"] = None
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def min_distance(atoms, below: float) -> float:
    """Smallest interatomic distance if some pair is closer than ``below``, else ``inf``."""
    from aedistill.fastcalc import half_pairs

    pi, pj, shifts = half_pairs(atoms.positions, atoms.cell.array, atoms.pbc, below)
    if len(pi) == 0:
        return float("inf")
    r = atoms.positions[pj] + shifts @ atoms.cell.array - atoms.positions[pi]
    return float(np.sqrt((r**2).sum(1)).min())


def iqr(values) -> float:
    q75, q25 = np.percentile(np.asarray(values, dtype=float), [75, 25])
    return float(q75 - q25)


def drift_meV_per_atom_ps(times_fs, total_energies_eV, n_atoms: int) -> float:
    """Slope of a least-squares line through E_tot/N (meV/atom) against time (ps)."""
    t = np.asarray(times_fs, dtype=float) / 1000.0
    e = np.asarray(total_energies_eV, dtype=float) / n_atoms * 1000.0
    if len(t) < 2:
        return float("nan")
    slope, _ = np.polyfit(t, e, 1)
    return float(slope)


def run_nve_timing(
    calc, settings: TimingSettings, atoms=None, device: str = "cpu"
) -> dict[str, Any]:
    """Time NVE velocity Verlet with ``calc``; returns the timing record (see module doc)."""
    import ase.units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    if atoms is None:
        atoms = fcc_al(settings.supercell, settings.lattice_constant)
    n = len(atoms)
    MaxwellBoltzmannDistribution(
        atoms, temperature_K=settings.temperature, rng=np.random.default_rng(settings.seed)
    )
    Stationary(atoms)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=settings.timestep * ase.units.fs)

    e_start = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    if not np.isfinite(e_start):
        raise MDBlowUpError(f"non-finite energy at step 0 ({n} atoms)")
    record = {"step": [], "etot": []}

    cached = isinstance(getattr(calc, "results", None), dict)

    def observe() -> None:
        # energy of the current step from the calculator's cache: no extra evaluation
        epot = calc.results["energy"] if cached else atoms.get_potential_energy()
        etot = float(epot) + atoms.get_kinetic_energy()
        step = dyn.nsteps
        if not np.isfinite(etot) or abs(etot - e_start) / n > settings.blowup_energy_jump:
            raise MDBlowUpError(
                f"MD blew up at step {step}: total energy {etot / n:.4f} eV/atom vs "
                f"{e_start / n:.4f} at the start (limit ±{settings.blowup_energy_jump} eV/atom)"
            )
        record["step"].append(step)
        record["etot"].append(etot)

    dyn.attach(observe, interval=1)

    def check_geometry() -> None:
        d = min_distance(atoms, settings.min_distance)
        if d < settings.min_distance:
            raise MDBlowUpError(
                f"MD blew up by step {dyn.nsteps}: two atoms {d:.3f} Å apart "
                f"(< {settings.min_distance} Å)"
            )

    if settings.warmup_steps:
        dyn.run(settings.warmup_steps)
        check_geometry()
    sync = _cuda_sync if device.startswith("cuda") else (lambda: None)
    block_times = []
    for _ in range(settings.blocks):
        sync()
        t0 = time.perf_counter()
        dyn.run(settings.steps_per_block)
        sync()
        block_times.append(time.perf_counter() - t0)
        check_geometry()
    per_atom_step = np.asarray(block_times) / (settings.steps_per_block * n)
    steps = np.asarray(record["step"])
    keep = steps > settings.warmup_steps
    drift = drift_meV_per_atom_ps(
        steps[keep] * settings.timestep, np.asarray(record["etot"])[keep], n
    )
    return {
        "n_atoms": n,
        "time_per_step_per_atom_s": float(np.median(per_atom_step)),
        "time_per_step_per_atom_iqr_s": iqr(per_atom_step),
        "block_times_s": [float(x) for x in block_times],
        "drift_meV_per_atom_ps": drift,
        "energy_start_eV_per_atom": float(e_start / n),
        "device": device,
        "settings": asdict(settings),
    }


def _cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


def make_timing_calculator(model, calculator: str = "fast", device: str = "cpu", skin: float = 1.0):
    """The calculator used for timing: ``fast`` (aedistill.fastcalc, CPU) or ``hippynn``.

    ``fast`` on a CUDA device falls back to hippynn's calculator (the fast kernels are CPU
    numba code); the record says which one ran.
    """
    from aedistill import models

    loaded = models._as_loaded(model, device=device)
    if calculator == "fast" and device == "cpu":
        from aedistill.fastcalc import FastHipnnCalculator

        try:
            return FastHipnnCalculator.from_modules(loaded.modules, skin=skin), "fast"
        except NotImplementedError as exc:
            log.warning("fast calculator unavailable (%s); using hippynn's", exc)
    return models.make_calculator(loaded, device=device), "hippynn"


def time_model(
    model_path,
    config: dict[str, Any],
    role: str,
    arch: str,
    seed: int,
) -> dict[str, Any]:
    """Full timing record of one model file (what ``timing.json`` holds)."""
    import torch

    from aedistill import models

    e = config["efficiency"]
    device = e["device"]
    if device == "cuda" and not torch.cuda.is_available():
        from aedistill.errors import UserInputError

        raise UserInputError("config efficiency.device is 'cuda' but torch sees no CUDA device")
    loaded = models.load_model(model_path, device=device)
    calc, which = make_timing_calculator(
        loaded, calculator=e.get("calculator", "fast"), device=device, skin=e.get("skin", 1.0)
    )
    settings = TimingSettings.from_config(config)
    log.info(
        "timing %s %s seed %s: %d atoms, calculator %s",
        role,
        arch,
        seed,
        4 * settings.supercell**3,
        which,
    )
    rec = run_nve_timing(calc, settings, device=device)
    rec.update(machine_info())
    rec.update(
        {
            "role": role,
            "arch": arch,
            "seed": int(seed),
            "n_weights": models.count_weights(loaded),
            "calculator": which,
            "model": str(model_path),
        }
    )
    log.info(
        "%.3g s per step per atom (IQR %.2g), drift %.3g meV/atom/ps",
        rec["time_per_step_per_atom_s"],
        rec["time_per_step_per_atom_iqr_s"],
        rec["drift_meV_per_atom_ps"],
    )
    return rec
