"""Seconds per epoch and accuracy after a fixed number of epochs, for several batch sizes.

Calibrates the default run's budget: the default trains ~128 configurations, so batch 16
is only 8 optimiser steps per epoch, and every model of the first default run was still
improving at its last epoch. This trains one role/architecture/seed of a finished run's
dataset with each batch size (everything else from the config) and prints, per batch size,
median s/epoch, the valid F-RMSE after ``--epochs`` and the test F-RMSE of the best epoch.

Usage (dataset of a finished default run; one thread, idle machine)::

    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 python bench/epoch_budget.py \\
        --run results/default --role control --arch L1-W8-S4 --epochs 20 --batch-sizes 16 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="results/default", help="finished run directory")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--role", default="control", choices=["teacher", "control"])
    p.add_argument("--arch", default="L1-W8-S4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 4])
    args = p.parse_args()

    import copy
    import logging

    from aedistill.config import load_config
    from aedistill.data.canonical import load_dataset
    from aedistill.data.split import load_split
    from aedistill.training import train_model

    logging.basicConfig(level=logging.WARNING)
    base = load_config(args.config)
    ds = load_dataset(os.path.join(args.run, "data", "dataset.h5"))
    split = load_split(os.path.join(args.run, "data", "split.json"), n_conf=ds.n_conf)
    print(
        f"{args.role} {args.arch} seed {args.seed}: {len(split.train)} train configurations, "
        f"{args.epochs} epochs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    print(f"{'batch':>5} {'steps/ep':>8} {'s/epoch':>8} {'valid F-RMSE':>13} {'test F-RMSE':>12}")
    for bs in args.batch_sizes:
        config = copy.deepcopy(base)
        config["training"]["batch_size"] = bs
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train_model(
                config, args.role, args.arch, args.seed, ds, split, tmp, max_epochs=args.epochs
            )
            wall = time.perf_counter() - t0
        h = res.history
        per_epoch = float(np.median(np.diff(np.concatenate([[0.0], h["wall_s"].to_numpy()]))[1:]))
        steps = -(-len(split.train) // bs)
        print(
            f"{bs:>5} {steps:>8} {per_epoch:>8.2f} {h['valid_f_rmse'].iloc[-1] * 1e3:>10.1f} meV/Å"
            f" {res.metrics['test_f_rmse'] * 1e3:>8.1f} meV/Å   ({wall:.0f} s total)",
            flush=True,
        )


if __name__ == "__main__":
    main()
