"""Training: loss by hand, paired initial weights, Born-Again schedule, resume, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from aedistill.config import validate_config
from aedistill.data.emt import rattled_fcc_emt
from aedistill.data.split import make_split
from aedistill.errors import UserInputError
from aedistill.hippynn_train import prepare_training
from aedistill.loss import get_loss_weights
from aedistill.models import load_model, make_calculator
from aedistill.roles import LossWeights, plan_role
from aedistill.tables import HISTORY_COLUMNS
from aedistill.training import role_split, train_model
from tests.helpers import assert_forces_are_minus_gradient

ARCH = "L1-W6-S4"


@pytest.fixture(scope="module")
def data():
    ds = rattled_fcc_emt(16, lattice_jitter=0.02)
    return ds, make_split(ds.n_conf, 0.625, 0.1875, 0.1875, seed=0)


#: both training engines go through the same contract tests
ENGINES = ["fast", "hippynn"]


def cfg(**training):
    return validate_config(
        {
            "model": {"cutoff_soft_max": 3.5, "cutoff_hard_max": 4.0},
            "training": {"max_epochs": 2, "batch_size": 4, **training},
            "born_again": {
                "schedule": [
                    {"epoch": 1, "w_A": 200, "w_F": 75, "w_E": 0},
                    {"epoch": 2, "w_A": 100, "w_F": 45, "w_E": 0.5},
                    {"epoch": 3, "w_A": 0, "w_F": 15, "w_E": 1},
                ]
            },
        }
    )


def fake_labels(ds):
    """Teacher-like labels: exact ε plus a smooth per-atom offset (0 on padding)."""
    lab = ds.atom_energies + 0.02 * np.cos(np.arange(ds.species.shape[1]))[None, :]
    lab[ds.species == 0] = 0
    return lab


def test_roles_use_the_configured_weights():
    c = cfg()
    assert plan_role(c, "teacher").weights == LossWeights(1.0, 10.0, 0.0)
    assert plan_role(c, "control").weights == LossWeights(1.0, 10.0, 0.0)
    assert plan_role(c, "student").weights == LossWeights(1.0, 30.0, 100.0)
    assert plan_role(c, "matched_control").weights == LossWeights(1.0, 30.0, 0.0)
    assert plan_role(c, "student_wA2.5").weights == LossWeights(1.0, 30.0, 2.5)
    assert plan_role(c, "oracle").labels == "exact"
    ba = plan_role(c, "born_again")
    assert [ba.weights_at(e) for e in (1, 2, 3, 9)] == [
        LossWeights(0, 75, 200),
        LossWeights(0.5, 45, 100),
        LossWeights(1, 15, 0),
        LossWeights(1, 15, 0),
    ]
    with pytest.raises(UserInputError, match="unknown role"):
        plan_role(c, "teacher2")


def test_loss_equals_hand_computation(tmp_path, data):
    ds, split = data
    c = cfg()
    labels = fake_labels(ds)
    s = prepare_training(c, "student", ARCH, 0, ds, split, labels)
    model, loss, _ = s.training_modules
    batch = next(iter(s.database.make_generator("train", "eval", batch_size=100)))
    n_in = len(s.database.inputs)
    with torch.enable_grad():
        outputs = model(*batch[:n_in])
    got = float(loss(*outputs, *batch[n_in:])[0])

    # hand computation on the same configurations, independent of the loss graph
    idx = split.train
    sub = ds.subset(idx)
    from aedistill.models import save_model

    save_model(tmp_path / "m.pt", s.spec, s.graph)
    m = load_model(tmp_path / "m.pt")
    pred = m.predict(sub, batch_size=100)
    mask = sub.species > 0
    de = (pred["energy"] - sub.energy) / sub.n_atoms
    df = (pred["forces"] - sub.forces)[mask]
    da = (pred["atom_energies"] - labels[idx])[mask]

    def lerr(x):
        return np.sqrt(np.mean(x**2)) + np.mean(np.abs(x))

    net = s.graph.network.torch_module
    l2 = sum(
        float((p.double() ** 2).sum())
        for n, p in net.named_parameters()
        if n.endswith("weight") or n.endswith("int_weights")
    )
    hier = m.predictor()  # R: hierarchicality per atom, from the inference graph
    from hippynn.graphs import Predictor

    g = m.graph
    hp = Predictor([g.species, g.positions, g.cell], [g.henergy.hierarchicality])
    r = (
        hp(
            species=torch.as_tensor(sub.species),
            positions=torch.as_tensor(sub.positions, dtype=torch.float32),
            cell=torch.as_tensor(sub.cell, dtype=torch.float32),
        )[g.henergy.hierarchicality.name]
        .numpy()
        .reshape(-1)
    )
    del hier
    w = c["loss"]
    want = (
        1.0 * lerr(de)
        + 30.0 * lerr(df)
        + 100.0 * lerr(da)
        + w["w_L2"] * l2
        + w["w_R"] * np.mean(r / sub.n_atoms)
    )
    assert got == pytest.approx(want, rel=2e-4)


def test_paired_roles_start_from_identical_weights(data):
    ds, split = data
    c = cfg()
    labels = fake_labels(ds)
    states = {
        role: prepare_training(c, role, ARCH, 7, ds, split, labels).initial_state
        for role in ("student", "control", "matched_control", "oracle")
    }
    ref = states["student"]
    for role, st in states.items():
        for k, v in ref.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, st[k]), (role, k)
    other = prepare_training(c, "control", ARCH, 8, ds, split).initial_state
    assert not torch.equal(
        other["network.blocks.0.0.base_layer.int_weights"],
        ref["network.blocks.0.0.base_layer.int_weights"],
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_born_again_weights_switch_at_schedule_boundaries(tmp_path, data, engine):
    ds, split = data
    r = train_model(
        cfg(engine=engine),
        "born_again",
        ARCH,
        0,
        ds,
        split,
        tmp_path,
        labels=fake_labels(ds),
        max_epochs=3,
    )
    h = r.history
    assert h[["w_E", "w_F", "w_A"]].values.tolist() == [[0, 75, 200], [0.5, 45, 100], [1, 15, 0]]


@pytest.mark.parametrize("engine", ENGINES)
def test_training_outputs_forces_and_resume(tmp_path, data, engine):
    ds, split = data
    c = cfg(engine=engine, max_epochs=4, checkpoint_every=1)
    labels = fake_labels(ds)
    ref = train_model(c, "student", ARCH, 0, ds, split, tmp_path / "ref", labels=labels)

    # outputs of the contract
    d = tmp_path / "ref"
    assert sorted(p.name for p in d.iterdir()) == ["history.csv", "metrics.json", "model.pt"]
    hist = pd.read_csv(d / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS and hist.epoch.tolist() == [1, 2, 3, 4]
    met = json.loads((d / "metrics.json").read_text())
    for key in ("n_weights", "test_e_rmse", "test_f_rmse", "test_eps_rmse", "best_epoch"):
        assert key in met
    assert met["epochs"] == 4
    assert met["device"] == "cpu"
    # training-set errors (H9): the saved model against the ground truth of its training
    # configurations, recomputed here from its predictions
    pred = load_model(d / "model.pt").predict(ds.subset(split.train))
    sub = ds.subset(split.train)
    mask = sub.species > 0
    f_rmse = np.sqrt(np.mean((pred["forces"] - sub.forces)[mask] ** 2))
    e_rmse = np.sqrt(np.mean(((pred["energy"] - sub.energy) / mask.sum(1)) ** 2))
    assert met["train_f_rmse"] == pytest.approx(f_rmse, rel=1e-9)
    assert met["train_e_rmse"] == pytest.approx(e_rmse, rel=1e-9)
    assert met["train_f_rmse"] != pytest.approx(met["test_f_rmse"], rel=1e-6)

    # forces of the trained model = -dE/dx by finite differences (double precision)
    calc = make_calculator(d / "model.pt")
    calc.to(torch.float64)
    atoms = ds.to_atoms(3)
    atoms.calc = calc
    assert_forces_are_minus_gradient(atoms, [(0, 1), (len(atoms) - 1, 2)], abs=1e-6)

    # interrupted after epoch 2, rerun resumes at epoch 3 and ends identical to `ref`
    class Crash(Exception):
        pass

    def crash(epoch):
        if epoch == 2:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        train_model(c, "student", ARCH, 0, ds, split, out, labels=labels, callbacks=[crash])
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    assert pd.read_csv(out / "history.csv").epoch.tolist() == [1, 2]
    seen = []
    res = train_model(c, "student", ARCH, 0, ds, split, out, labels=labels, callbacks=[seen.append])
    assert seen == [3, 4]
    assert res.history.epoch.tolist() == [1, 2, 3, 4]
    assert not (out / "checkpoint.pt").exists()
    cols = [c for c in HISTORY_COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(res.history[cols], ref.history[cols])
    assert res.metrics["test_f_rmse"] == ref.metrics["test_f_rmse"]


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_same_metrics(tmp_path, data, engine):
    ds, split = data
    a = train_model(cfg(engine=engine), "control", ARCH, 3, ds, split, tmp_path / "a")
    b = train_model(cfg(engine=engine), "control", ARCH, 3, ds, split, tmp_path / "b")
    drop = ("train_time_s",)

    def same(m):  # JSON text: NaN compares equal to NaN
        return json.dumps({k: v for k, v in m.items() if k not in drop}, sort_keys=True)

    assert same(a.metrics) == same(b.metrics)
    assert np.isnan(a.metrics["test_eps_rmse"])  # control: no labels learned


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_loss_names_epoch_and_term(tmp_path, data, engine):
    ds, split = data
    bad = ds.subset(np.arange(ds.n_conf))
    bad.energy = bad.energy.copy()
    bad.energy[split.train[0]] = np.nan
    with pytest.raises(UserInputError, match=r"diverged at epoch 1: train loss terms 'E-RMSE'=nan"):
        train_model(cfg(engine=engine), "control", ARCH, 0, bad, split, tmp_path)
    assert not any(p.name.startswith(".hippynn") for p in tmp_path.iterdir())
    labels = fake_labels(ds)
    labels[split.train[0], 0] = np.inf
    with pytest.raises(UserInputError, match="labels of configuration"):
        train_model(cfg(engine=engine), "student", ARCH, 0, ds, split, tmp_path, labels=labels)


def test_oracle_needs_exact_atom_energies(tmp_path, data):
    ds, split = data
    ds2 = ds.subset(np.arange(ds.n_conf))
    ds2.atom_energies = None
    with pytest.raises(UserInputError, match="oracle"):
        train_model(cfg(), "oracle", ARCH, 0, ds2, split, tmp_path)


@pytest.mark.parametrize("engine", ENGINES)
def test_wall_time_limit_stops_training(tmp_path, data, engine):
    ds, split = data
    r = train_model(
        cfg(engine=engine, max_epochs=50, max_wall_minutes=1e-6),
        "teacher",
        ARCH,
        0,
        ds,
        split,
        tmp_path,
    )
    assert r.metrics["epochs"] == 1 and r.metrics["stop_reason"] == "max_wall_minutes"
    assert (tmp_path / "model.pt").exists()


def test_loss_weights_live_in_the_loss_module(data):
    ds, split = data
    s = prepare_training(cfg(), "student", ARCH, 0, ds, split, fake_labels(ds))
    assert get_loss_weights(s.training_modules.loss) == {"w_E": 1.0, "w_F": 30.0, "w_A": 100.0}


def test_pair_cache_matches_direct_pair_finding_in_small_cells(tmp_path, data):
    """4-atom cells with a 7.5 Å cutoff need 2 periodic images: the cached pairs used in
    training must give the same energies and forces as the inference graph's pair finder."""
    ds, split = data
    c = validate_config({"training": {"batch_size": 4}})  # default cutoffs 1.5/7.0/7.5 Å
    s = prepare_training(c, "control", ARCH, 0, ds, split)
    model, _, evaluator = s.training_modules
    gen = s.database.make_generator("valid", "eval", batch_size=100)
    got = evaluator.evaluate(gen, eval_type="valid")
    from aedistill.models import save_model

    save_model(tmp_path / "m.pt", s.spec, s.graph)
    sub = ds.subset(split.valid)
    pred = load_model(tmp_path / "m.pt").predict(sub)
    de = (pred["energy"] - sub.energy) / sub.n_atoms
    df = (pred["forces"] - sub.forces)[sub.species > 0]
    assert got["E-RMSE"] == pytest.approx(np.sqrt(np.mean(de**2)), rel=1e-4)
    assert got["F-RMSE"] == pytest.approx(np.sqrt(np.mean(df**2)), rel=1e-4)


