"""Where a training step's time goes: torch.profiler tables of hippynn's step (the baseline) and of
the fast stacked engine's step (same data, same batches).

Today's step is hippynn's standard step on the pipeline's training modules (pair cache,
eq 2 loss, Adam), batches gathered as :class:`aedistill.training._Batches` does; the new
step is :meth:`aedistill.fast.StackTrainer.train_step` for ``--models`` copies of the
same model. Prints ms per step of both and the top operators by self CPU time.

Usage (default EMT data cached by bench/train_throughput.py)::

    HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw OMP_NUM_THREADS=1 \\
        python bench/profile_train_step.py --arch L1-W8-S4 --models 8 --steps 8
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="L1-W8-S4")
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--cache", default="/tmp/aedistill-default-emt.h5")
    args = ap.parse_args()

    from torch.profiler import ProfilerActivity, profile
    from train_throughput import default_data  # same directory (run as a script)

    from aedistill import fast as ft
    from aedistill.database import _Batches
    from aedistill.hippynn_train import prepare_training

    config, ds, split = default_data(args.cache)
    bs = int(config["training"]["batch_size"])
    setup = prepare_training(config, "control", args.arch, 0, ds, split)
    mods, db = setup.training_modules, setup.database
    arrays = [db.splits["train"][k] for k in db.var_list]
    n_in = len(db.inputs)
    opt = torch.optim.Adam([p for p in mods.model.parameters() if p.requires_grad], lr=1e-3)
    order = np.random.default_rng(0).permutation(len(split.train))
    train = np.asarray(split.train)

    def today(n: int) -> None:
        for k, batch in enumerate(_Batches(arrays, torch.as_tensor(order), bs)):
            if k == n:
                break
            opt.zero_grad(set_to_none=True)
            out = mods.model(*batch[:n_in])
            mods.loss(*out, *batch[n_in:])[0].backward()
            opt.step()

    members = [
        ft.StackMember(f"m{i}", setup.graph.modules, setup.plan, None, 10)
        for i in range(args.models)
    ]
    tr = ft.StackTrainer(members, ds, split, ft.StackSettings.from_config(config, len(train)), 0)

    def new(n: int) -> None:
        for k in range(n):
            tr.train_step(train[order[k * bs : (k + 1) * bs]])

    steps = (("hippynn step (1 model)", today), (f"fast stack step ({args.models} models)", new))
    for name, fn in steps:
        fn(2)  # warm-up (numba compilation, allocator)
        t0 = time.process_time()
        fn(args.steps)
        ms = 1e3 * (time.process_time() - t0) / args.steps
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(args.steps)
        print(f"== {name}: {ms:.1f} CPU-ms per step")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
