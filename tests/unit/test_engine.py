"""One engine choice (aedistill.engine) for per-model jobs, stack jobs and the rules."""

from __future__ import annotations

import json

import pytest

from aedistill.config import validate_config
from aedistill.data.emt import rattled_fcc_emt
from aedistill.data.split import make_split
from aedistill.engine import choose_engine, grid_in_stacks
from aedistill.errors import UserInputError
from aedistill.training import JobModel, train_stack_job

ARCH = "L1-W6-S4"


def cfg(model=None, **training):
    return validate_config(
        {
            "model": {"cutoff_soft_max": 3.5, "cutoff_hard_max": 4.0, **(model or {})},
            "training": {"max_epochs": 1, "batch_size": 4, **training},
        }
    )


def test_the_engine_is_the_configured_one_where_it_can_train_the_model():
    assert choose_engine(cfg(), ARCH, "cpu") == "fast"
    assert choose_engine(cfg(engine="hippynn"), ARCH, "cpu") == "hippynn"
    # a GPU: the fast engine is CPU-only
    assert choose_engine(cfg(), ARCH, "cuda") == "hippynn"
    # a model it does not support
    assert choose_engine(cfg({"interaction_layers": 2}), ARCH, "cpu") == "hippynn"


def test_rules_stack_the_grid_only_where_the_fast_engine_trains_it():
    assert grid_in_stacks(cfg(stack_grid=True))
    assert not grid_in_stacks(cfg(stack_grid=False))
    assert grid_in_stacks(cfg(stack_grid=True, device="auto"))  # a stack job on a GPU: hippynn
    # cuda asked for explicitly (the config check refuses it with engine fast)
    assert not grid_in_stacks(
        {"training": {"stack_grid": True, "engine": "fast", "device": "cuda"}}
    )


@pytest.mark.parametrize(
    ("training", "match"),
    [
        ({"engine": "fast", "device": "cuda"}, "engine 'fast' runs on the CPU only"),
        ({"engine": "hippynn", "stack_grid": True}, "stack_grid trains the grid in stacks"),
    ],
)
def test_contradictions_are_refused_at_config_check_in_one_line(training, match):
    with pytest.raises(UserInputError, match=match) as err:
        cfg(**training)
    assert "\n" not in str(err.value) and "key 'training'" in str(err.value)


def test_unsupported_model_falls_back_to_hippynn_in_a_stack_job(tmp_path):
    """A stack job whose models the fast engine cannot train trains them with hippynn, one
    by one, instead of failing; their files and run record are the usual ones."""
    ds = rattled_fcc_emt(8, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
    c = cfg({"interaction_layers": 2})
    jobs = [JobModel("control", s, tmp_path / f"c{s}") for s in (0, 1)]
    results = train_stack_job(c, ARCH, jobs, ds, split)
    for jm, r in zip(jobs, results, strict=True):
        m = json.loads((jm.out_dir / "metrics.json").read_text())
        assert m == json.loads(json.dumps(r.metrics))
        assert m["engine"] == "hippynn" and "stack_size" not in m and m["epochs"] == 1
        assert (jm.out_dir / "model.pt").exists() and (jm.out_dir / "history.csv").exists()
    assert results[0].metrics["test_f_rmse"] != results[1].metrics["test_f_rmse"]


def test_a_stack_job_records_the_fast_engine_and_its_stack(tmp_path):
    ds = rattled_fcc_emt(8, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
    jobs = [JobModel("control", s, tmp_path / f"c{s}") for s in (0, 1)]
    for r in train_stack_job(cfg(), ARCH, jobs, ds, split):
        assert r.metrics["engine"] == "fasttrain" and r.metrics["stack_size"] == 2
        assert r.metrics["device"] == "cpu"


def test_a_stack_job_on_a_gpu_trains_its_models_there_with_hippynn(tmp_path, monkeypatch):
    """device auto on a GPU machine: no CPU stack; every model of the job trains on cuda
    with hippynn (the loops are replaced by recorders: this machine may have no GPU)."""
    import aedistill.fast.loop
    import aedistill.hippynn_train
    import aedistill.training

    made = []

    class Recorder:
        def __init__(self, config, arch, job, dataset, split, device, max_epochs=None):
            made.append((job.role, job.seed, device))

    def no_stack(*args, **kwargs):
        raise AssertionError("a CPU stack on a GPU machine")

    def drive(loop, jobs, *args):
        assert isinstance(loop, Recorder) and len(jobs) == 1
        return [f"{jobs[0].role}{jobs[0].seed}"]

    monkeypatch.setattr(aedistill.training, "resolve_device", lambda requested: "cuda")
    monkeypatch.setattr(aedistill.training, "_drive", drive)
    monkeypatch.setattr(aedistill.hippynn_train, "HippynnLoop", Recorder)
    monkeypatch.setattr(aedistill.fast.loop, "FastLoop", no_stack)
    jobs = [JobModel("control", s, tmp_path / f"c{s}") for s in (0, 1)]
    assert train_stack_job(cfg(stack_grid=True), ARCH, jobs, None, None) == ["control0", "control1"]
    assert made == [("control", 0, "cuda"), ("control", 1, "cuda")]
