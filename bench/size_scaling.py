"""Time per atom-step of the fast calculator at ~1k, 4k, 16k and 32k atoms (should be flat).

    OMP_NUM_THREADS=1 .venv/bin/python bench/size_scaling.py [--arch L1-W8-S4] [--steps 5]

Supercells 6, 10, 16, 20 (864, 4000, 16384, 32000 atoms). Prints each size's time and its
ratio to the smallest size's.
"""

from __future__ import annotations

import argparse

from _common import SMALLEST, bare_loop, calculator, us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=SMALLEST)
    ap.add_argument("--calculator", default="fast", choices=["fast", "hippynn", "emt"])
    ap.add_argument("--supercells", type=int, nargs="+", default=[6, 10, 16, 20])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    calc = calculator(a.calculator, a.arch)
    rows = [(4 * n**3, bare_loop(calc, n, a.steps, warmup=2)) for n in a.supercells]
    t0 = rows[0][1]
    print(f"{a.calculator} {a.arch}: time per atom-step vs size ({a.steps} steps each)")
    for n_atoms, t in rows:
        print(f"{n_atoms:7d} atoms {us(t)}   {t / t0:5.2f}x the {rows[0][0]}-atom value")


if __name__ == "__main__":
    main()