def test_relative_out_dir_gets_checkpoints_during_training(tmp_path, data, monkeypatch):
    # Snakemake passes relative paths; the epoch loop runs in a scratch directory, so a
    # relative out_dir must still receive history.csv and checkpoint.pt while training runs
    ds, split = data
    monkeypatch.chdir(tmp_path)
    seen = []

    def look(epoch):
        seen.append(
            (
                epoch,
                (tmp_path / "rel/out/checkpoint.pt").exists(),
                len(pd.read_csv(tmp_path / "rel/out/history.csv")),
            )
        )

    train_model(
        cfg(max_epochs=2, checkpoint_every=1),
        "control",
        ARCH,
        0,
        ds,
        split,
        "rel/out",
        callbacks=[look],
    )
    assert seen == [(1, True, 1), (2, True, 2)]


def test_training_device_resolution():
    from aedistill.training import resolve_device

    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("cpu", cuda_available=True) == "cpu"
    assert resolve_device("cuda", cuda_available=True) == "cuda"
    with pytest.raises(UserInputError, match="training.device is 'cuda' but torch sees no CUDA"):
        resolve_device("cuda", cuda_available=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_cuda_training_without_a_gpu_is_refused_in_one_line(tiny_config, tiny_dataset, tmp_path):
    from aedistill.data.split import make_split

    config = {**tiny_config, "training": {**tiny_config["training"], "device": "cuda"}}
    split = make_split(tiny_dataset.n_conf, 0.6, 0.2, 0.2, 0)
    with pytest.raises(UserInputError, match="^training.device is 'cuda'"):
        train_model(config, "control", "L1-W8-S4", 0, tiny_dataset, split, tmp_path / "m")
    assert not (tmp_path / "m" / "model.pt").exists()


def test_leaky_teacher_trains_on_another_split(data, caplog):
    """labels.teacher_split_seed: teachers train on the split of that seed (same fractions),
    every other role on the run's split; the log counts the leaked test configurations."""
    ds, split = data
    c = cfg()
    c["dataset"]["split"].update(train=0.625, valid=0.1875, test=0.1875, seed=0)
    assert role_split(c, "teacher", split, ds.n_conf) is split  # absent: the run's split
    c["labels"]["teacher_split_seed"] = 5
    for role in ("control", "student", "matched_control", "oracle"):
        assert role_split(c, role, split, ds.n_conf) is split
    with caplog.at_level("INFO", logger="aedistill.training"):
        own = role_split(c, "teacher", split, ds.n_conf)
    ref = make_split(ds.n_conf, 0.625, 0.1875, 0.1875, seed=5)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(own, part), getattr(ref, part))
    leak = np.intersect1d(own.train, split.test).size
    assert 0 < leak <= len(split.test)
    assert f"{leak} of the run's {len(split.test)} test configurations" in caplog.text
