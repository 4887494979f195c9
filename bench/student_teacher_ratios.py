"""Student/teacher time and memory ratios over a few architectures, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/student_teacher_ratios.py [--supercell 6]

Time: fast calculator, bare ASE loop, median of rounds (alternating models). Memory: peak RSS
of one force evaluation over the warm baseline, fitted over three sizes, each size in a fresh
process (aedistill.memory, the CPU method of the pipeline). Ratios are model / teacher.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from _common import TEACHER, bare_loop, calculator, save, us

from aedistill.memory import fit_memory, measure_cpu_point


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--archs", nargs="+", default=["L1-W8-S4", "L1-W16-S8", "L2-W32-S16", "L2-W64-S20"]
    )
    ap.add_argument("--supercell", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-supercells", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--calculator", default="fast", choices=["fast", "hippynn"])
    a = ap.parse_args()
    slugs = [TEACHER, *a.archs]
    calcs = {s: calculator(a.calculator, s) for s in slugs}
    times = {s: [] for s in slugs}
    for _ in range(a.rounds):
        for s in slugs:
            times[s].append(bare_loop(calcs[s], a.supercell, a.steps))
    t = {s: float(np.median(v)) for s, v in times.items()}
    mem = {}
    with tempfile.TemporaryDirectory() as d:
        for s in slugs:
            path = save(s, d)
            pts = [measure_cpu_point(path, n, a.calculator) for n in a.memory_supercells]
            mem[s], _ = fit_memory([p["n_atoms"] for p in pts], [p["delta_bytes"] for p in pts])
    print(
        f"{a.calculator} calculator, {4 * a.supercell**3} atoms; memory fit over supercells {a.memory_supercells}"
    )
    print(
        f"{'arch':14s} {'time/atom-step':>16s} {'time ratio':>10s} {'bytes/atom':>11s} {'mem ratio':>9s}"
    )
    for s in slugs:
        print(
            f"{s:14s} {us(t[s]):>16s} {t[s] / t[TEACHER]:10.3f} {mem[s]:11.0f} {mem[s] / mem[TEACHER]:9.3f}"
        )


if __name__ == "__main__":
    main()
