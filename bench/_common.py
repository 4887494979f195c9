"""Shared helpers of the efficiency benches: untrained models of given sizes, bare MD loops.

Weights do not change speed or memory, so the benches build untrained models directly and run
without the pipeline. Run benches with ``OMP_NUM_THREADS=1`` (as the timing rule does) on an
otherwise idle machine; every ratio a bench prints is measured within one run.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

TEACHER = "L4-W128-S40"
SMALLEST = "L1-W8-S4"


def build(slug: str, seed: int = 0, l_max: int = 1):
    """(spec, TrainingGraph) of an untrained model of architecture ``slug``."""
    from aedistill import models
    from aedistill.arch import Arch

    spec = models.ModelSpec(arch=Arch.from_slug(slug), species=(13,), l_max=l_max)
    return spec, models.build_training_graph(spec, seed)


def save(slug: str, directory, seed: int = 0) -> str:
    from aedistill import models

    spec, g = build(slug, seed)
    path = os.path.join(str(directory), f"{slug}.pt")
    models.save_model(path, spec, g)
    return path


def calculator(kind: str, slug: str):
    """``fast`` (aedistill.fastcalc), ``hippynn`` (HippynnCalculator, float32) or ``emt`` (asap3)."""
    if kind == "emt":
        from asap3 import EMT

        return EMT()
    _, g = build(slug)
    if kind == "fast":
        from aedistill.fastcalc import FastHipnnCalculator

        return FastHipnnCalculator.from_modules(g.modules)
    if kind == "hippynn":
        import ase.units
        from hippynn.interfaces.ase_interface import HippynnCalculator

        return HippynnCalculator(g.energy, en_unit=ase.units.eV)
    raise ValueError(kind)


def bare_loop(
    calc, supercell: int, steps: int, warmup: int = 5, temperature: float = 300.0
) -> float:
    """Seconds per step per atom of a plain ASE VelocityVerlet loop (no observers)."""
    import ase.units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from aedistill.md import fcc_al

    atoms = fcc_al(supercell)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(0))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=ase.units.fs)
    dyn.run(warmup)
    t0 = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - t0) / steps / len(atoms)


def us(x: float) -> str:
    return f"{x * 1e6:8.2f} µs"
