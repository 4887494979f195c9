"""Memory per model: "max atoms" of one force evaluation (paper Figs 2 and 5).

CUDA (``memory_method = cuda_oom_search``): periodic fcc Al boxes of ``k`` slabs
(``k × base × base`` conventional cells) are evaluated for increasing ``k`` — geometric growth
until a force evaluation raises ``torch.cuda.OutOfMemoryError``, then bisection — so the
largest box that fits is found exactly (to one slab of ``4 base²`` atoms). Peak bytes per atom
is ``torch.cuda.max_memory_allocated`` of the largest successful evaluation divided by its
number of atoms.

CPU (``memory_method = cpu_fit``): the peak resident set size of a force evaluation is
measured at ≥ 3 sizes, each in a fresh ``python`` subprocess: the kernel's peak-RSS counter
is reset just before the evaluation (``/proc/self/clear_refs`` ← 5, Linux) and the peak
(``VmHWM``) after it minus the RSS before it is the evaluation's memory. Where the reset is not
available, ``ru_maxrss`` after minus before is used (an earlier transient peak can then hide
part of it). Before the baseline is taken the child has
imported everything, loaded the model and evaluated a tiny cell once, so JIT compilation,
lazy torch initialisation and the model itself are in the baseline, not in the difference.
(``tracemalloc`` misses torch's and numba's native allocations; RSS sees them.) A
least-squares line ``peak = baseline + bytes_per_atom × n`` through (n, baseline + delta)
gives bytes/atom; max atoms is where the line reaches ``efficiency.memory_budget_gb``.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GIB = 1024**3


# ----------------------------------------------------------------------------- pure pieces
def find_max_ok(
    try_fn: Callable[[int], bool], start: int = 1, factor: int = 2, k_max: int = 1 << 40
) -> int:
    """Largest integer ``k >= start`` with ``try_fn(k)`` true, for a monotone ``try_fn``.

    Grows ``k`` geometrically (× ``factor``) until the first failure, then bisects between the
    last success and the first failure. Returns ``start - 1`` if ``try_fn(start)`` fails and
    ``k_max`` if nothing up to ``k_max`` fails. Calls ``try_fn`` O(log k) times.
    """
    if factor < 2:
        raise ValueError("factor must be >= 2")
    if not try_fn(start):
        return start - 1
    lo = start
    hi = None
    k = start
    while hi is None:
        nxt = min(k * factor, k_max)
        if nxt == k:
            return k_max
        if try_fn(nxt):
            lo = k = nxt
            if k == k_max:
                return k_max
        else:
            hi = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if try_fn(mid):
            lo = mid
        else:
            hi = mid
    return lo


def fit_memory(n_atoms: Sequence[float], peak_bytes: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``peak = baseline + slope × n``; returns ``(slope_bytes_per_atom, baseline)``."""
    n = np.asarray(n_atoms, dtype=float)
    y = np.asarray(peak_bytes, dtype=float)
    if len(n) < 2 or len(np.unique(n)) < 2:
        raise ValueError("need at least two different sizes to fit memory per atom")
    a = np.vstack([n, np.ones_like(n)]).T
    (slope, baseline), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(slope), float(baseline)


def max_atoms_under(budget_bytes: float, slope: float, baseline: float) -> int:
    """Atoms at which ``baseline + slope × n`` reaches the budget (0 if the baseline does not fit)."""
    if slope <= 0:
        raise ValueError(f"memory per atom must be positive, got {slope:.3g} bytes")
    return max(int(math.floor((budget_bytes - baseline) / slope)), 0)


# ----------------------------------------------------------------------------- CPU (fresh processes)
_CHILD = r"""
import json, resource, sys
from aedistill.memory import _child_measure
print("AEDISTILL_MEMORY " + json.dumps(_child_measure(*json.loads(sys.argv[1]))))
"""


