"""Is training bit-identical across x86 CPUs? Emulate another CPU's kernel paths on this one.

The same commit gave the default run's teachers F-RMSE 13.2 / 12.2 meV/Å on one machine and
13.04 / 12.02 on another (issue 25). On one machine a run is deterministic; across CPUs the
float32 training goes through kernels that the CPU selects: torch's ATen kernels (dispatch on
the vector ISA, ``ATEN_CPU_CAPABILITY``), MKL's BLAS (code path per CPU, ``MKL_CBWR``) and the
fast engine's numba kernels (compiled for the host with fastmath reassociation and
contraction, ``NUMBA_CPU_NAME``). This script trains one teacher (L2-W64-S20, seed 0, one
thread, ``config/test.yaml``'s 20 EMT configurations) twice as is and once with each of those
paths switched as a different CPU would, in fresh processes, and prints the test errors, the
best epoch and the largest weight difference from the first run::

    python bench/cpu_determinism.py --epochs 30
    python bench/cpu_determinism.py --epochs 120 --seed-spread

``--seed-spread`` adds seed 1 (as is): how far a different seed lands, for scale. Results in
docs/calibration.md ("Across machines").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH = {"atom_layers": 2, "width": 64, "sensitivities": 20}
#: name -> environment that switches one kernel path (empty: as is)
VARIANTS = {
    "as is": {},
    "as is, again": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "NUMBA_CPU_NAME=generic": {"NUMBA_CPU_NAME": "generic"},
}


def build_data(work: Path) -> None:
    """dataset.h5 and split.json of config/test.yaml's EMT data in ``work``."""
    from aedistill.config import load_config
    from aedistill.data.canonical import save_dataset
    from aedistill.data.emt import build_emt_dataset
    from aedistill.data.split import make_split, save_split

    cfg = load_config(REPO / "config" / "test.yaml")
    ds = build_emt_dataset(cfg)
    save_dataset(work / "dataset.h5", ds)
    s = cfg["dataset"]["split"]
    split = make_split(ds.n_conf, s["train"], s["valid"], s["test"], s["seed"])
    save_split(work / "split.json", split, ds.n_conf, s["seed"])


def train_one(work: Path, out: Path, epochs: int, seed: int) -> None:
    """Train the teacher into ``out`` (runs in its own process: the environment decides the
    kernels when torch and numba load)."""
    from aedistill.workflow import set_threads

    set_threads(1)
    from aedistill.config import load_config
    from aedistill.training import run

    cfg = load_config(REPO / "config" / "test.yaml")
    cfg["teachers"]["arch"] = ARCH
    cfg["training"]["max_epochs"] = epochs
    run(cfg, "teacher", "L2-W64-S20", seed, work / "dataset.h5", work / "split.json", out)


def weights(path: Path):
    """(sha256 prefix of every weight tensor, all float weights as one float64 vector)."""
    import torch

    sd = torch.load(path, weights_only=False)["state_dict"]
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(tensors[k].detach().contiguous().numpy().tobytes())
    flat = [tensors[k].flatten().double() for k in sorted(tensors)]
    return h.hexdigest()[:12], torch.cat([f for f in flat if f.is_floating_point()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed-spread", action="store_true", help="also train seed 1 as is")
    parser.add_argument("--work", default=None, help="folder for data and models (temp)")
    parser.add_argument("--_train", nargs=3, help=argparse.SUPPRESS)  # out, epochs, seed
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="cpu_determinism-"))
    if args._train:
        train_one(work, Path(args._train[0]), int(args._train[1]), int(args._train[2]))
        return
    build_data(work)
    runs = [(name, env, 0) for name, env in VARIANTS.items()]
    if args.seed_spread:
        runs.append(("seed 1, as is", {}, 1))
    ref = None
    print(
        f"{'variant':30s} {'F-RMSE meV/Å':>13s} {'E-RMSE meV/atom':>16s} best  sha          max|Δw|"
    )
    for i, (name, env, seed) in enumerate(runs):
        out = work / f"run{i}" / "model.pt"
        cmd = [sys.executable, __file__, "--work", str(work), "--_train", str(out)]
        cmd += [str(args.epochs), str(seed)]
        subprocess.run(cmd, check=True, env={**os.environ, **env}, capture_output=True)
        m = json.loads((out.parent / "metrics.json").read_text())
        sha, w = weights(out)
        ref = w if ref is None else ref
        print(
            f"{name:30s} {1e3 * m['test_f_rmse']:13.6f} {1e3 * m['test_e_rmse']:16.6f} "
            f"{m['best_epoch']:4d}  {sha} {float((w - ref).abs().max()):.3g}"
        )


if __name__ == "__main__":
    main()
