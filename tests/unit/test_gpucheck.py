"""``aedistill gpu-check``: one line and exit 1 without a GPU; the report's lines and JSON;
the train and MD checks run for real (on the CPU here, the same functions as on CUDA)."""

from __future__ import annotations

import json

import pytest
import torch

from aedistill import cli, gpucheck
from aedistill.gpucheck import check_md, check_train, memory_fraction, report


def test_without_a_gpu_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for var in ("SLURM_GPUS", "SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["gpu-check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, out
    assert out[0].startswith("gpu-check: FAIL: torch ") and "sees no CUDA device" in out[0]
    assert "srun --gpus=1" in out[0]


def test_without_a_gpu_names_the_gpu_the_job_was_given(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert cli.main(["gpu-check"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert "although CUDA_VISIBLE_DEVICES=0" in line


def _fake(summary, **data):
    return lambda *a, **k: (summary, data)


def _boom(*a, **k):
    raise RuntimeError("CUDA error: no kernel image is available")


def test_a_failed_check_fails_the_run_and_skips_what_needs_it(monkeypatch, tmp_path):
    """train fails -> md is not run (it needs the model), memory still runs; exit 1, and the
    JSON line carries every check."""
    monkeypatch.setattr(gpucheck, "check_cuda", _fake("H200", cuda_device="H200"))
    monkeypatch.setattr(gpucheck, "check_train", _boom)
    monkeypatch.setattr(gpucheck, "check_memory", _fake("fits", max_atoms_under_cap=123))
    lines, status = report(gpucheck.run_checks(tmp_path))
    assert status == 1 and len(lines) == 5
    assert [line.split()[:2] for line in lines[:4]] == [
        ["ok", "cuda"], ["FAIL", "train"], ["FAIL", "md"], ["ok", "memory"]
    ]  # fmt: skip
    assert "RuntimeError: CUDA error: no kernel image" in lines[1]
    assert "not run: the train check failed" in lines[2]
    rec = json.loads(lines[4])
    assert rec["gpu_check"] == "FAIL"
    assert rec["checks"]["memory"]["data"] == {"max_atoms_under_cap": 123}
    assert rec["checks"]["train"]["ok"] is False


def test_all_checks_ok_exit_0(monkeypatch, tmp_path):
    monkeypatch.setattr(gpucheck, "check_cuda", _fake("H200"))
    monkeypatch.setattr(gpucheck, "check_train", _fake("trained", model=str(tmp_path / "m.pt")))
    seen = []
    monkeypatch.setattr(gpucheck, "check_md", lambda m, d, s: seen.append((m, d, s)) or ("md", {}))
    monkeypatch.setattr(gpucheck, "check_memory", _fake("fits"))
    lines, status = report(gpucheck.run_checks(tmp_path, md_supercell=7))
    rec = json.loads(lines[-1])
    assert status == 0 and rec["gpu_check"] == "ok" and rec["within_budget"] is True
    slow = [gpucheck.Check("cuda", True, 200.0, "x"), gpucheck.Check("train", True, 101.0, "y")]
    rec = json.loads(report(slow)[0][-1])
    assert rec["total_s"] == 301.0 and rec["within_budget"] is False
    assert seen == [(tmp_path / "m.pt", "cuda", 7)]


def test_memory_fraction():
    assert memory_fraction(1.0, 140 * 2**30) == pytest.approx(1 / 140)
    assert memory_fraction(200.0, 140 * 2**30) == 1.0
    with pytest.raises(ValueError):
        memory_fraction(0.0, 2**30)


@pytest.mark.slow
def test_train_and_md_checks_run_for_real_on_the_cpu(tmp_path):
    """The same functions the GPU node runs, on the CPU: 3 epochs, then 20 NVE steps."""
    summary, data = check_train(tmp_path, "cpu", epochs=3, n_conf=12)
    assert data["epochs"] == 3 and data["s_per_epoch"] > 0
    assert (tmp_path / "train" / "model.pt").exists() and data["model"].endswith("model.pt")
    assert "3 epochs on cpu" in summary
    summary, md = check_md(tmp_path / "train" / "model.pt", "cpu", supercell=2)
    assert md["n_atoms"] == 32 and md["steps"] == 20 and len(md["block_times_s"]) == 2
    assert md["us_per_atom_step"] > 0 and md["calculator"] == "hippynn"


def test_memory_check_caps_the_search_and_restores_the_device(monkeypatch, tmp_path):
    """The max-atoms search runs under the memory cap (so it meets an OOM within seconds) and
    the cap is lifted afterwards, also when the search fails; the whole device's max atoms is
    the device memory over the bytes per atom found."""
    from types import SimpleNamespace

    from aedistill import memory

    total = 140 * 2**30
    calls = []
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=total)
    )
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, i: calls.append(("cap", f, i))
    )
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(("empty",)))

    def search(path, config, base, k_max):
        calls.append(("search", path.name, base, k_max, config["training"]["device"]))
        return {
            "max_atoms": 2800,
            "bytes_per_atom": 2.0**17,
            "search_points": {"1": 1, "2": 2},
            "oom_reached": True,
        }

    monkeypatch.setattr(memory, "cuda_memory", search)
    summary, data = gpucheck.check_memory(tmp_path, memory_gib=2.0)
    assert calls == [
        ("empty",), ("cap", 2 / 140, 0),
        ("search", "model.pt", 10, gpucheck.MEMORY_MAX_SLABS, "cuda"), ("cap", 1.0, 0),
    ]  # fmt: skip
    assert data["max_atoms_under_cap"] == 2800 and data["memory_cap_bytes"] == 2 * 2**30
    assert data["max_atoms_whole_device_estimate"] == total // 2**17 and data["oom_reached"]
    assert "2800 atoms fit" in summary

    calls.clear()
    monkeypatch.setattr(memory, "cuda_memory", _boom)
    with pytest.raises(RuntimeError):
        gpucheck.check_memory(tmp_path, memory_gib=2.0)
    assert calls[-1] == ("cap", 1.0, 0)
