"""Through Snakemake: --keep-going past a failing job; kill -9 then --rerun-incomplete."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import BIN, copy_workflow, run_snakemake

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
    return copy_workflow(repo, tmp_path_factory.mktemp("rel"))


def test_keep_going_finishes_the_grid_past_a_diverging_job(workdir):
    # w_A = 1e300 cannot be represented in the model's float32 loss: that job must fail
    # with a clear message while --keep-going finishes every other model
    cfg = _config(workdir, "diverge", **{"grid.w_A_sweep": [1e300], "grid.seeds": [0]})
    r = run_snakemake(
        workdir, "students", "controls", "--cores", "2", "--configfile", cfg, "--keep-going"
    )
    assert r.returncode != 0
    out = r.stdout + r.stderr
    bad = workdir / "results/diverge/models/student_wA1e+300" / ARCH / "seed0"
    log = (
        workdir / "logs/diverge/models/student_wA1e+300" / ARCH / "seed0" / "model.pt.log"
    ).read_text()
    assert "loss weight w_A = 1e+300 does not fit" in log, log[-2000:]
    assert not (bad / "model.pt").exists()
    for role in ("student", "control"):
        assert (workdir / f"results/diverge/models/{role}/{ARCH}/seed0/metrics.json").exists(), out[
            -3000:
        ]


def _history_rows(path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def test_kill_9_mid_training_then_rerun_incomplete_resumes(workdir):
    """kill -9 of Snakemake and its training job, then `--rerun-incomplete`: the job resumes
    from its checkpoint (not from epoch 1) and ends with the uninterrupted run's metrics.

    Tolerance: equal to 1e-9 relative (CPU training is deterministic and the checkpoint holds
    the weights, optimiser, scheduler, tracker and torch RNG state; seen bit-identical).
    """
    import json
    import os
    import signal
    import subprocess
    import time

    over = {"training.max_epochs": 12, "training.checkpoint_every": 1}
    ref_cfg = _config(workdir, "nokill", **over)
    kill_cfg = _config(workdir, "kill", **over)
    rel = f"models/control/{ARCH}/seed0"

    def target(run: str) -> str:
        return f"results/{run}/{rel}/metrics.json"

    r = run_snakemake(workdir, target("nokill"), "--cores", "1", "--configfile", ref_cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    ref = json.loads((workdir / target("nokill")).read_text())
    assert ref["epochs"] == 12

    # the data stage first, so that the job killed below is the training job
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", kill_cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out_dir = workdir / "results/kill" / rel
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw", "OMP_NUM_THREADS": "1"}
    out_log = workdir / "killed_run.log"
    with open(out_log, "w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), target("kill"), "--cores", "1", "--configfile", kill_cfg],
            cwd=workdir,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Snakemake and the job die together
        )
    try:
        deadline = time.monotonic() + 300
        # wait until the job has checkpointed at least 3 epochs but not finished
        while (
            _history_rows(out_dir / "history.csv") < 3 or not (out_dir / "checkpoint.pt").exists()
        ):
            if proc.poll() is not None:
                pytest.fail("the job ended before it was killed:\n" + out_log.read_text()[-3000:])
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_after = _history_rows(out_dir / "history.csv")
    assert 3 <= killed_after < 12, killed_after
    assert not (out_dir / "metrics.json").exists()

    # a killed Snakemake leaves its lock behind: --unlock, then rerun the incomplete job
    r = run_snakemake(workdir, target("kill"), "--unlock", "--configfile", kill_cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    r = run_snakemake(
        workdir, target("kill"), "--cores", "1", "--configfile", kill_cfg, "--rerun-incomplete"
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    log = (workdir / "logs/kill" / rel / "model.pt.log").read_text()
    resumed = re.search(r"\(resumed after epoch (\d+)\)", log)
    assert resumed, log[-3000:]
    done = int(resumed.group(1))
    assert done >= 3  # it did not start again from epoch 1
    after = [int(e) for e in re.findall(r"epoch (\d+): lr", log.split(resumed.group(0))[1])]
    assert after == list(range(done + 1, 13)), after  # no epoch trained twice or skipped
    got = json.loads((workdir / target("kill")).read_text())
    assert got["epochs"] == 12
    assert not (out_dir / "checkpoint.pt").exists()
    for key in ("test_f_rmse", "test_f_mae", "test_e_rmse", "test_e_mae", "best_epoch"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=0), key
