"""Epoch time of the pipeline's training vs a minimal raw hippynn training loop.

Both train the same HIPNN (``--arch``) on the same EMT aluminium configurations with pairs
precomputed, Adam, the same batch size, and one validation pass per epoch:

* raw: hippynn's own ``Database`` + ``setup_and_train`` with a plain E + F loss
  (hippynn's ANI-aluminium example, trimmed);
* pipeline: :func:`aedistill.training.train_model` (eq 2 loss with masked force errors,
  batched pair-cache gather, per-epoch history, checkpoint every epoch).

Prints median seconds per epoch (epochs after the first) and the ratio
``raw / pipeline`` (≥ 0.95 means the pipeline costs at most ~5 % more per epoch).

Usage::

    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 \\
        python bench/train_throughput.py --arch L1-W8-S4 --n-conf 64 --epochs 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def raw_epoch_times(config, arch, ds, split, epochs: int) -> list[float]:
    """Minimal hippynn training (its example pipeline), seconds per epoch."""
    from hippynn.databases import Database
    from hippynn.experiment import SetupParams, setup_and_train
    from hippynn.experiment.assembly import assemble_for_training, precompute_pairs
    from hippynn.graphs import loss

    from aedistill.database import database_arrays
    from aedistill.models import ModelSpec, build_training_graph

    g = build_training_graph(ModelSpec.from_config(config, arch), seed=0)
    e, f = g.energy_per_atom, g.forces
    e_rmse = loss.MSELoss(e.pred, e.true) ** 0.5
    f_rmse = loss.MSELoss(f.pred, f.true) ** 0.5
    train_loss = (
        e_rmse + loss.MAELoss(e.pred, e.true) + 10 * (f_rmse + loss.MAELoss(f.pred, f.true))
    )
    val = {"E-RMSE": e_rmse, "F-RMSE": f_rmse, "Loss": train_loss}
    modules, db_info = assemble_for_training(train_loss, val)
    arrays = database_arrays(ds, None)
    arrays["indices"] = np.arange(ds.n_conf)
    db = Database(
        arrays, db_info["inputs"], db_info["targets"], seed=0, quiet=True, pin_memory=False
    )
    for name in ("train", "valid", "test"):
        db.make_explicit_split(name, torch.as_tensor(getattr(split, name)))
    precompute_pairs(modules.model, db)
    modules, db_info = assemble_for_training(train_loss, val)
    db.inputs = db_info["inputs"]
    bs = int(config["training"]["batch_size"])
    params = SetupParams(
        stopping_key="Loss",
        batch_size=bs,
        eval_batch_size=max(bs, 64),
        max_epochs=epochs,
        learning_rate=1e-3,
        device=torch.device("cpu"),
        fraction_train_eval=min(1.0, max(0.1, 50.0 / len(split.train))),
    )
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d):
        with contextlib.redirect_stdout(io.StringIO()):
            tracker = setup_and_train(modules, db, params, store_best=False)
    return list(tracker.epoch_times)


def pipeline_epoch_times(config, arch, ds, split, epochs: int) -> list[float]:
    from aedistill.training import train_model

    with tempfile.TemporaryDirectory() as d:
        r = train_model(config, "control", arch, 0, ds, split, d, max_epochs=epochs)
    wall = r.history.wall_s.to_numpy()
    return list(np.diff(np.concatenate([[0.0], wall])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="L1-W8-S4")
    ap.add_argument("--n-conf", type=int, default=64)
    ap.add_argument(
        "--repeat", type=int, default=2, help="fcc cubic supercell repeat (2 → 32 atoms)"
    )
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from aedistill.arch import Arch
    from aedistill.config import validate_config
    from aedistill.data.emt import rattled_fcc_emt
    from aedistill.data.split import make_split

    config = validate_config({"training": {"batch_size": args.batch_size}})
    arch = Arch.from_slug(args.arch)
    ds = rattled_fcc_emt(args.n_conf, repeat=args.repeat, rattle=0.1, lattice_jitter=0.01)
    split = make_split(ds.n_conf, 0.8, 0.1, 0.1, seed=0)
    t0 = time.perf_counter()
    raw = raw_epoch_times(config, arch, ds, split, args.epochs)
    t1 = time.perf_counter()
    pipe = pipeline_epoch_times(config, arch, ds, split, args.epochs)
    t2 = time.perf_counter()
    r_med, p_med = float(np.median(raw[1:])), float(np.median(pipe[1:]))
    print(
        f"arch {arch.slug}, {ds.n_conf} configurations x {int(ds.n_atoms[0])} atoms, "
        f"batch {args.batch_size}, threads {torch.get_num_threads()}, "
        f"kernels {os.environ.get('HIPPYNN_USE_CUSTOM_KERNELS')}, torch {torch.__version__}"
    )
    print(
        f"raw hippynn : {r_med:.3f} s/epoch  (epochs {np.round(raw, 3).tolist()}, total {t1 - t0:.1f} s)"
    )
    print(
        f"pipeline    : {p_med:.3f} s/epoch  (epochs {np.round(pipe, 3).tolist()}, total {t2 - t1:.1f} s)"
    )
    print(f"throughput ratio raw/pipeline = {r_med / p_med:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
