"""Max-atoms search against a fake memory limit; bytes/atom fit; CPU probe in fresh processes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aedistill.memory import find_max_ok, fit_memory, max_atoms_under


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8, 9, 100, 1023, 1024, 1025, 123457])
@pytest.mark.parametrize("start", [1, 3])
def test_oom_search_finds_fake_limit_exactly(limit, start):
    calls = []

    def try_fn(k):  # a fake GPU: k units fit iff k <= limit
        calls.append(k)
        return k <= limit

    found = find_max_ok(try_fn, start=start)
    assert found == (limit if limit >= start else start - 1)
    # O(log) evaluations: growth + bisection, never the same size twice
    assert len(calls) <= 2 * math.ceil(math.log2(max(limit, 2))) + 3
    assert len(set(calls)) == len(calls)


def test_oom_search_with_byte_budget():
    # fake device: 80 GB, 250 MB fixed + 37_500 bytes per slab of 400 atoms
    budget, base, per_slab = 80e9, 250e6, 400 * 37_500.0
    k = find_max_ok(lambda k: base + per_slab * k <= budget, start=1)
    assert k == int((budget - base) // per_slab)


def test_oom_search_caps_at_k_max():
    assert find_max_ok(lambda k: True, start=1, k_max=50) == 50


def test_memory_fit_recovers_known_slope():
    rng = np.random.default_rng(0)
    n = np.array([108, 256, 500, 864])
    true_slope, true_base = 9_500.0, 600e6
    peaks = true_base + true_slope * n
    slope, base = fit_memory(n, peaks)
    assert slope == pytest.approx(true_slope, rel=1e-9)
    assert base == pytest.approx(true_base, rel=1e-9)
    # with 1 % page-granularity noise the slope is still recovered to a few %
    noisy = peaks + rng.normal(0, 0.01 * true_slope * n.mean(), size=len(n))
    slope_n, _ = fit_memory(n, noisy)
    assert slope_n == pytest.approx(true_slope, rel=0.05)


def test_max_atoms_under_budget():
    assert max_atoms_under(16 * 2**30, 10_000.0, 2**30) == (15 * 2**30) // 10_000
    assert max_atoms_under(100.0, 10.0, 1000.0) == 0
    with pytest.raises(ValueError):
        max_atoms_under(100.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        fit_memory([100, 100, 100], [1, 2, 3])


@pytest.mark.slow
def test_cpu_memory_probe_in_fresh_processes(tmp_path):
    """Three fresh interpreters; memory grows with the cell and the fit is consistent."""
    from aedistill import models
    from aedistill.arch import Arch
    from aedistill.config import validate_config
    from aedistill.memory import cpu_memory

    spec = models.ModelSpec(arch=Arch(1, 8, 4), species=(13,))
    models.save_model(tmp_path / "m.pt", spec, models.build_training_graph(spec, 0))
    cfg = validate_config(
        {"efficiency": {"memory_probe_supercells": [3, 5, 7], "memory_budget_gb": 4}}
    )
    rec = cpu_memory(tmp_path / "m.pt", cfg)
    pts = rec["points"]
    assert [p["n_atoms"] for p in pts] == [108, 500, 1372]
    assert pts[-1]["delta_bytes"] > pts[0]["delta_bytes"]
    # a force evaluation needs at least the positions, forces and per-pair terms: > 100 B/atom
    assert 100 < rec["bytes_per_atom"] < 1e6
    assert rec["max_atoms"] == max_atoms_under(
        4 * 2**30, rec["bytes_per_atom"], rec["baseline_bytes"]
    )
    assert rec["memory_method"] == "cpu_fit"
