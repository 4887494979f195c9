"""--keep-going past a failing job: the rest of the grid finishes."""

from __future__ import annotations

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


def test_keep_going_finishes_the_grid_past_a_diverging_job(workdir):
    # w_A = 1e300 cannot be represented in the model's float32 loss: that job must fail
    # with a clear message while --keep-going finishes every other model
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
    assert "loss weight w_A = 1e+300 does not fit" in log, log[-2000:]
    assert not (bad / "model.pt").exists()
    for role in ("student", "control"):
        assert (workdir / f"results/diverge/models/{role}/{ARCH}/seed0/metrics.json").exists(), out[
            -3000:
        ]
