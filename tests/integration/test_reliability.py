"""Interruption (kill -9 mid-training, rerun resumes) and --keep-going past a diverging job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from tests.integration.test_data_stage import _copy_workflow, snakemake

pytestmark = pytest.mark.slow

ARCH = "L1-W8-S4"


def _config(workdir, name: str, **overrides) -> str:
    cfg = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    cfg["run_name"] = name
    for key, value in overrides.items():
        section, sub = key.split(".")
        cfg[section][sub] = value
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path.relative_to(workdir))


@pytest.fixture(scope="module")
def workdir(repo, tmp_path_factory):
    return _copy_workflow(repo, tmp_path_factory.mktemp("rel"))


def test_kill_9_mid_training_then_rerun_resumes(workdir):
    cfg = _config(workdir, "killed", **{"training.max_epochs": 8})
    target = f"results/killed/models/control/{ARCH}/seed0/model.pt"
    ckpt = workdir / "results/killed/models/control" / ARCH / "seed0" / "checkpoint.pt"
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(os.sys.executable), "snakemake"),
            target,
            "--cores",
            "1",
            "--configfile",
            cfg,
        ],
        cwd=workdir,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 400
        while time.time() < deadline and not ckpt.exists():
            assert proc.poll() is None, "training finished before it could be interrupted"
            time.sleep(0.2)
        assert ckpt.exists(), "no checkpoint written"
        time.sleep(1.0)  # somewhere inside a later epoch
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (workdir / target).exists(), "killed job left a complete-looking model"

    r = snakemake(workdir, target, "--cores", "1", "--configfile", cfg, "--rerun-incomplete")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (workdir / "logs/killed/models/control" / ARCH / "seed0" / "model.pt.log").read_text()
    assert "resumed after epoch" in log
    resumed = json.loads((workdir / target).with_name("metrics.json").read_text())
    assert resumed["epochs"] == 8

    # the same model trained without interruption
    cfg2 = _config(workdir, "straight", **{"training.max_epochs": 8})
    target2 = f"results/straight/models/control/{ARCH}/seed0/model.pt"
    r = snakemake(workdir, target2, "--cores", "1", "--configfile", cfg2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    straight = json.loads((workdir / target2).with_name("metrics.json").read_text())
    # stated tolerance: resuming restores weights, optimiser, scheduler and RNG states, so
    # the result is identical up to float summation order (rel. 1e-6)
    for key in ("test_f_rmse", "test_e_rmse"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-6), key


def test_keep_going_finishes_the_grid_past_a_diverging_job(workdir):
    # w_A = 1e300 makes the loss of that student variant overflow to inf in epoch 1
    cfg = _config(workdir, "diverge", **{"grid.w_A_sweep": [1e300], "grid.seeds": [0]})
    r = snakemake(
        workdir, "students", "controls", "--cores", "2", "--configfile", cfg, "--keep-going"
    )
    assert r.returncode != 0
    out = r.stdout + r.stderr
    bad = workdir / "results/diverge/models/student_wA1e+300" / ARCH / "seed0"
    log = (
        workdir / "logs/diverge/models/student_wA1e+300" / ARCH / "seed0" / "model.pt.log"
    ).read_text()
    assert "epoch 1" in log and ("inf" in log or "nan" in log.lower()), log[-2000:]
    assert not (bad / "model.pt").exists()
    for role in ("student", "control"):
        assert (workdir / f"results/diverge/models/{role}/{ARCH}/seed0/metrics.json").exists(), out[
            -3000:
        ]