def _maxrss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def _trim_heap() -> None:
    """Return free malloc memory to the OS (glibc); otherwise allocations of the measured
    evaluation can reuse pages freed after start-up and never show up in the RSS."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _child_measure(
    model_path: str, supercell: int, calculator: str, skin: float, lattice: float
) -> dict:
    """Runs in a fresh interpreter: RSS peak of one force evaluation over the warm baseline."""
    from aedistill.md import fcc_al, make_timing_calculator

    calc, which = make_timing_calculator(model_path, calculator=calculator, device="cpu", skin=skin)
    warm = fcc_al(2, lattice)
    warm.calc = calc
    warm.get_forces()  # JIT compile, lazy init
    atoms = fcc_al(supercell, lattice)
    atoms.rattle(0.01, seed=0)
    import gc

    gc.collect()
    _trim_heap()  # free heap pages go back to the OS, so the evaluation's pages are counted
    if _reset_peak_rss() and _status_bytes("VmHWM") is not None:
        # peak since now, over the RSS now: earlier transient peaks (model load) cannot hide it
        method = "VmHWM after clear_refs"
        base = _status_bytes("VmRSS")
        atoms.calc = calc
        atoms.get_forces()
        peak = _status_bytes("VmHWM")
    else:
        method = "ru_maxrss"
        base = _maxrss_bytes()
        atoms.calc = calc
        atoms.get_forces()
        peak = _maxrss_bytes()
    return {
        "rss_method": method,
        "supercell": supercell,
        "n_atoms": len(atoms),
        "baseline_rss_bytes": base,
        "peak_rss_bytes": peak,
        "delta_bytes": peak - base,
        "calculator": which,
    }


def measure_cpu_point(
    model_path, supercell: int, calculator: str = "fast", skin: float = 1.0, lattice: float = 4.05
) -> dict:
    """One fresh ``python`` process measuring one size (see :func:`_child_measure`)."""
    args = json.dumps([str(model_path), int(supercell), calculator, float(skin), float(lattice)])
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, args], capture_output=True, text=True, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("AEDISTILL_MEMORY "):
            return json.loads(line.split(" ", 1)[1])
    raise RuntimeError(
        f"memory probe of {model_path} at supercell {supercell} failed (exit {proc.returncode}): "
        + (proc.stderr.strip().splitlines() or ["no output"])[-1]
    )


def cpu_memory(model_path, config: dict[str, Any]) -> dict[str, Any]:
    e = config["efficiency"]
    lattice = float(config["dataset"]["generate"]["lattice_constant"])
    points = [
        measure_cpu_point(model_path, s, e.get("calculator", "fast"), e.get("skin", 1.0), lattice)
        for s in e["memory_probe_supercells"]
    ]
    for p in points:
        log.info(
            "supercell %d (%d atoms): +%.1f MiB over %.1f MiB",
            p["supercell"],
            p["n_atoms"],
            p["delta_bytes"] / 2**20,
            p["baseline_rss_bytes"] / 2**20,
        )
    base = float(np.median([p["baseline_rss_bytes"] for p in points]))
    slope, intercept = fit_memory(
        [p["n_atoms"] for p in points], [base + p["delta_bytes"] for p in points]
    )
    budget = float(e["memory_budget_gb"]) * GIB
    return {
        "memory_method": "cpu_fit",
        "bytes_per_atom": slope,
        "baseline_bytes": intercept,
        "memory_budget_bytes": budget,
        "max_atoms": max_atoms_under(budget, slope, intercept),
        "points": points,
        "calculator": points[0]["calculator"],
    }


# ----------------------------------------------------------------------------- CUDA
def cuda_memory(
    model_path, config: dict[str, Any], base: int = 10, k_max: int = 1 << 40
) -> dict[str, Any]:
    """OOM search on the current CUDA device with hippynn's calculator (at most ``k_max``
    slabs: ``max_atoms`` is then a lower bound, ``oom_reached`` false)."""
    import ase.build
    import torch

    from aedistill import models
    from aedistill.md import make_timing_calculator

    lattice = float(config["dataset"]["generate"]["lattice_constant"])
    loaded = models.load_model(model_path, device="cuda")
    calc, which = make_timing_calculator(loaded, calculator="hippynn", device="cuda")
    unit = ase.build.bulk("Al", "fcc", a=lattice, cubic=True)
    peaks: dict[int, int] = {}

    def try_fn(k: int) -> bool:
        atoms = unit.repeat((k, base, base))
        atoms.rattle(0.01, seed=0)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            atoms.calc = calc
            atoms.get_forces()
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError:
            ok = False
        else:
            ok = True
            peaks[k] = int(torch.cuda.max_memory_allocated())
        finally:
            atoms.calc = None
            calc.results = {}
            torch.cuda.empty_cache()
        log.info("k=%d (%d atoms): %s", k, len(atoms), "ok" if ok else "OOM")
        return ok

    k = find_max_ok(try_fn, start=1, k_max=k_max)
    if k < 1:
        raise RuntimeError(f"{model_path}: even {4 * base * base} atoms do not fit on the GPU")
    n = 4 * base * base * k
    return {
        "memory_method": "cuda_oom_search",
        "max_atoms": n,
        "bytes_per_atom": peaks[k] / n,
        "peak_bytes": peaks[k],
        "search_points": {str(kk): v for kk, v in sorted(peaks.items())},
        "atoms_per_step_of_search": 4 * base * base,
        "oom_reached": k < k_max,
        "cuda_device": torch.cuda.get_device_name(0),
        "calculator": which,
    }


def probe_memory(
    model_path, config: dict[str, Any], role: str, arch: str, seed: int
) -> dict[str, Any]:
    """``memory.json`` record of one model (method chosen by ``efficiency.device``)."""
    from aedistill.device import resolve_device
    from aedistill.md import machine_info

    device = resolve_device(config["efficiency"]["device"], key="efficiency.device")
    rec = cuda_memory(model_path, config) if device == "cuda" else cpu_memory(model_path, config)
    rec.update(
        {"role": role, "arch": arch, "seed": int(seed), "device": device, "model": str(model_path)}
    )
    rec.update(
        {
            k: v
            for k, v in machine_info().items()
            if k in ("machine", "cpu_model", "torch_version", "threads", "kernel")
        }
    )
    return rec
