"""Device resolution (training.device / efficiency.device) and hippynn's kernels per device."""

from __future__ import annotations

import logging

import pytest

from aedistill.device import (
    CPU_KERNELS,
    KERNELS_VAR,
    assigned_gpu,
    job_device,
    requested_device,
    resolve_device,
    set_kernels,
)
from aedistill.errors import UserInputError


def test_resolution():
    assert resolve_device("auto", cuda_available=False, env={}) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("cpu", cuda_available=True) == "cpu"
    assert resolve_device("cuda", cuda_available=True) == "cuda"
    with pytest.raises(UserInputError, match=r"^efficiency.device is 'cuda' but torch sees no"):
        resolve_device("cuda", cuda_available=False, key="efficiency.device")
    with pytest.raises(UserInputError, match="training.device: 'gpu' is not one of"):
        resolve_device("gpu", cuda_available=True)


@pytest.mark.parametrize(
    "env, given",
    [
        ({}, None),
        ({"CUDA_VISIBLE_DEVICES": ""}, None),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, None),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),  # GPU index 0
        ({"SLURM_JOB_GPUS": "0"}, "SLURM_JOB_GPUS=0"),
        ({"SLURM_GPUS_ON_NODE": "0"}, None),  # a count: none
        ({"SLURM_GPUS": "a100:0"}, None),
        ({"SLURM_GPUS": "a100:1"}, "SLURM_GPUS=a100:1"),
        ({"SLURM_GPUS_ON_NODE": "1"}, "SLURM_GPUS_ON_NODE=1"),
    ],
)
def test_assigned_gpu(env, given):
    assert assigned_gpu(env) == given


def test_auto_warns_when_a_job_given_a_gpu_falls_back_to_the_cpu(caplog):
    with caplog.at_level(logging.WARNING, logger="aedistill.device"):
        assert resolve_device("auto", cuda_available=False, env={"SLURM_GPUS_ON_NODE": "1"})
    (rec,) = caplog.records
    msg = rec.getMessage()
    assert rec.levelno == logging.WARNING
    assert msg.startswith("training.device is auto and torch sees no CUDA device although")
    assert "SLURM_GPUS_ON_NODE=1" in msg and "running on the CPU" in msg
    import torch

    assert f"torch {torch.__version__}" in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aedistill.device"):
        assert resolve_device("auto", cuda_available=False, env={}) == "cpu"
    assert not caplog.records  # no GPU given: the CPU is what was asked for


def test_requested_device_from_a_jobs_config_sections():
    assert requested_device({"training": {"device": "auto"}, "dataset": {}}) == "auto"
    assert requested_device({"efficiency": {"device": "cuda"}, "dataset": {}}) == "cuda"
    assert requested_device({"dataset": {"source": "emt"}}) == "cpu"
    assert requested_device(None) == "cpu"


def test_job_device_never_raises(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert job_device({"training": {"device": "cuda"}}) == "cpu"  # the job stops itself
    assert job_device({"training": {"device": "auto"}}) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert job_device({"training": {"device": "auto"}}) == "cuda"
    assert job_device({"efficiency": {"device": "cpu"}}) == "cpu"


def test_kernels_raw_on_the_cpu_hippynns_choice_on_cuda():
    env: dict[str, str] = {}
    assert set_kernels("cpu", env) == CPU_KERNELS and env == {KERNELS_VAR: CPU_KERNELS}
    env = {}
    assert set_kernels("cuda", env) is None and env == {}
    env = {KERNELS_VAR: "numba"}  # the user's choice wins
    assert set_kernels("cpu", env) == "numba"
    assert set_kernels("cuda", env) == "numba"


class _Params:
    def __init__(self, config):
        self.config = config


class _Job:
    """What script_logging reads of Snakemake's ``snakemake`` object."""

    def __init__(self, config, log):
        self.params, self.threads, self.log = _Params(config), 1, [str(log)]


@pytest.mark.parametrize(
    "config, cuda, kernels",
    [
        ({"training": {"device": "auto"}}, False, CPU_KERNELS),
        ({"training": {"device": "auto"}}, True, None),
        ({"efficiency": {"device": "cuda"}}, True, None),
        ({"efficiency": {"device": "cpu"}}, True, CPU_KERNELS),
        ({"dataset": {}}, True, CPU_KERNELS),  # jobs without a device section: the CPU
    ],
)
def test_a_jobs_kernels_follow_its_device(monkeypatch, tmp_path, config, cuda, kernels):
    import torch

    from aedistill.workflow import script_logging

    monkeypatch.delenv(KERNELS_VAR, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with script_logging(_Job(config, tmp_path / "job.log")):
        import os

        assert os.environ.get(KERNELS_VAR) == kernels


def test_the_paper_config_asks_for_cuda_and_stops_in_one_line_without_it(repo):
    from aedistill.config import load_config

    cfg = load_config(repo / "config" / "paper.yaml")
    assert cfg["training"]["device"] == cfg["efficiency"]["device"] == "cuda"
    for key in ("training", "efficiency"):
        with pytest.raises(UserInputError) as err:
            resolve_device(cfg[key]["device"], cuda_available=False, key=f"{key}.device")
        assert str(err.value).startswith(f"{key}.device is 'cuda' but torch sees no CUDA")
        assert "\n" not in str(err.value)


def test_the_job_log_says_where_it_ran(caplog):
    with caplog.at_level(logging.INFO, logger="aedistill.device"):
        resolve_device("auto", cuda_available=False, env={})
        resolve_device("cpu", key="efficiency.device")
    assert [r.getMessage() for r in caplog.records] == [
        "training.device auto: running on cpu",
        "efficiency.device cpu: running on cpu",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aedistill.device"):
        assert job_device({"training": {"device": "cpu"}}) == "cpu"
        assert job_device({"efficiency": {"device": "auto"}}) in ("cpu", "cuda")
    assert not caplog.records  # the kernel choice before the job starts says nothing
