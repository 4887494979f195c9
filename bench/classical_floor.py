"""Before/after and the classical floor: time per atom-step of hippynn's calculator, the fast
calculator and asap3 EMT on the same fcc Al cell, for the smallest student and the teacher.

    OMP_NUM_THREADS=1 .venv/bin/python bench/classical_floor.py [--supercell 6] [--steps 20]

Prints µs per atom-step and ratios to EMT (goal for the smallest student: fast ≤ 20× EMT;
issue 28: ≤ 3× at 864 atoms, docs/record.md).
Rounds alternate the calculators and the median over rounds is reported, so that a load
change on a shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import SMALLEST, TEACHER, bare_loop, calculator, us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supercell", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--archs", nargs="+", default=[SMALLEST, "L1-W16-S8", TEACHER])
    ap.add_argument("--no-reference", action="store_true", help="skip hippynn's calculator")
    a = ap.parse_args()
    kinds = [("emt", None)]
    for slug in a.archs:
        if not a.no_reference:
            kinds.append(("hippynn", slug))
        kinds.append(("fast", slug))
    calcs = {k: calculator(k[0], k[1]) for k in kinds}
    times: dict = {k: [] for k in kinds}
    for _ in range(a.rounds):
        for k in kinds:
            steps = a.steps * (20 if k[0] == "emt" else 1)
            times[k].append(bare_loop(calcs[k], a.supercell, steps))
    med = {k: float(np.median(v)) for k, v in times.items()}
    emt = med[("emt", None)]
    print(f"fcc Al {4 * a.supercell**3} atoms, {a.steps} steps x {a.rounds} rounds (median)")
    print(f"{'asap3 EMT':28s} {us(emt)}   1.0x EMT")
    for slug in a.archs:
        ref = med.get(("hippynn", slug))
        fast = med[("fast", slug)]
        if ref is not None:
            print(f"{'hippynn ' + slug:28s} {us(ref)} {ref / emt:6.1f}x EMT")
        line = f"{'fast    ' + slug:28s} {us(fast)} {fast / emt:6.1f}x EMT"
        if ref is not None:
            line += f"   speed-up {ref / fast:5.1f}x"
        print(line)


if __name__ == "__main__":
    main()
