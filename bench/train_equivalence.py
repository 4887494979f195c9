"""Test errors after training: a per-model baseline vs the fast stacked engine, same seeds.

Trains ``--seeds`` controls of ``--arch`` for ``--epochs`` epochs on the default EMT data
with :func:`aedistill.training.train_model` on ``--baseline-engine`` (one model at a time;
default ``hippynn``: hippynn's loop; ``fast``: the fast engine as a stack of one) and with
:func:`aedistill.training.train_stack_job` (one stack). Same initial weights per seed; with
hippynn the batch orders differ (global RNG vs the stack's ``order_seed``), so the numbers
agree to training noise, not to rounding. Prints test F-RMSE / E-RMSE per seed, mean ± sd, and the
CPU seconds of both (setup and test evaluation included).

Usage::

    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 \\
        python bench/train_equivalence.py --arch L1-W8-S4 --seeds 4 --epochs 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="L1-W8-S4")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--cache", default="/tmp/aedistill-default-emt.h5")
    ap.add_argument("--baseline-engine", choices=["hippynn", "fast"], default="hippynn")
    args = ap.parse_args()

    import logging

    from train_throughput import default_data, with_engine  # same directory (a script)

    from aedistill.training import JobModel, train_model, train_stack_job

    logging.basicConfig(level=logging.WARNING)
    config, ds, split = default_data(args.cache)
    res = {}
    cpu = {}
    base = f"{args.baseline_engine} per-model"
    stack = "fast stack"
    with tempfile.TemporaryDirectory() as d:
        t0 = time.process_time()
        res[base] = [
            train_model(
                with_engine(config, args.baseline_engine),
                "control",
                args.arch,
                s,
                ds,
                split,
                Path(d) / f"t{s}",
                max_epochs=args.epochs,
            ).metrics
            for s in range(args.seeds)
        ]
        cpu[base] = time.process_time() - t0
        t0 = time.process_time()
        jobs = [JobModel("control", s, Path(d) / f"n{s}") for s in range(args.seeds)]
        res[stack] = [
            r.metrics
            for r in train_stack_job(config, args.arch, jobs, ds, split, max_epochs=args.epochs)
        ]
        cpu[stack] = time.process_time() - t0
    print(f"control {args.arch}, {args.seeds} seeds, {args.epochs} epochs, test split")
    for name, ms in res.items():
        f = 1e3 * np.array([m["test_f_rmse"] for m in ms])
        e = 1e3 * np.array([m["test_e_rmse"] for m in ms])
        print(
            f"{name:<17} F-RMSE meV/Å {np.round(f, 1).tolist()} mean {f.mean():.1f} sd "
            f"{f.std(ddof=1):.1f} | E-RMSE meV/atom {np.round(e, 2).tolist()} | "
            f"CPU {cpu[name]:.0f} s"
        )


if __name__ == "__main__":
    main()
