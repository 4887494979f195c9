"""Pre-registered criterion probe: is the teacher clearly better than the smallest control?

Builds the offline reference (emt, meam or ani-al-model) with the schema's default families, trains one
teacher and one smallest control (seed 0) through the pipeline's own ``train_model`` and prints
their test force RMSE and the ratio teacher / control (criterion: ≤ 0.5, see
``aedistill.study``). Run for each reference, e.g.::

    OMP_NUM_THREADS=1 HIPPYNN_USE_CUSTOM_KERNELS=_pytorch_raw \
        python bench/criterion_probe.py emt --epochs 100 --out /tmp/probe
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from aedistill.config import validate_config
from aedistill.data.build import run as build
from aedistill.data.canonical import load_dataset
from aedistill.data.split import load_split
from aedistill.study import CRITERION_RATIO
from aedistill.training import train_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=["emt", "meam", "ani-al-model"])
    ap.add_argument(
        "--ani-al-model-dir", default=None, help="local copy of the ANI-Al model/ folder"
    )
    ap.add_argument("--teacher", default="L3-W64-S20")
    ap.add_argument("--control", default="L1-W8-S4")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="/tmp/criterion_probe")
    a = ap.parse_args()
    dataset = {"source": a.source}
    if a.ani_al_model_dir:
        dataset["ani_al_model"] = {"local_dir": a.ani_al_model_dir}
    cfg = validate_config({"dataset": dataset, "training": {"batch_size": a.batch_size}})
    d = Path(a.out) / a.source
    if not (d / "dataset.h5").exists():
        build(cfg, d / "dataset.h5", d / "split.json", d / "summary.json", d / "cache")
    ds, sp = load_dataset(d / "dataset.h5"), load_split(d / "split.json")
    f = {}
    for role, arch in (("teacher", a.teacher), ("control", a.control)):
        t = time.time()
        r = train_model(cfg, role, arch, 0, ds, sp, d / f"{role}-{arch}", max_epochs=a.epochs)
        f[role] = r.metrics["test_f_rmse"]
        s_epoch = r.history["wall_s"].diff().median()
        print(
            f"{a.source} {role} {arch}: test F-RMSE {f[role]:.4f} eV/Å, "
            f"{s_epoch:.2f} s/epoch, {time.time() - t:.0f} s"
        )
    ratio = f["teacher"] / f["control"]
    print(
        f"{a.source}: teacher/control F-RMSE = {ratio:.2f} "
        f"(criterion ≤ {CRITERION_RATIO}: {'met' if ratio <= CRITERION_RATIO else 'not met'})"
    )


if __name__ == "__main__":
    main()
