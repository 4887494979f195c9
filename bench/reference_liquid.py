"""Liquid g(r) of a reference potential itself (EMT, MEAM or the ANI-Al ensemble) vs experiment.

The pipeline's RDF stage compares *trained models* with the 1198 K experiment; this script
gives the same numbers for the potential that labelled their data, so that a model's error
vs experiment can be split into the reference's own error and what training lost. Protocol
of the LAMMPS RDF stage (config defaults): 4 × 4 × 4 fcc cells (256 atoms) expanded to
``--density``, melted and equilibrated at ``--temperature``, g(r) averaged every
``--every`` steps of the production run; here ASE's Langevin thermostat (friction 0.01/fs)
instead of LAMMPS' Nosé–Hoover, time step 1 fs. Prints the g(r) features, the error vs
experiment, and the wall time::

    OMP_NUM_THREADS=1 python bench/reference_liquid.py emt
    OMP_NUM_THREADS=1 python bench/reference_liquid.py ani-al-model --model-dir ../shared/data/ani-al-model
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from aedistill.data.generate import fcc_supercell
from aedistill.lammps import lattice_constant_for_density
from aedistill.rdf import RdfAccumulator, rdf_error_vs_experiment, rdf_features


def calculator(source: str, model_dir: str | None):
    if source == "emt":
        from aedistill.data.emt import emt_calculator

        return emt_calculator()
    if source == "meam":
        from aedistill.data.meam import MeamCalculator

        return MeamCalculator()
    from aedistill.data import ani_al_model as am

    return am.AniAlCalculator(am.load_ensemble(am.model_files({"local_dir": model_dir}, ".")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=["emt", "meam", "ani-al-model"])
    ap.add_argument("--model-dir", default=None, help="ani-al-model: local copy of model/")
    ap.add_argument("--temperature", type=float, default=1200.0)
    ap.add_argument("--density", type=float, default=2.375)
    ap.add_argument("--supercell", type=int, default=4)
    ap.add_argument("--melt", type=int, default=500)
    ap.add_argument("--equilibrate", type=int, default=500)
    ap.add_argument("--production", type=int, default=1000)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    atoms = fcc_supercell(lattice_constant_for_density(a.density), a.supercell)
    atoms.calc = calculator(a.source, a.model_dir)
    rng = np.random.default_rng(a.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=a.temperature, rng=rng)
    dyn = Langevin(atoms, 1.0 * units.fs, temperature_K=a.temperature, friction=0.01, rng=rng)
    dyn.run(a.melt + a.equilibrate)
    acc = RdfAccumulator(7.0, 200)
    for _ in range(a.production // a.every):
        dyn.run(a.every)
        acc.add(atoms.positions, atoms.cell[:])
    r, g = acc.result()
    floor = acc.sampling_floor()  # the error a perfect potential would show with these frames
    f = rdf_features(r, g)
    occupied = r[g > 0]
    print(
        f"{a.source}: {len(atoms)} atoms, {a.temperature:g} K, {a.density} g/cm3, "
        f"{acc.n_frames} frames: first peak {f['first_peak_A']:.3f} Å, first minimum "
        f"{f['first_min_A']:.3f} Å, second peak {f['second_peak_A']:.3f} Å, closest pair "
        f"{occupied.min():.3f} Å, error vs experiment {rdf_error_vs_experiment(r, g):.3f} Å "
        f"(sampling floor ≈ {floor:.3f} Å) "
        f"({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
