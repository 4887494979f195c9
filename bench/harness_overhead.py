"""Overhead of the timing harness (aedistill.md.run_nve_timing: per-step energy record,
blow-up checks) against a bare ASE VelocityVerlet loop on the same calculator and cell.

    OMP_NUM_THREADS=1 .venv/bin/python bench/harness_overhead.py [--arch L1-W8-S4] [--supercell 6]

Alternates bare and harness runs for several rounds and compares medians; the goal is an
overhead ≤ 5 %.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import SMALLEST, bare_loop, calculator, us

from aedistill.md import TimingSettings, run_nve_timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=SMALLEST)
    ap.add_argument("--supercell", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    calc = calculator("fast", a.arch)
    settings = TimingSettings(
        supercell=a.supercell, warmup_steps=5, steps_per_block=a.steps, blocks=1
    )
    bare, harness = [], []
    for _ in range(a.rounds):
        bare.append(bare_loop(calc, a.supercell, a.steps))
        harness.append(run_nve_timing(calc, settings)["time_per_step_per_atom_s"])
    b, h = float(np.median(bare)), float(np.median(harness))
    print(f"fast {a.arch}, {4 * a.supercell**3} atoms, {a.steps} steps x {a.rounds} rounds")
    print(f"bare ASE loop {us(b)}\nharness       {us(h)}\noverhead      {100 * (h / b - 1):+.1f} %")


if __name__ == "__main__":
    main()
