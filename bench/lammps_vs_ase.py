"""LAMMPS (ML-IAP unified) vs ASE time per MD step per atom for the same model and system.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lammps_vs_ase.py [--archs L1-W8-S4 L1-W16-S8]
        [--supercell 10] [--steps 20]

NVE of a cubic fcc Al supercell (4 n³ atoms; n = 10: 4,000 atoms) at 300 K, 1 fs, one
thread, untrained models (weights do not change speed), the same 1 Å neighbour skin in both. Times per atom-step of: ASE with
aedistill's fast calculator (the pipeline's default) and LAMMPS with the two ML-IAP exports
(``fast`` = aedistill.mliap_model, the default, and ``hippynn`` = hippynn's MLIAPInterface);
prints LAMMPS / ASE ratios (goal of issue 6: LAMMPS ≤ ASE, i.e. ratio ≤ 1, at ≥ 4k atoms).
Requires the LAMMPS module built by scripts/install_lammps.sh.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import bare_loop, calculator, save, us

from aedistill.md import LATTICE_CONSTANT_AL

SKIN = 1.0  # Å, neighbour-list skin of both LAMMPS and the ASE fast calculator (its default)


def lammps_loop(mliap: str, supercell: int, steps: int, warmup: int = 5) -> float:
    """Seconds per step per atom of LAMMPS NVE (setup and warm-up excluded)."""
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
                    *mliap_pair_commands(lmp, mliap, ["Al"]),
                    f"neighbor {SKIN} bin",  # the ASE fast calculator's Verlet skin
                    "velocity all create 300 12345 loop geom",
                    "timestep 0.001",
                    "fix 1 all nve",
                    "thermo 0",
                    f"run {warmup}",
                ]
            )
        )
        t0 = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        wall = time.perf_counter() - t0
        return wall / steps / lmp.get_natoms()
    finally:
        lmp.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["L1-W8-S4", "L1-W16-S8", "L2-W64-S20"])
    ap.add_argument("--supercell", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    from aedistill.lammps import export_mliap

    n_atoms = 4 * a.supercell**3
    print(f"{n_atoms} atoms, {a.steps} NVE steps after warm-up, 1 thread; µs per atom-step")
    print(f"{'arch':>12} {'ASE fast':>11} {'LAMMPS fast':>11} {'LAMMPS hippynn':>14}  ratios")
    with tempfile.TemporaryDirectory() as tmp:
        for slug in a.archs:
            t_ase = bare_loop(calculator("fast", slug), a.supercell, a.steps, warmup=2)
            model = save(slug, tmp)
            t_lmp = {}
            for impl in ("fast", "hippynn"):
                mliap = export_mliap(model, f"{tmp}/{slug}.{impl}.mliap.pt", impl)
                t_lmp[impl] = lammps_loop(str(mliap), a.supercell, a.steps)
            print(
                f"{slug:>12} {us(t_ase)} {us(t_lmp['fast'])} {us(t_lmp['hippynn']):>14}  "
                f"LAMMPS fast / ASE = {t_lmp['fast'] / t_ase:.2f}, "
                f"LAMMPS hippynn / ASE = {t_lmp['hippynn'] / t_ase:.2f}"
            )


if __name__ == "__main__":
    main()
