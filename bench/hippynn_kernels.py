"""hippynn's custom kernels on the CPU: one force evaluation of hippynn's ASE calculator with
``HIPPYNN_USE_CUSTOM_KERNELS`` = each given value, each in a fresh process (hippynn reads it
once, at import). The reason aedistill.device sets ``_pytorch_raw`` for CPU jobs only.

    OMP_NUM_THREADS=1 python bench/hippynn_kernels.py --archs L1-W8-S4 L2-W64-S20 \\
        --kernels _pytorch_raw numba --supercell 4

Prints, per architecture and kernel, the median of 7 evaluations after 2 warm-up ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = "--child"


def child(arch: str, supercell: int) -> None:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from hippynn import custom_kernels

    from aedistill import models
    from aedistill.arch import Arch
    from aedistill.md import fcc_al, make_timing_calculator

    spec = models.ModelSpec(arch=Arch.from_slug(arch), species=(13,))
    path = Path(tempfile.mkdtemp()) / "m.pt"
    models.save_model(path, spec, models.build_training_graph(spec, 0))
    calc, _ = make_timing_calculator(path, calculator="hippynn", device="cpu")
    atoms = fcc_al(supercell)
    atoms.rattle(0.05, seed=0)
    atoms.calc = calc

    def evaluate() -> float:
        calc.results = {}
        atoms.positions += 1e-4
        t0 = time.perf_counter()
        atoms.get_forces()
        return time.perf_counter() - t0

    evaluate(), evaluate()
    times = sorted(evaluate() for _ in range(7))
    active = custom_kernels.CUSTOM_KERNELS_ACTIVE
    print(f"{arch:<12} {active:<13} {len(atoms):>6} atoms  {times[3] * 1e3:8.1f} ms per force call")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["L1-W8-S4", "L2-W64-S20"])
    p.add_argument("--kernels", nargs="+", default=["_pytorch_raw", "numba"])
    p.add_argument("--supercell", type=int, default=4)
    args = p.parse_args()
    for arch in args.archs:
        for kernels in args.kernels:
            env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": kernels}
            cmd = [sys.executable, __file__, CHILD, arch, str(args.supercell)]
            subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
