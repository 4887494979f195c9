"""``aedistill gpu-check``: a preflight of a GPU node before the paper's jobs are submitted.

Run it on a node like the ones the jobs get (``srun --gpus=1 .venv/bin/aedistill gpu-check``;
docs/paper-run.md). It exercises, on CUDA, the code paths of the GPU jobs with tiny inputs,
each check a function returning a :class:`Check`:

1. ``cuda``: torch sees a CUDA device (its name and memory, torch's CUDA version, hippynn's
   kernels). Without one, the only check: one line, exit 1 -- nothing else can run.
2. ``train``: a tiny HIPNN (L1-W8-S4) trains 3 epochs on 40 EMT cells of 32 atoms with
   ``training.device: cuda`` through :func:`aedistill.training.train_model`, the training
   jobs' own function (on CUDA that is hippynn's engine).
3. ``md``: 20 timed NVE steps of the trained model on CUDA with hippynn's ASE calculator
   through :func:`aedistill.md.run_nve_timing`, the timing jobs' function (2 blocks of 10
   steps after 2 warm-up steps; 4 × 10³ = 4,000 atoms by default).
4. ``memory``: the CUDA max-atoms search of the memory jobs
   (:func:`aedistill.memory.cuda_memory`, slabs of 400 atoms) on a small untrained model,
   with the process limited to ``memory_gib`` of the device
   (``torch.cuda.set_per_process_memory_fraction``) so that the search meets a real
   out-of-memory error early and bisects; it stops at :data:`MEMORY_MAX_SLABS` slabs (6,400
   atoms: ASE's neighbour list, which hippynn's calculator builds on the CPU, took 22 s for
   them on this project's loaded 2-core machine). The bytes per atom it finds give the
   whole device's max atoms by proportion.

Each check prints one line (``ok``/``FAIL``, name, seconds, what it found); then one JSON line
with every check's numbers. Exit 0 when all passed. A failing check does not stop the ones
that do not need its result. Sized to finish well within 5 minutes (not yet run on a GPU:
this project's machine has none).
"""

from __future__ import annotations

import gc
import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GIB = 1024**3
TINY_ARCH = "L1-W8-S4"
#: the small model of the memory check (a student-sized network)
MEMORY_ARCH = "L1-W16-S8"
#: what the preflight should take at most (reported in its JSON line, not enforced)
BUDGET_S = 300
#: the memory check's largest box, in slabs of 400 atoms (the memory jobs' base 10)
MEMORY_MAX_SLABS = 16


@dataclass
class Check:
    """The outcome of one check: ``ok``, wall seconds, a one-line summary and its numbers."""

    name: str
    ok: bool
    seconds: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{'ok  ' if self.ok else 'FAIL'} {self.name:<7} {self.seconds:7.1f} s  {self.summary}"
        )


