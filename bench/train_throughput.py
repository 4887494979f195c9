"""Training throughput: the fast stacked engine against two per-model baselines, named; raw
hippynn vs the pipeline's hippynn engine.

``--mode fast`` (default): model-epochs per CPU-second of three paths,

* ``hippynn per-model``: :func:`aedistill.training.train_model` with ``training.engine:
  hippynn`` (hippynn's loop, one model at a time: the engine before the fast one),
* ``fast per-model``: :func:`aedistill.training.train_model` with ``training.engine: fast``
  (the config's default: the fast engine as a stack of one, one job per model), and
* ``fast stack``: :class:`aedistill.fast.StackTrainer` training the grid's models of
  one architecture as one stack (control + student × ``--seeds``; the teacher ensemble's
  ``--teacher-members`` for the teacher architecture; ``training.stack_grid``),

on the default EMT dataset (``config/config.yaml``'s families, cached in ``--cache``), same
config, same batch size, validation and training-subset evaluation every epoch. All paths
run in this process, interleaved per architecture and round; CPU seconds
(``time.process_time``) of epochs 2..E (epoch 1 holds one-off setup). Prints per-epoch costs
and both ratios: ``stack/fast`` (fast stack vs fast per-model: what stacking adds) and
``stack/hippynn`` (fast stack vs hippynn per-model: what the fast engine and stacking add
together).

``--mode raw``: median seconds per epoch of a minimal raw hippynn loop vs the pipeline's
``train_model`` with ``training.engine: hippynn`` (same model and data, pairs precomputed,
Adam, one validation pass per epoch); ``raw / pipeline`` ≥ 0.95 means the pipeline costs at
most ~5 % more per epoch than hippynn's own example loop.

Usage::

    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 \
        python bench/train_throughput.py --mode fast --epochs 3 --rounds 2
    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 \
        python bench/train_throughput.py --mode raw --arch L1-W8-S4 --n-conf 64 --epochs 4
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


def with_engine(config, engine: str):
    """``config`` with ``training.engine`` set to ``engine`` (``fast`` or ``hippynn``)."""
    return {**config, "training": {**config["training"], "engine": engine}}


def pipeline_epoch_times(config, arch, ds, split, epochs: int) -> list[float]:
    """Seconds per epoch of train_model on hippynn's engine (the raw loop's counterpart)."""
    from aedistill.training import train_model

    config = with_engine(config, "hippynn")
    with tempfile.TemporaryDirectory() as d:
        r = train_model(config, "control", arch, 0, ds, split, d, max_epochs=epochs)
    wall = r.history.wall_s.to_numpy()
    return list(np.diff(np.concatenate([[0.0], wall])))


def default_data(cache: str):
    """(config, dataset, split) of ``config/config.yaml`` (dataset cached as HDF5)."""
    from aedistill.config import load_config
    from aedistill.data.canonical import load_dataset, save_dataset
    from aedistill.data.emt import build_emt_dataset
    from aedistill.data.split import make_split

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(root, "config", "config.yaml"))
    if os.path.exists(cache):
        ds = load_dataset(cache)
    else:
        ds = build_emt_dataset(config)
        save_dataset(cache, ds)
    sp = config["dataset"]["split"]
    split = make_split(ds.n_conf, sp["train"], sp["valid"], sp["test"], seed=sp["seed"])
    return config, ds, split


def per_model_epochs(config, engine, role, arch, ds, split, epochs: int) -> list[float]:
    """CPU seconds of epochs 2..E of one train_model run on ``engine`` (checkpoints, history
    included)."""
    from aedistill.training import train_model

    config = with_engine(config, engine)
    marks: list[float] = []
    labels = ds.atom_energies if role == "student" else None
    with tempfile.TemporaryDirectory() as d:
        train_model(
            config,
            role,
            arch,
            0,
            ds,
            split,
            d,
            labels=labels,
            max_epochs=epochs,
            callbacks=[lambda _e: marks.append(time.process_time())],
        )
    return list(np.diff(marks))


def fast_epochs(config, roles_seeds, arch, ds, split, epochs: int) -> list[float]:
    """CPU seconds of epochs 2..E of one stack (all members, evaluation included)."""
    from aedistill.fast import StackSettings, StackTrainer, member_for_role

    members = []
    for role, seed in roles_seeds:
        labels = ds.atom_energies if role == "student" else None
        _, m = member_for_role(config, role, arch, seed, ds, split, labels, max_epochs=epochs)
        members.append(m)
    tr = StackTrainer(members, ds, split, StackSettings.from_config(config, len(split.train)), 0)
    marks = []
    while not tr.finished:
        tr.run_epoch()
        marks.append(time.process_time())
    return list(np.diff(marks))


def run_fast(args) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    config, ds, split = default_data(args.cache)
    config["training"]["termination_patience"] = 10_000  # every model runs all epochs
    teacher = config["teachers"]["arch"]
    teacher_slug = f"L{teacher['atom_layers']}-W{teacher['width']}-S{teacher['sensitivities']}"
    jobs = []
    for arch in args.archs:
        if arch == teacher_slug:
            jobs.append((arch, "teacher", [("teacher", s) for s in range(args.teacher_members)]))
        else:
            rs = [(r, s) for s in range(args.seeds) for r in ("control", "student")]
            jobs.append((arch, "control", rs))
    print(
        f"{ds.n_conf} configurations ({len(split.train)} train, {len(split.valid)} valid), "
        f"{int(ds.n_atoms.min())}-{int(ds.n_atoms.max())} atoms, batch "
        f"{config['training']['batch_size']}, {args.epochs} epochs x {args.rounds} rounds, "
        f"threads {torch.get_num_threads()}, torch {torch.__version__}",
        flush=True,
    )
    paths = ("hippynn", "fast", "stack")  # hippynn per-model, fast per-model, fast stack
    cost: dict[str, dict[str, list[float]]] = {p: {a: [] for a, _, _ in jobs} for p in paths}
    for _ in range(args.rounds):
        for arch, role, rs in jobs:
            for engine in ("hippynn", "fast"):
                cost[engine][arch] += per_model_epochs(
                    config, engine, role, arch, ds, split, args.epochs
                )
            cost["stack"][arch] += fast_epochs(config, rs, arch, ds, split, args.epochs)
    print(
        "CPU s per model-epoch of hippynn per-model (train_model, engine hippynn) and fast "
        "per-model (train_model, engine fast), per stack-epoch of the fast stack; ratios: "
        "model-epochs per CPU-second of the stack over each per-model baseline"
    )
    print(
        f"{'arch':<11} {'models':>6} {'hippynn s':>10} {'fast s':>8} {'stack s':>8} "
        f"{'stack m-ep/CPU-s':>17} {'stack/fast':>11} {'stack/hippynn':>14}"
    )
    for arch, _, rs in jobs:
        h, f, s = (float(np.median(cost[p][arch])) for p in paths)
        m = len(rs)
        print(
            f"{arch:<11} {m:>6} {h:>10.3f} {f:>8.3f} {s:>8.3f} {m / s:>17.3f} "
            f"{m * f / s:>10.1f}x {m * h / s:>13.1f}x",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["fast", "raw"], default="fast")
    ap.add_argument("--archs", nargs="+", default=["L1-W8-S4", "L2-W16-S8", "L2-W64-S20"])
    ap.add_argument("--seeds", type=int, default=4, help="fast: seeds per grid architecture")
    ap.add_argument("--teacher-members", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="fast: interleaved repetitions")
    ap.add_argument("--cache", default="/tmp/aedistill-default-emt.h5")
    ap.add_argument("--arch", default="L1-W8-S4", help="raw: architecture")
    ap.add_argument("--n-conf", type=int, default=64)
    ap.add_argument(
        "--repeat", type=int, default=2, help="fcc cubic supercell repeat (2 → 32 atoms)"
    )
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16, help="raw: batch size")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if args.mode == "fast":
        run_fast(args)
    else:
        run_raw(args)


def run_raw(args) -> None:

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
        f"pipeline (train_model, engine hippynn): {p_med:.3f} s/epoch  (epochs {np.round(pipe, 3).tolist()}, total {t2 - t1:.1f} s)"
    )
    print(
        f"throughput ratio raw hippynn / pipeline (engine hippynn) = {r_med / p_med:.3f}  "
        "(goal >= 0.95)"
    )


if __name__ == "__main__":
    main()
