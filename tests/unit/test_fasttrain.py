"""Fast stacked training (aedistill.fast) against hippynn, the independent path.

Everything in float64: energies, forces, ε, hierarchicality and every loss term equal
hippynn's; gradients and one epoch of Adam steps equal hippynn's training step; a stack of
models equals each model trained alone; the per-model controller equals hippynn's.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from aedistill import fast as ft
from aedistill.config import validate_config
from aedistill.data.canonical import from_atoms_list
from aedistill.data.emt import rattled_fcc_emt
from aedistill.data.split import make_split
from aedistill.database import _Batches
from aedistill.hippynn_train import prepare_training
from aedistill.loss import get_loss_weights
from aedistill.models import load_model, save_model

ARCH = "L1-W6-S4"


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def cfg(energy="per_atom", **training):
    return validate_config(
        {
            "model": {"cutoff_soft_max": 3.5, "cutoff_hard_max": 4.0},
            "training": {"max_epochs": 3, "batch_size": 3, **training},
            "loss": {"w_R": 0.5, "w_L2": 1e-4, "energy": energy},
        }
    )


@pytest.fixture(scope="module")
def data():
    ds = rattled_fcc_emt(12, seed=1, lattice_jitter=0.02)
    return ds, make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)


def labels_of(ds):
    lab = ds.atom_energies + 0.02 * np.cos(np.arange(ds.species.shape[1]))[None, :]
    lab[ds.species == 0] = 0
    return lab


def _stack(config, role, arch, seed, ds, split, labels=None, order_seed=0):
    setup = prepare_training(config, role, arch, seed, ds, split, labels)
    member = ft.StackMember(role, setup.graph.modules, setup.plan, setup.labels, 3)
    settings = ft.StackSettings.from_config(config, len(split.train))
    return setup, ft.StackTrainer([member], ds, split, settings, order_seed)


def _hippynn_predict(setup, ds, tmp_path):
    """Energy, forces, ε from a fresh hippynn inference graph (pair finder, not the cache)."""
    save_model(tmp_path / "m.pt", setup.spec, setup.graph)
    return load_model(tmp_path / "m.pt").predict(ds, batch_size=4)


def two_species(n=6, seed=0):
    """Rattled fcc cells with Al and Cu (EMT), 4-8 atoms, ±2 % lattice constants."""
    rng = np.random.default_rng(seed)
    frames, e, f, eps = [], [], [], []
    for i in range(n):
        a = bulk("Al", "fcc", a=4.0 * (1 + 0.02 * rng.standard_normal()), cubic=True)
        a = a.repeat((1, 1, 1 + i % 2))
        a.numbers[rng.random(len(a)) < 0.4] = 29
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        e.append(a.get_potential_energy())
        f.append(a.get_forces())
        eps.append(a.get_potential_energies())
        frames.append(a.copy())
    return from_atoms_list(frames, e, f, eps, source="emt")


@pytest.mark.parametrize("l_max", [1, 0])
def test_predictions_equal_hippynn(data, tmp_path, l_max):
    ds, split = data
    config = cfg()
    config["model"]["l_max"] = l_max
    setup, tr = _stack(config, "control", "L2-W5-S3", 4, ds, split)
    # perturb sensitivities and E0, undo the E0 initialisation's 1e-2 decay of the head:
    # every weight matters and forces are O(0.1 eV/Å)
    with torch.no_grad():
        for name in ("sigma", "mu", "head0_w"):
            tr.params[name].mul_(1.1)
        tr.params["head1_w"].mul_(100.0)
    state = tr.layout.export(tr.params, 0, tr.templates[0])
    setup.graph.modules.load_state_dict(state)
    ref = _hippynn_predict(setup, ds, tmp_path)
    out = ft.stack_forward(tr.layout, tr.params, tr._batch(np.arange(ds.n_conf)), False)
    mask = ds.species > 0
    np.testing.assert_allclose(out.energy[0].numpy(), ref["energy"], rtol=1e-12, atol=1e-10)
    f_ref = ref["forces"][mask]
    assert np.abs(f_ref).max() > 1e-2  # forces are not trivially zero
    np.testing.assert_allclose(out.forces[0].numpy(), f_ref, rtol=0, atol=1e-12)
    eps_ref = ref["atom_energies"][mask]
    np.testing.assert_allclose(out.atom_energies[0].numpy(), eps_ref, rtol=1e-12, atol=1e-10)


def test_two_species_equal_hippynn(tmp_path):
    ds = two_species()
    split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
    config = cfg()
    config["dataset"]["species"] = [13, 29]
    setup, tr = _stack(config, "control", ARCH, 1, ds, split)
    assert tr.layout.nf_in == 2
    ref = _hippynn_predict(setup, ds, tmp_path)
    out = ft.stack_forward(tr.layout, tr.params, tr._batch(np.arange(ds.n_conf)), False)
    mask = ds.species > 0
    np.testing.assert_allclose(out.energy[0].numpy(), ref["energy"], rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(out.forces[0].numpy(), ref["forces"][mask], rtol=0, atol=1e-12)


def _hippynn_metrics(setup, split_name):
    ev = setup.training_modules.evaluator
    gen = setup.database.make_generator(split_name, "eval", batch_size=3)
    with contextlib.redirect_stdout(None):
        return ev.evaluate(gen, eval_type=split_name)


@pytest.mark.parametrize(
    ("role", "energy"),
    [("control", "per_atom"), ("oracle", "per_atom"), ("student", "per_atom"),
     ("control", "total"), ("student", "total")],
)  # fmt: skip
def test_loss_terms_equal_hippynn(data, role, energy):
    ds, split = data
    config = cfg(energy)
    labels = labels_of(ds) if role == "student" else None
    setup, tr = _stack(config, role, ARCH, 2, ds, split, labels)
    ref = _hippynn_metrics(setup, "valid")
    got = tr.evaluate(np.asarray(split.valid))
    keys = ["E-RMSE", "E-MAE", "F-RMSE", "F-MAE", "L2", "R", "Lerr"]
    if role != "control":
        keys += ["A-RMSE", "A-MAE"]
    else:
        assert np.isnan(got["A-RMSE"][0])
    for k in keys:
        assert got[k][0] == pytest.approx(ref[k], rel=1e-11, abs=1e-14), k
    # training loss of one batch (hippynn's "Loss" includes w_L2 L2 + w_R R)
    b = tr._batch(np.asarray(split.valid))
    loss, terms = tr.batch_loss(b)
    assert float(loss[0]) == pytest.approx(ref["Loss"], rel=1e-11)
    assert ref["R"] > 0 and ref["L2"] > 0  # the regularisers are exercised


@pytest.mark.parametrize("energy", ["per_atom", "total"])
def test_energy_term_is_the_configured_energy(data, tmp_path, energy):
    """loss.energy: the energy errors of both engines' validation metrics are those of E/N
    (eV/atom) or of the total E (eV), computed here from a saved model's predictions."""
    ds, split = data
    setup, tr = _stack(cfg(energy), "control", ARCH, 3, ds, split)
    with torch.no_grad():
        tr.params["head1_w"].mul_(100.0)  # energy errors well above round-off
    setup.graph.modules.load_state_dict(tr.layout.export(tr.params, 0, tr.templates[0]))
    valid = np.asarray(split.valid)
    pred = _hippynn_predict(setup, ds, tmp_path)["energy"][valid]
    de = pred - ds.energy[valid]
    if energy == "per_atom":
        de = de / (ds.species[valid] > 0).sum(1)
    expected = np.sqrt(np.mean(de**2))
    assert expected > 1e-3
    assert tr.evaluate(valid)["E-RMSE"][0] == pytest.approx(expected, rel=1e-9)
    assert _hippynn_metrics(setup, "valid")["E-RMSE"] == pytest.approx(expected, rel=1e-9)