def timed(name: str, fn: Callable[[], tuple[str, dict[str, Any]]]) -> Check:
    """Run ``fn`` (returning summary and numbers) as check ``name``; an exception fails the
    check with its one-line message (the traceback goes to the log)."""
    t0 = time.perf_counter()
    try:
        summary, data = fn()
    except Exception as exc:  # a preflight reports every failure as a line, never a traceback
        log.debug("%s failed:\n%s", name, traceback.format_exc())
        return Check(name, False, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    return Check(name, True, time.perf_counter() - t0, summary, data)


def check_cuda() -> tuple[str, dict[str, Any]]:
    """torch sees a CUDA device; raises RuntimeError (one line) when it does not."""
    import torch

    from aedistill.device import assigned_gpu

    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
        given = assigned_gpu()
        raise RuntimeError(
            f"torch {torch.__version__} ({build}) sees no CUDA device"
            + (f" although {given}" if given else "; run on a GPU node (srun --gpus=1 ...)")
        )
    import hippynn
    from hippynn import custom_kernels

    props = torch.cuda.get_device_properties(0)
    data = {
        "cuda_device": props.name,
        "device_memory_bytes": int(props.total_memory),
        "device_count": torch.cuda.device_count(),
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "hippynn_version": hippynn.__version__,
        "hippynn_kernels": str(custom_kernels.CUSTOM_KERNELS_ACTIVE),
    }
    summary = (
        f"{props.name}, {props.total_memory / GIB:.0f} GiB, torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}), hippynn kernels {data['hippynn_kernels']}"
    )
    return summary, data


def tiny_config(device: str) -> dict[str, Any]:
    """A validated config for the tiny model: defaults, ``training.device`` = ``device`` and
    hippynn's engine (what training on CUDA runs; on the CPU too, so that a test there runs
    the same code)."""
    from aedistill.config import validate_config

    return validate_config(
        {"training": {"device": device, "engine": "hippynn", "max_epochs": 3, "batch_size": 8}},
        where="gpu-check",
    )


def check_train(
    workdir: Path, device: str = "cuda", epochs: int = 3, n_conf: int = 40
) -> tuple[str, dict]:
    """Train :data:`TINY_ARCH` for ``epochs`` epochs on ``device`` on ``n_conf`` EMT cells of
    32 atoms; the model goes to ``workdir/train/model.pt``."""
    import torch

    from aedistill.data.emt import rattled_fcc_emt
    from aedistill.data.split import make_split
    from aedistill.training import train_model

    ds = rattled_fcc_emt(n_conf, seed=0, repeat=2)
    split = make_split(ds.n_conf, 0.8, 0.1, 0.1, seed=0)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    res = train_model(
        tiny_config(device),
        "teacher",
        TINY_ARCH,
        0,
        ds,
        split,
        workdir / "train",
        max_epochs=epochs,
    )
    hist = res.history
    if len(hist) != epochs:
        raise RuntimeError(f"trained {len(hist)} epochs, expected {epochs}")
    s_per_epoch = float(hist["wall_s"].iloc[-1]) / len(hist)
    data = {
        "arch": TINY_ARCH,
        "epochs": len(hist),
        "s_per_epoch": s_per_epoch,
        "test_f_rmse": float(res.metrics["test_f_rmse"]),
        "model": str(res.model_path),
    }
    if device == "cuda":
        data["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated())
        if data["cuda_peak_bytes"] == 0:
            raise RuntimeError("training allocated nothing on the GPU: it ran on the CPU")
    summary = (
        f"{TINY_ARCH}, {len(hist)} epochs on {device}: {s_per_epoch:.2f} s/epoch, "
        f"test force RMSE {data['test_f_rmse']:.3g} eV/Å"
    )
    return summary, data


def check_md(model_path: Path, device: str = "cuda", supercell: int = 10) -> tuple[str, dict]:
    """Time 20 NVE steps (2 blocks of 10 after 2 warm-up steps) of ``model_path`` on
    ``device`` with hippynn's ASE calculator, in a cubic fcc cell of 4·``supercell``³ atoms."""
    from aedistill import models
    from aedistill.md import TimingSettings, make_timing_calculator, run_nve_timing

    loaded = models.load_model(model_path, device=device)
    calc, which = make_timing_calculator(loaded, calculator="hippynn", device=device)
    settings = TimingSettings(supercell=supercell, warmup_steps=2, steps_per_block=10, blocks=2)
    rec = run_nve_timing(calc, settings, device=device)
    us = rec["time_per_step_per_atom_s"] * 1e6
    data = {
        "n_atoms": rec["n_atoms"],
        "steps": settings.blocks * settings.steps_per_block,
        "us_per_atom_step": us,
        "block_times_s": rec["block_times_s"],
        "calculator": which,
    }
    return f"20 NVE steps of {rec['n_atoms']} atoms on {device}: {us:.3g} µs/atom-step", data


def memory_fraction(memory_gib: float, total_bytes: int) -> float:
    """The fraction of a device of ``total_bytes`` that is ``memory_gib`` GiB (≤ 1)."""
    if memory_gib <= 0 or total_bytes <= 0:
        raise ValueError("memory_gib and total_bytes must be > 0")
    return min(1.0, memory_gib * GIB / total_bytes)


def check_memory(workdir: Path, memory_gib: float = 0.25) -> tuple[str, dict]:
    """The CUDA max-atoms search on an untrained :data:`MEMORY_ARCH` model, with this process
    limited to ``memory_gib`` GiB of the device so that it meets an OOM quickly."""
    import torch

    from aedistill import models
    from aedistill.arch import Arch
    from aedistill.memory import cuda_memory

    spec = models.ModelSpec(arch=Arch.parse(MEMORY_ARCH), species=(13,))
    path = workdir / "memory" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    models.save_model(path, spec, models.build_training_graph(spec, 0))
    total = int(torch.cuda.get_device_properties(0).total_memory)
    fraction = memory_fraction(memory_gib, total)
    gc.collect()  # the earlier checks' tensors must not count against the cap
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    try:
        rec = cuda_memory(path, tiny_config("cuda"), base=10, k_max=MEMORY_MAX_SLABS)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    whole = int(total / rec["bytes_per_atom"])
    data = {
        "arch": MEMORY_ARCH,
        "memory_cap_bytes": int(fraction * total),
        "max_atoms_under_cap": rec["max_atoms"],
        "bytes_per_atom": rec["bytes_per_atom"],
        "fitting_sizes_tried": len(rec["search_points"]),
        "oom_reached": bool(rec["oom_reached"]),
        "max_atoms_whole_device_estimate": whole,
    }
    fit = (
        f"{rec['max_atoms']} atoms fit"
        if rec["oom_reached"]
        else f"all {rec['max_atoms']} atoms tried fit (no OOM below the cap)"
    )
    summary = (
        f"{MEMORY_ARCH} under a {memory_gib:g} GiB cap: {fit}, "
        f"{rec['bytes_per_atom']:.0f} B/atom (whole device ≈ {whole:,} atoms)"
    )
    return summary, data


def run_checks(
    workdir: Path | None = None, memory_gib: float = 0.25, md_supercell: int = 10
) -> list[Check]:
    """Every check in order; none after a failed ``cuda`` check, no ``md`` without a model."""
    checks = [timed("cuda", check_cuda)]
    if not checks[0].ok:
        return checks
    with tempfile.TemporaryDirectory(prefix="aedistill-gpu-check-") as tmp:
        work = Path(workdir or tmp)
        train = timed("train", lambda: check_train(work, "cuda"))
        checks.append(train)
        if train.ok:
            model = Path(train.data["model"])
            checks.append(timed("md", lambda: check_md(model, "cuda", md_supercell)))
        else:
            checks.append(Check("md", False, 0.0, "not run: the train check failed"))
        checks.append(timed("memory", lambda: check_memory(work, memory_gib)))
    return checks


def report(checks: list[Check]) -> tuple[list[str], int]:
    """The lines to print (one per check, then one JSON line) and the exit status. A failed
    ``cuda`` check alone is one line: there is no GPU to report on."""
    ok = all(c.ok for c in checks)
    total = sum(c.seconds for c in checks)
    if len(checks) == 1 and not checks[0].ok:
        return [f"gpu-check: FAIL: {checks[0].summary.removeprefix('RuntimeError: ')}"], 1
    record = {
        "gpu_check": "ok" if ok else "FAIL",
        "total_s": round(total, 2),
        "budget_s": BUDGET_S,
        "within_budget": total <= BUDGET_S,
        "checks": {c.name: {k: v for k, v in asdict(c).items() if k != "name"} for c in checks},
    }
    return [c.line() for c in checks] + [json.dumps(record, default=str)], 0 if ok else 1
