"""Bit-identity check of the training job drivers (issue 26: a behaviour-preserving refactor).

Trains a few tiny seeded models through both engines — per-model jobs, a stack job, an
interrupted-and-resumed job of each kind, the ``loss.energy: total`` and Born-Again
variants — and writes what they produce (metrics.json without its timings, history.csv
without ``wall_s``, a SHA-256 of every tensor of model.pt) to one JSON file::

    PYTHONPATH=src python scripts/engine_identity.py save /tmp/before.json   # old code
    PYTHONPATH=src python scripts/engine_identity.py compare /tmp/before.json  # new code

``compare`` exits 1 and names every difference; values must be bit-identical (the same
machine and thread count: ``OMP_NUM_THREADS=1`` is set here).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "_pytorch_raw")

import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

ARCH = "L1-W6-S4"
TIMINGS = ("train_time_s", "wall_s")


def _stack_job():
    try:  # after the refactor: one driver
        from aedistill.training import JobModel, train_stack_job
    except ImportError:  # before: aedistill.fastjob
        from aedistill.fastjob import JobModel, train_stack_job
    return JobModel, train_stack_job


def _cfg(engine: str, energy: str = "per_atom", **training):
    from aedistill.config import validate_config

    return validate_config(
        {
            "model": {"cutoff_soft_max": 3.5, "cutoff_hard_max": 4.0},
            "training": {"max_epochs": 3, "batch_size": 4, "engine": engine, **training},
            "loss": {"energy": energy},
            "born_again": {
                "schedule": [
                    {"epoch": 1, "w_A": 200, "w_F": 75, "w_E": 0},
                    {"epoch": 2, "w_A": 100, "w_F": 45, "w_E": 0.5},
                    {"epoch": 3, "w_A": 0, "w_F": 15, "w_E": 1},
                ]
            },
        }
    )


def _record(out: Path) -> dict:
    """metrics.json (no timings), history.csv (no wall_s), model.pt tensor hashes."""
    met = json.loads((out / "metrics.json").read_text())
    hist = pd.read_csv(out / "history.csv").drop(columns=["wall_s"])
    model = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    hashes = {}
    for k, v in sorted(_tensors(model).items()):
        hashes[k] = hashlib.sha256(v.detach().contiguous().numpy().tobytes()).hexdigest()
    return {
        "metrics": {k: v for k, v in met.items() if k not in TIMINGS},
        "history": {k: [float(x) for x in v] for k, v in hist.to_dict(orient="list").items()},
        "model": hashes,
    }


def _tensors(obj, prefix: str = "") -> dict:
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


class _Stop(Exception):
    pass


def _stop_after(n: int):
    def cb(epoch: int) -> None:
        if epoch == n:
            raise _Stop

    return cb


def cases(root: Path) -> dict:
    from aedistill.data.emt import rattled_fcc_emt
    from aedistill.data.split import make_split
    from aedistill.training import train_model

    ds = rattled_fcc_emt(16, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.625, 0.1875, 0.1875, seed=0)
    labels = ds.atom_energies + 0.02 * np.cos(np.arange(ds.species.shape[1]))[None, :]
    labels[ds.species == 0] = 0
    JobModel, train_stack_job = _stack_job()
    got = {}

    def per_model(name, engine, role, seed, energy="per_atom", lab=None, resume=False):
        c = _cfg(engine, energy, checkpoint_every=1)
        out = root / name
        if resume:
            try:
                train_model(
                    c, role, ARCH, seed, ds, split, out, labels=lab, callbacks=[_stop_after(1)]
                )
            except _Stop:
                pass
        train_model(c, role, ARCH, seed, ds, split, out, labels=lab)
        got[name] = _record(out)

    for engine in ("hippynn", "fast"):
        per_model(f"{engine}-teacher", engine, "teacher", 0)
        per_model(f"{engine}-student", engine, "student", 1, lab=labels)
        per_model(f"{engine}-control-total", engine, "control", 2, energy="total")
        per_model(f"{engine}-born_again", engine, "born_again", 0, lab=labels)
        per_model(f"{engine}-student-resumed", engine, "student", 1, lab=labels, resume=True)

    def stack(name, resume=False):
        c = _cfg("fast", checkpoint_every=1)
        models = [
            JobModel(
                role, seed, root / name / f"{role}{seed}", labels if role == "student" else None
            )
            for role in ("control", "student")
            for seed in (0, 1)
        ]
        ck = root / name / "stack-checkpoint.pt"
        if resume:
            try:
                train_stack_job(
                    c,
                    ARCH,
                    models,
                    ds,
                    split,
                    order_seed=0,
                    checkpoint=ck,
                    callbacks=[_stop_after(2)],
                )
            except _Stop:
                pass
        train_stack_job(c, ARCH, models, ds, split, order_seed=0, checkpoint=ck)
        for m in models:
            got[f"{name}/{Path(m.out_dir).name}"] = _record(Path(m.out_dir))

    stack("stack")
    stack("stack-resumed", resume=True)
    got.update(rdf_cases(root))
    got.update(augment_cases())
    return got


def augment_cases() -> dict:
    """The augmentation's teacher MD (EMT as the teacher, seeded): its snapshots, including
    trajectories abandoned on fused atoms (a 2.7 Å limit)."""
    from ase.calculators.emt import EMT

    import aedistill.rdf
    from aedistill.augment import AugmentSettings, teacher_md
    from aedistill.data.emt import rattled_fcc_emt
    from aedistill.data.split import make_split

    ds = rattled_fcc_emt(12, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
    settings = AugmentSettings(
        n_configs=6,
        temperatures=(300.0, 1500.0),
        snapshots_per_trajectory=3,
        equilibration_steps=4,
        interval=3,
    )
    snaps, abandoned = teacher_md(ds, split.train, EMT(), settings)
    out = {
        "metrics": {"abandoned": abandoned},
        "history": {
            "positions": [float(x) for s in snaps for x in s.atoms.positions.ravel()],
            "other": [
                float(x)
                for s in snaps
                for x in (s.temperature, s.kinetic_temperature, s.trajectory, s.min_distance)
            ],
        },
        "model": {},
    }
    limit = aedistill.rdf.FUSED_PAIR_DISTANCE_A
    aedistill.rdf.FUSED_PAIR_DISTANCE_A = 2.7
    try:
        snaps, abandoned = teacher_md(ds, split.train, EMT(), settings)
    except Exception as exc:  # noqa: BLE001 — the one-line refusal is part of the record
        snaps, abandoned = [], str(exc)
    finally:
        aedistill.rdf.FUSED_PAIR_DISTANCE_A = limit
    fused = {"metrics": {"abandoned": abandoned, "n": len(snaps)}, "history": {}, "model": {}}
    return {"augment": out, "augment-fused": fused}


LIQUID = {  # tests/integration/test_lammps.py's short liquid, with restart points
    "supercell": 4,
    "density": 2.375,
    "temperature": 1200.0,
    "timestep": 2.0,
    "melt_steps": 300,
    "equilibration_steps": 300,
    "production_steps": 600,
    "rdf_every": 20,
    "rdf_bins": 100,
    "rdf_rmax": 7.0,
    "restart_every": 250,
}


def rdf_cases(root: Path) -> dict:
    """The MEAM liquid-Al RDF run (g(r), the timing record without timings); none without
    the LAMMPS Python module."""
    try:
        import lammps  # noqa: F401
    except ImportError:
        return {}
    from aedistill.data.meam import meam_pair_commands

    try:
        from aedistill.rdf_run import run_rdf
    except ImportError:  # before the refactor
        from aedistill.lammps import run_rdf
    out = root / "rdf"
    out.mkdir()
    timing = run_rdf(
        None, LIQUID, out / "rdf.csv", out / "timing.json", pair_commands=meam_pair_commands()
    )
    drop = ("wall_s", "time_per_step_per_atom_s")
    table = pd.read_csv(out / "rdf.csv")
    return {
        "rdf": {
            "metrics": {k: v for k, v in timing.items() if k not in drop},
            "history": {k: [float(x) for x in v] for k, v in table.to_dict(orient="list").items()},
            "model": {},
        }
    }


def _diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'before' if k in a else 'after'}")
            else:
                out += _diff(a[k], b[k], f"{path}/{k}")
        return out
    same = json.dumps(a) == json.dumps(b)  # NaN == NaN, 1 != 1.0000000000000002
    return [] if same else [f"{path}: before {a!r}, after {b!r}"]


def main(argv: list[str]) -> int:
    mode, path = argv
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        got = cases(Path(tmp))
    if mode == "save":
        Path(path).write_text(json.dumps(got, indent=1, sort_keys=True))
        print(f"saved {len(got)} models to {path}")
        return 0
    before = json.loads(Path(path).read_text())
    diffs = _diff(before, json.loads(json.dumps(got)))
    for d in diffs:
        print(d)
    n_f = sum(1 for k in before if "test_f_rmse" in before[k]["metrics"])
    print(f"{len(before)} models ({n_f} with test_f_rmse): {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