def _hippynn_epoch(setup, split, order, lr):
    """One epoch of hippynn's standard step (Adam) over ``order`` (train-split positions)."""
    mods = setup.training_modules
    db = setup.database
    arrays = [db.splits["train"][k] for k in db.var_list]
    n_in = len(db.inputs)
    params = [p for p in mods.model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses, grads = [], None
    mods.model.train()
    for batch in _Batches(arrays, torch.as_tensor(order), 3):
        opt.zero_grad(set_to_none=True)
        out = mods.model(*batch[:n_in])
        loss = mods.loss(*out, *batch[n_in:])[0]
        loss.backward()
        if grads is None:
            grads = {id(p): p.grad.clone() for p in params}
        opt.step()
        losses.append(float(loss))
    return losses, grads


@pytest.mark.parametrize(("role", "energy"), [("control", "per_atom"), ("student", "per_atom"),
                                             ("control", "total")])  # fmt: skip
def test_gradients_and_first_epoch_equal_hippynn(data, role, energy):
    ds, split = data
    config = cfg(energy)
    labels = labels_of(ds) if role == "student" else None
    setup, tr = _stack(config, role, ARCH, 7, ds, split, labels)
    assert get_loss_weights(setup.training_modules.loss)["w_F"] == setup.plan.weights.w_F
    order = np.random.default_rng(0).permutation(len(split.train))
    train = np.asarray(split.train)
    # gradients of the first batch
    b = tr._batch(train[order[:3]])
    loss, _ = tr.batch_loss(b)
    loss.sum().backward()
    grads = {k: v.grad[0].clone() for k, v in tr.params.items() if v.requires_grad}
    for v in tr.params.values():
        v.grad = None
    ref_losses, ref_grads = _hippynn_epoch(setup, split, order, 1e-3)
    mods = setup.graph.modules
    trained = [s for s in tr.layout.slots if s.get(mods).requires_grad]
    assert {s.name for s in trained} == set(grads)  # E0 (head0_w) frozen in both
    assert len(trained) == len(tr.layout.slots) - 1
    for s in trained:
        g_ref = s.to_stack(ref_grads[id(s.get(mods))])
        scale = float(g_ref.abs().max())
        assert scale > 0, s.name
        np.testing.assert_allclose(grads[s.name], g_ref, rtol=1e-9, atol=1e-11 * scale)
    # one epoch of Adam steps, same batches: the same losses and the same final weights
    losses = [float(tr.train_step(train[order[i : i + 3]])[0]) for i in range(0, len(train), 3)]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    final = tr.layout.export(tr.params, 0, tr.templates[0])
    for k, v in mods.state_dict().items():
        if isinstance(v, torch.Tensor):
            np.testing.assert_allclose(final[k], v.detach(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_stack_equals_models_trained_alone(data):
    ds, split = data
    config = cfg(max_epochs=3)
    labels = labels_of(ds)
    settings = ft.StackSettings.from_config(config, len(split.train))
    specs = [("control", 1), ("student", 1), ("control", 2)]
    members = []
    for role, seed in specs:
        _, m = ft.member_for_role(
            config, role, ARCH, seed, ds, split, labels if role == "student" else None
        )
        members.append(m)
    stacked = ft.train_stack(members, ds, split, settings, order_seed=5)
    for m, res in zip(members, stacked, strict=True):
        (alone,) = ft.train_stack([m], ds, split, settings, order_seed=5)
        cols = [c for c in alone.history.columns if c != "wall_s"]
        np.testing.assert_allclose(
            res.history[cols].to_numpy(float), alone.history[cols].to_numpy(float), rtol=1e-10
        )
        assert res.best_epoch == alone.best_epoch and res.stop_reason == alone.stop_reason
        for k, v in alone.best_state.items():
            if isinstance(v, torch.Tensor):
                np.testing.assert_allclose(res.best_state[k], v, rtol=1e-9, atol=1e-12)
    # paired initial weights: student and control of seed 1 start equal, train differently
    assert not np.allclose(
        stacked[0].history.valid_f_rmse.to_numpy(), stacked[1].history.valid_f_rmse.to_numpy()
    )


def test_export_round_trip_and_model_file(data, tmp_path):
    ds, split = data
    config = cfg()
    setup, tr = _stack(config, "control", ARCH, 3, ds, split)
    state = tr.layout.export(tr.params, 0, tr.templates[0])
    orig = setup.graph.modules.state_dict()
    assert state.keys() == orig.keys()
    for k, v in orig.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(state[k], v), k
    tr.run_epoch()
    (res,) = tr.results()
    setup.graph.modules.load_state_dict(res.best_state)
    ref = _hippynn_predict(setup, ds, tmp_path)
    with torch.no_grad():
        for k, v in tr.layout.stack([setup.graph.modules], torch.float64).items():
            tr.params[k].copy_(v)
    out = ft.stack_forward(tr.layout, tr.params, tr._batch(np.arange(ds.n_conf)), False)
    np.testing.assert_allclose(out.energy[0].numpy(), ref["energy"], rtol=1e-12)


def _run_both_controllers(metrics, min_epochs: int = 0) -> list[float]:
    """Push ``metrics`` (validation losses, one per epoch) through the fast engine's
    controller and hippynn's (``hippynn_train.controller_class``: lr patience 2, termination
    patience 4, halving) in lockstep, asserting equal continue/stop decisions and learning
    rates every epoch; returns the learning rate after each epoch run."""
    from aedistill.hippynn_train import controller_class

    settings = ft.StackSettings(1e-3, 0.5, 2, 4, 4, 0.0, 0.0, 1.0)
    mine = ft.Control(1e-3, settings, max_epochs=30, min_epochs=min_epochs)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
    ref = controller_class()(
        optimizer=opt,
        scheduler=sch,
        batch_size=4,
        max_epochs=30,
        termination_patience=4,
        stopping_key="Lerr",
        quiet=True,
        min_epochs=min_epochs,
    )
    best, lrs = float("inf"), []
    for epoch, m in enumerate(metrics):
        better = m < best
        best = min(best, m)
        go_ref = ref.push_epoch(epoch, better, m)
        go = mine.push_epoch(epoch, better, m)
        lrs.append(mine.lr)
        assert go == go_ref and mine.lr == opt.param_groups[0]["lr"], epoch
        if not go:
            break
    return lrs


def test_controller_equals_hippynn_patience_controller():
    # by hand: best at epochs 0, 1, 5; LR halved after epochs 4 and 8 (3 > 2 bad epochs);
    # stop after epoch 9 (last best 5 + patience 4 + 1 = 10 epochs)
    lrs = _run_both_controllers([5, 4, 4.5, 4.2, 4.1, 3.9, 4, 4, 4, 4, 4, 4, 4, 4])
    assert len(lrs) == 10 and lrs[-1] == pytest.approx(2.5e-4)


@pytest.mark.parametrize(("min_epochs", "n_epochs", "lr"), [(0, 6, 5e-4), (4, 8, 5e-4)])
def test_plateau_and_patience_start_at_min_epochs(min_epochs, n_epochs, lr):
    """A Born-Again student (min_epochs = first epoch of its final weights): no learning-rate
    step and no termination patience inside the loss schedule, in both engines' controllers."""
    # best at epoch index 1, then only worse. min_epochs 0: plateau from the start, halved
    # after index 4 (3 bad epochs > patience 2), stop after 1 + 4 + 1 = 6 epochs.
    # min_epochs 4: the plateau starts at index 3 (the 4th epoch, 4.6 its first best),
    # halved after index 6; patience from index 3: stop after 3 + 4 + 1 = 8 epochs.
    metrics = [5, 4, 4.5, 4.6, 4.7, 4.8, 4.9, 4.9, 4.9, 4.9, 4.9, 4.9, 4.9]
    lrs = _run_both_controllers(metrics, min_epochs)
    assert len(lrs) == n_epochs and lrs[-1] == pytest.approx(lr)
    # no step inside the schedule: the rate is unchanged for the first min_epochs + 2 epochs
    assert lrs[: min_epochs + 2] == [1e-3] * (min_epochs + 2)


@pytest.mark.parametrize("kind", ["l1", "l0", "two_species"])
def test_fused_kernels_equal_torch_reference(data, kind):
    """The numba pair kernels and their hand-written backward against the same formulas as
    plain torch ops (autograd): forces, and the loss gradient of every weight."""
    ds, split = data
    config = cfg()
    if kind == "l0":
        config["model"]["l_max"] = 0
    if kind == "two_species":
        ds = two_species()
        split = make_split(ds.n_conf, 0.5, 0.25, 0.25, seed=0)
        config["dataset"]["species"] = [13, 29]
    members = []
    for seed in (1, 2):
        _, m = ft.member_for_role(config, "control", ARCH, seed, ds, split)
        members.append(m)
    settings = ft.StackSettings.from_config(config, len(split.train))
    tr = ft.StackTrainer(members, ds, split, settings, 0)
    with torch.no_grad():
        tr.params["head1_w"].mul_(100.0)  # O(0.1 eV/Å) forces
    b = tr._batch(np.arange(ds.n_conf))
    res = {}
    for fused in (True, False):
        out = ft.stack_forward(tr.layout, tr.params, b, create_graph=True, fused=fused)
        loss = (out.forces**2).sum() + (out.energy**2).sum()
        grads = torch.autograd.grad(loss, [p for p in tr.params.values() if p.requires_grad])
        res[fused] = (out.forces.detach(), grads)
    assert res[False][0].abs().max() > 1e-2
    np.testing.assert_allclose(res[True][0], res[False][0], rtol=0, atol=1e-12)
    for g1, g0 in zip(res[True][1], res[False][1], strict=True):
        np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-12 * float(g0.abs().max()))


def test_resume_from_state_dict_equals_uninterrupted(data, tmp_path):
    """A stack checkpointed after epoch 1 (torch.save, weights_only load) and resumed in a
    fresh trainer gives the uninterrupted run's histories and best weights."""
    ds, split = data
    config = cfg(max_epochs=3)
    labels = labels_of(ds)
    settings = ft.StackSettings.from_config(config, len(split.train))

    def members():
        out = []
        for role in ("control", "student"):
            lab = labels if role == "student" else None
            out.append(ft.member_for_role(config, role, ARCH, 4, ds, split, lab)[1])
        return out

    straight = ft.train_stack(members(), ds, split, settings, order_seed=9)
    first = ft.StackTrainer(members(), ds, split, settings, order_seed=9)
    first.run_epoch()
    torch.save(first.state_dict(), tmp_path / "ck.pt")
    resumed = ft.StackTrainer(members(), ds, split, settings, order_seed=123)
    resumed.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    results = resumed.train()
    for a, b in zip(straight, results, strict=True):
        assert len(a.history) == 3
        cols = [c for c in a.history.columns if c != "wall_s"]
        np.testing.assert_array_equal(
            a.history[cols].to_numpy(float), b.history[cols].to_numpy(float)
        )
        assert a.best_epoch == b.best_epoch
        for k, v in a.best_state.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, b.best_state[k]), k


def test_stack_job_writes_model_files_and_resumes_after_interrupt(data, tmp_path):
    from aedistill.evaluation import evaluate_model
    from aedistill.training import JobModel, train_stack_job

    ds, split = data
    config = cfg(max_epochs=3)
    labels = labels_of(ds)

    def jobs(root):
        return [
            JobModel("control", 3, root / "control"),
            JobModel("student", 3, root / "student", labels),
        ]

    ref = train_stack_job(config, ARCH, jobs(tmp_path / "a"), ds, split, order_seed=2)

    def interrupt(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stack_job(
            config, ARCH, jobs(tmp_path / "b"), ds, split, order_seed=2, callbacks=[interrupt]
        )
    assert (tmp_path / "b" / "control" / "stack-checkpoint.pt").exists()
    got = train_stack_job(config, ARCH, jobs(tmp_path / "b"), ds, split, order_seed=2)
    assert not (tmp_path / "b" / "control" / "stack-checkpoint.pt").exists()
    for r, g, jm in zip(ref, got, jobs(tmp_path / "b"), strict=True):
        for k in ("test_f_rmse", "test_e_rmse", "best_epoch", "epochs", "n_lr_decays"):
            assert r.metrics[k] == g.metrics[k], k
        assert g.metrics["stop_reason"] == "max_epochs" and g.metrics["converged"] is False
        # the model file is an ordinary aedistill model: its test metrics recomputed
        assert evaluate_model(g.model_path, ds, split.test, labels=jm.labels)[
            "test_f_rmse"
        ] == pytest.approx(g.metrics["test_f_rmse"], rel=1e-12)
        hist = pd.read_csv(jm.out_dir / "history.csv")
        assert list(hist.epoch) == [1, 2, 3] and "valid_loss" in hist.columns
        assert g.metrics["best_epoch"] == int(hist.epoch[hist.valid_loss.idxmin()])
    assert np.isfinite(got[1].metrics["test_eps_rmse"])
    assert np.isnan(got[0].metrics["test_eps_rmse"])


def test_diverged_model_is_reported(data):
    from aedistill.errors import UserInputError

    ds, split = data
    config = cfg()
    _, m = ft.member_for_role(config, "control", ARCH, 0, ds, split)
    tr = ft.StackTrainer([m], ds, split, ft.StackSettings.from_config(config, 6), 0)
    with torch.no_grad():
        tr.params["sigma"][0, 0] = float("nan")
    with pytest.raises(UserInputError, match="diverged at epoch 1"):
        tr.run_epoch()


def test_float32_loss_terms_equal_hippynn(data):
    """The pipeline trains in float32 (torch's default): same terms to float32 rounding."""
    torch.set_default_dtype(torch.float32)  # the autouse fixture restores the default
    ds, split = data
    setup, tr = _stack(cfg(), "oracle", ARCH, 2, ds, split)
    assert tr.params["int_w"].dtype == torch.float32
    ref = _hippynn_metrics(setup, "valid")
    got = tr.evaluate(np.asarray(split.valid))
    for k in ("E-RMSE", "F-RMSE", "F-MAE", "A-RMSE", "L2", "R", "Lerr"):
        assert got[k][0] == pytest.approx(ref[k], rel=2e-5), k


def test_stack_job_wall_time_limit_stops_and_rerun_keeps_it(data, tmp_path):
    from aedistill.training import JobModel, train_stack_job

    ds, split = data
    config = cfg(max_epochs=3, max_wall_minutes=1e-6)
    jobs = [JobModel("control", 1, tmp_path / "c"), JobModel("control", 2, tmp_path / "d")]
    first = train_stack_job(config, ARCH, jobs, ds, split)
    again = train_stack_job(config, ARCH, jobs, ds, split)  # as train_model: no more epochs
    for a, b in zip(first, again, strict=True):
        assert a.metrics["epochs"] == b.metrics["epochs"] == 1
        assert a.metrics["stop_reason"] == b.metrics["stop_reason"] == "max_wall_minutes"
        assert a.metrics["test_f_rmse"] == b.metrics["test_f_rmse"]


def test_trained_test_errors_statistically_equal_across_engines(tmp_path):
    """After training, the fast engine's models are as accurate as hippynn's engine's.

    Same data, config, initial weights per seed (6 seeds, control L1-W6-S4, 8 epochs); the
    batch orders differ (hippynn's global RNG vs the stack's ``order_seed``), so the two
    test F-RMSEs of a seed agree to training noise only. A systematic difference (a lost or
    mis-weighted loss term, a wrong learning-rate schedule) shows as a paired t-test rejecting
    equality; equal engines pass with probability 0.99 (two-sided α = 0.01).
    """
    from scipy import stats

    from aedistill.training import JobModel, train_model, train_stack_job

    ds = rattled_fcc_emt(36, seed=3, lattice_jitter=0.02)
    split = make_split(ds.n_conf, 0.6, 0.2, 0.2, seed=0)
    seeds = range(6)
    hip = cfg(max_epochs=8, batch_size=4, engine="hippynn")
    hippynn_m = [
        train_model(hip, "control", ARCH, s, ds, split, tmp_path / f"h{s}").metrics for s in seeds
    ]
    jobs = [JobModel("control", s, tmp_path / f"f{s}") for s in seeds]
    fast_m = [
        r.metrics for r in train_stack_job(cfg(max_epochs=8, batch_size=4), ARCH, jobs, ds, split)
    ]
    assert {m["engine"] for m in fast_m} == {"fasttrain"}
    assert "fasttrain" not in {m["engine"] for m in hippynn_m}
    hippynn_f = [m["test_f_rmse"] for m in hippynn_m]
    fast_f = [m["test_f_rmse"] for m in fast_m]
    diff = np.array(fast_f) - np.array(hippynn_f)
    p = stats.ttest_rel(fast_f, hippynn_f).pvalue
    assert p > 0.01, (hippynn_f, fast_f, diff)
    # and the mean difference is small against the errors themselves
    assert abs(diff.mean()) < 0.15 * np.mean(hippynn_f), (hippynn_f, fast_f)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stack_members_do_not_see_each_others_weights(data, dtype):
    """A student-only edit (loss.student.w_A) reruns a grid stack (training.stack_grid):
    its control members come out bit-identical (weights and learning curves), the student
    differs. In float32 too, the dtype of the workflow's jobs."""
    torch.set_default_dtype(dtype)  # the autouse fixture restores float64 after the test
    ds, split = data
    labels = labels_of(ds)
    runs = []
    for w_A in (100.0, 3.0):
        config = cfg(max_epochs=3)
        config["loss"]["student"]["w_A"] = w_A
        settings = ft.StackSettings.from_config(config, len(split.train))
        members = [
            ft.member_for_role(
                config, role, ARCH, seed, ds, split, labels if role == "student" else None
            )[1]
            for role, seed in (("control", 1), ("student", 1), ("control", 2))
        ]
        runs.append(ft.train_stack(members, ds, split, settings, order_seed=5))
    (control1, student1, control2), (control1b, student1b, control2b) = runs
    for a, b in ((control1, control1b), (control2, control2b)):
        assert a.best_epoch == b.best_epoch
        cols = [c for c in a.history.columns if c != "wall_s"]
        pd.testing.assert_frame_equal(a.history[cols], b.history[cols], check_exact=True)
        for k, v in a.best_state.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, b.best_state[k]), k
    assert not np.array_equal(
        student1.history.valid_f_rmse.to_numpy(), student1b.history.valid_f_rmse.to_numpy()
    )
