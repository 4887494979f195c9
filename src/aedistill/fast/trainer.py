"""The stack trainer: Adam per model, shuffled shared batches, evaluation, control."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as tF

from aedistill.fast.control import Control
from aedistill.fast.forward import stack_forward
from aedistill.fast.geometry import Batch, PairGeometry
from aedistill.fast.layout import StackLayout
from aedistill.fast.members import MemberResult, StackMember, StackSettings
from aedistill.history import check_finite, history_row
from aedistill.tables import HISTORY_COLUMNS


@dataclass
class _MemberState:
    member: StackMember
    control: Control
    rows: list[dict[str, float]] = field(default_factory=list)
    best_value: float = math.inf
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    stop_reason: str | None = None


# ----------------------------------------------------------------------------- trainer
class StackTrainer:
    """Train a stack of same-architecture models on one dataset and split (see module doc).

    ``dataset``: :class:`aedistill.data.canonical.Dataset`; ``split`` with ``train``/
    ``valid`` index arrays; ``members`` share the architecture of their ``modules``.
    ``dtype``: floating type (default: torch's default dtype, as hippynn training uses).
    """

    def __init__(
        self,
        members: Sequence[StackMember],
        dataset,
        split,
        settings: StackSettings,
        order_seed: int,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not members:
            raise ValueError("a stack needs at least one member")
        self.dtype = dtype or torch.get_default_dtype()
        self.settings = settings
        self.layout = StackLayout(members[0].modules)
        for m in members[1:]:
            other = StackLayout(m.modules)
            if [(s.name, tuple(s.get(m.modules).shape)) for s in other.slots] != [
                (s.name, tuple(s.get(members[0].modules).shape)) for s in self.layout.slots
            ] or (other.vec, other.rc) != (self.layout.vec, self.layout.rc):
                raise ValueError(f"stack member {m.name!r} has another architecture")
        self.templates = [copy.deepcopy(m.modules) for m in members]
        self.params = self.layout.stack([m.modules for m in members], self.dtype)
        self._trained = {k: v.requires_grad for k, v in self.params.items()}
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.n_steps = 0
        self.states = [
            _MemberState(
                m,
                Control(settings.learning_rate, settings, m.max_epochs, m.plan.min_epochs),
            )
            for m in members
        ]
        self.active = list(range(len(members)))  # member index of each stack row
        self.train_idx = np.asarray(split.train, dtype=np.int64)
        self.valid_idx = np.asarray(split.valid, dtype=np.int64)
        self.generator = torch.Generator().manual_seed(int(order_seed))
        self.epoch = 0  # epochs done (1-based epoch numbers in history rows)
        self.wall_prev = 0.0
        self._t0 = time.perf_counter()
        self._prepare_data(dataset, members)
        self._valid_batches: list[Batch] | None = None

    # -- data
    def _prepare_data(self, ds, members: Sequence[StackMember]) -> None:
        L = self.layout
        geo = PairGeometry.build(ds.species, ds.positions, ds.cell, L.elements, L.rc)
        self.geo = geo
        dt = self.dtype
        mask = ds.species > 0
        self._unit = torch.as_tensor(geo.unit, dtype=dt)
        self._channels = 4 if L.vec else 1
        self._inv = torch.as_tensor(geo.inv, dtype=dt)
        self._cut = torch.as_tensor(geo.cut, dtype=dt)
        self._dcut = torch.as_tensor(geo.dcut, dtype=dt)
        self._z = tF.one_hot(torch.as_tensor(geo.z), geo.n_species).to(dt)
        self._nbr = torch.as_tensor(geo.nbr_species)
        self._n_atoms = geo.n_atoms
        energy = ds.energy / geo.n_atoms if self.settings.energy == "per_atom" else ds.energy
        self._energy = torch.as_tensor(energy, dtype=dt)
        self._forces = torch.as_tensor(ds.forces[mask], dtype=dt)
        self._labels = [
            None if m.labels is None else torch.as_tensor(np.asarray(m.labels)[mask], dtype=dt)
            for m in members
        ]
        for m in members:
            if (m.plan.labels is None) != (m.labels is None):
                raise ValueError(f"{m.name}: labels must be given exactly when the role has ε")

    def _batch(self, configs: np.ndarray) -> Batch:
        g = self.geo
        cnt = self._n_atoms[configs]
        starts = g.atom_start[configs]
        n = int(cnt.sum())
        local_start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        atoms = np.repeat(starts - local_start, cnt) + np.arange(n)
        offset = np.repeat(local_start, cnt)
        n_slots = max(int(g.count[atoms].max()), 1)
        ra = g.rev_atom[atoms, :n_slots]
        rs = g.rev_slot[atoms, :n_slots]
        rev = np.where(rs >= 0, (ra + offset[:, None]) * n_slots + rs, n * n_slots).reshape(-1)
        jloc = np.ascontiguousarray(np.where(rs >= 0, ra + offset[:, None], -1))
        at = torch.from_numpy(atoms)
        unit = self._unit[at, :n_slots]
        zj = None
        if g.n_species > 1:
            zj = tF.one_hot(self._nbr[at, :n_slots], g.n_species).to(self.dtype)
        return Batch(
            configs=configs,
            atoms=at,
            mol=torch.from_numpy(np.repeat(np.arange(len(configs)), cnt)),
            n_atoms=torch.as_tensor(cnt, dtype=self.dtype),
            unit=unit,
            unit_t=unit[..., : self._channels].transpose(1, 2),
            inv=self._inv[at, :n_slots],
            cut=self._cut[at, :n_slots],
            dcut=self._dcut[at, :n_slots],
            zj=zj,
            z=self._z[at],
            rev=torch.from_numpy(rev),
            jloc=jloc,
            count=np.ascontiguousarray(g.count[atoms]),
            zidx=np.ascontiguousarray(g.nbr_species[atoms, :n_slots]),
            nf=int(g.n_species),
            energy=self._energy[torch.from_numpy(configs)],
            forces=self._forces[at],
        )

    def _eval_batches(self, configs: np.ndarray) -> list[Batch]:
        """Chunks of ``configs`` small enough for :attr:`StackSettings.eval_atoms_slots`."""
        L = self.layout
        per_atom = max(int(self.geo.count.max()), 1) * L.n_dist * L.nf_in * len(self.active)
        budget = max(1, self.settings.eval_atoms_slots // per_atom)
        out, cur, n = [], [], 0
        for c in configs:
            k = int(self._n_atoms[c])
            if cur and n + k > budget:
                out.append(self._batch(np.array(cur, dtype=np.int64)))
                cur, n = [], 0
            cur.append(int(c))
            n += k
        if cur:
            out.append(self._batch(np.array(cur, dtype=np.int64)))
        return out

    # -- loss
    def _weights(self, attr: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = []
        for i in self.active:
            st = self.states[i]
            w = (
                st.member.plan.weights_at(self.epoch + 1)
                if attr == "now"
                else st.member.plan.stop_weights
            )
            rows.append((w.w_E, w.w_F, w.w_A))
        t = torch.tensor(rows, dtype=self.dtype)
        return t[:, 0], t[:, 1], t[:, 2]

    def _l2(self, P: Mapping[str, torch.Tensor]) -> torch.Tensor:
        terms = [torch.square(P[s.name]).flatten(1).sum(1) for s in self.layout.slots if s.l2]
        return sum(terms[1:], terms[0])

    def _energy_error(self, energy: torch.Tensor, b: Batch) -> torch.Tensor:
        """(M, B) error of the loss's energy: E/N (eV/atom) or E (eV), ``loss.energy``."""
        if self.settings.energy == "per_atom":
            return energy / b.n_atoms - b.energy
        return energy - b.energy

    def _label_rows(self) -> list[int]:
        return [r for r, i in enumerate(self.active) if self._labels[i] is not None]

    def batch_loss(
        self, b: Batch, weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss (M,) of every active model on batch ``b`` (weights of the current
        epoch unless ``weights`` = (w_E, w_F, w_A), each (M,)) and its terms (M,) each."""
        P = self.params
        out = stack_forward(self.layout, P, b, create_graph=True)
        wE, wF, wA = weights if weights is not None else self._weights("now")
        de = self._energy_error(out.energy, b)
        df = (out.forces - b.forces).flatten(1)
        terms = {
            "E-RMSE": torch.sqrt(torch.mean(torch.square(de), 1)),
            "E-MAE": torch.mean(torch.abs(de), 1),
            "F-RMSE": torch.sqrt(torch.mean(torch.square(df), 1)),
            "F-MAE": torch.mean(torch.abs(df), 1),
            "L2": self._l2(P),
            "R": torch.mean(out.hier_per_atom, 1),
        }
        loss = wE * (terms["E-RMSE"] + terms["E-MAE"]) + wF * (terms["F-RMSE"] + terms["F-MAE"])
        rows = self._label_rows()
        if rows:
            r_t = torch.tensor(rows)
            lab = torch.stack([self._labels[self.active[r]][b.atoms] for r in rows])
            da = out.atom_energies.index_select(0, r_t) - lab
            a_rmse = torch.sqrt(torch.mean(torch.square(da), 1))
            a_mae = torch.mean(torch.abs(da), 1)
            a_term = torch.zeros_like(loss).index_add(
                0, r_t, wA.index_select(0, r_t) * (a_rmse + a_mae)
            )
            loss = loss + a_term
            terms["A-RMSE"], terms["A-MAE"] = a_rmse, a_mae
        loss = loss + self.settings.w_L2 * terms["L2"] + self.settings.w_R * terms["R"]
        terms["Loss"] = loss
        return loss, terms

    def _adam_step(self) -> None:
        """torch.optim.Adam (betas 0.9/0.999, eps 1e-8) with a learning rate per model."""
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.n_steps += 1
        bc1 = 1 - b1**self.n_steps
        bc2_sqrt = math.sqrt(1 - b2**self.n_steps)
        lr = torch.tensor([self.states[i].control.lr for i in self.active], dtype=torch.float64)
        step_size = (-lr / bc1).to(self.dtype)
        with torch.no_grad():
            for k, p in self.params.items():
                if not p.requires_grad:
                    continue
                g = p.grad
                m, v = self.exp_avg[k], self.exp_avg_sq[k]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / bc2_sqrt).add_(eps)
                shape = (-1,) + (1,) * (p.dim() - 1)
                p.addcmul_(m / denom, step_size.reshape(shape))
                p.grad = None

    def train_step(self, configs: np.ndarray) -> torch.Tensor:
        """One optimiser step of every active model on ``configs``; returns the losses (M,)."""
        b = self._batch(configs)
        loss, _ = self.batch_loss(b)
        loss.sum().backward()
        self._adam_step()
        return loss.detach()

    # -- evaluation
    def evaluate(self, configs: np.ndarray | list[Batch]) -> dict[str, np.ndarray]:
        """Metrics (one value per active model) over all ``configs`` at once, as hippynn's
        evaluator computes them on the concatenated predictions: E-RMSE/E-MAE (eV/atom),
        F-RMSE/F-MAE (eV/Å over the real atoms' components), A-RMSE/A-MAE (eV, NaN
        without labels), R, L2, and Lerr (stop weights, the early-stopping metric)."""
        batches = configs if isinstance(configs, list) else self._eval_batches(configs)
        P = {k: v.detach() for k, v in self.params.items()}
        M = len(self.active)
        acc = {
            k: torch.zeros(M, dtype=torch.float64)
            for k in ("e2", "e1", "f2", "f1", "a2", "a1", "r")
        }
        n_conf = n_comp = n_atoms = 0
        rows = self._label_rows()
        r_t = torch.tensor(rows, dtype=torch.int64)
        for b in batches:
            out = stack_forward(self.layout, P, b, create_graph=False)
            de = self._energy_error(out.energy, b).double()
            df = (out.forces - b.forces).flatten(1).double()
            acc["e2"] += torch.square(de).sum(1)
            acc["e1"] += torch.abs(de).sum(1)
            acc["f2"] += torch.square(df).sum(1)
            acc["f1"] += torch.abs(df).sum(1)
            acc["r"] += out.hier_per_atom.double().sum(1)
            if rows:
                lab = torch.stack([self._labels[self.active[r]][b.atoms] for r in rows])
                da = (out.atom_energies.index_select(0, r_t) - lab).double()
                acc["a2"].index_add_(0, r_t, torch.square(da).sum(1))
                acc["a1"].index_add_(0, r_t, torch.abs(da).sum(1))
            n_conf += len(b.configs)
            n_comp += df.shape[1]
            n_atoms += b.z.shape[0]
        res = {
            "E-RMSE": torch.sqrt(acc["e2"] / n_conf),
            "E-MAE": acc["e1"] / n_conf,
            "F-RMSE": torch.sqrt(acc["f2"] / n_comp),
            "F-MAE": acc["f1"] / n_comp,
            "R": acc["r"] / n_conf,
            "L2": self._l2(P).double(),
        }
        has = torch.zeros(M, dtype=torch.bool)
        has[r_t] = True
        nan = torch.full((M,), math.nan, dtype=torch.float64)
        res["A-RMSE"] = torch.where(has, torch.sqrt(acc["a2"] / n_atoms), nan)
        res["A-MAE"] = torch.where(has, acc["a1"] / n_atoms, nan)
        wE, wF, wA = (w.double() for w in self._weights("stop"))
        lerr = wE * (res["E-RMSE"] + res["E-MAE"]) + wF * (res["F-RMSE"] + res["F-MAE"])
        res["Lerr"] = lerr + torch.where(has, wA * (res["A-RMSE"] + res["A-MAE"]), 0.0)
        return {k: v.numpy() for k, v in res.items()}

    # -- epochs
    @property
    def wall_s(self) -> float:
        return self.wall_prev + time.perf_counter() - self._t0

    @property
    def finished(self) -> bool:
        return not self.active

    def run_epoch(self) -> None:
        """One epoch of every active model: shuffled batches, evaluation, controllers."""
        if self.finished:
            return
        s = self.settings
        n = len(self.train_idx)
        lrs = [self.states[i].control.lr for i in self.active]
        perm = torch.randperm(n, generator=self.generator).numpy()
        for start in range(0, n, s.batch_size):
            self.train_step(self.train_idx[perm[start : start + s.batch_size]])
        # hippynn's train-evaluation subsample (same draw as BatchedDatabase.make_generator)
        k = max(1, int(n * s.fraction_train_eval)) if s.fraction_train_eval else n
        sub = torch.argsort(torch.rand(n, generator=self.generator))[:k].numpy()
        tm = self.evaluate(self.train_idx[sub])
        if self._valid_batches is None:
            self._valid_batches = self._eval_batches(self.valid_idx)
        vm = self.evaluate(self._valid_batches)
        epoch = self.epoch + 1
        wall = self.wall_s
        done = []
        for r, i in enumerate(self.active):
            st = self.states[i]
            has_labels = st.member.plan.labels is not None
            # ε terms: NaN by construction for a member without labels
            train, valid = (
                {k: float(v[r]) for k, v in mm.items() if has_labels or not k.startswith("A-")}
                for mm in (tm, vm)
            )
            check_finite(epoch, "train", train, who=st.member.name)
            check_finite(epoch, "valid", valid, who=st.member.name)
            w = st.member.plan.weights_at(epoch)
            weights = {"w_E": w.w_E, "w_F": w.w_F, "w_A": w.w_A if has_labels else 0.0}
            metric = valid["Lerr"]
            st.rows.append(history_row(epoch, lrs[r], weights, train, valid, wall, metric))
            better = st.best_value > metric
            if better:
                st.best_value = metric
                st.best_state = self.layout.export(self.params, r, self.templates[i])
                st.best_epoch = epoch
            if not st.control.push_epoch(epoch - 1, better, metric):
                st.stop_reason = st.control.stop_reason
                done.append(r)
        self.epoch = epoch
        if done:
            self._drop_rows(done)

    def _drop_rows(self, rows: Sequence[int]) -> None:
        keep = [r for r in range(len(self.active)) if r not in set(rows)]
        idx = torch.tensor(keep, dtype=torch.int64)
        self.active = [self.active[r] for r in keep]
        if not keep:
            return
        for d in (self.params, self.exp_avg, self.exp_avg_sq):
            for k in list(d):
                d[k] = d[k].detach().index_select(0, idx).contiguous()
        for k, s in self._trained.items():
            self.params[k].requires_grad_(s)

    def train(self, callback: Callable[[StackTrainer], None] | None = None) -> list[MemberResult]:
        """Run epochs until every member stops; ``callback(self)`` after each epoch."""
        while not self.finished:
            self.run_epoch()
            if callback is not None:
                callback(self)
        return self.results()

    def results(self) -> list[MemberResult]:
        return [
            MemberResult(
                st.member.name,
                pd.DataFrame(st.rows, columns=HISTORY_COLUMNS),
                st.best_state,
                st.best_epoch,
                len(st.rows),
                st.stop_reason or "running",
            )
            for st in self.states
        ]

    def current_state(self, member: int) -> dict[str, Any]:
        """hippynn state dict of the current weights of ``member`` (must be active)."""
        return self.layout.export(self.params, self.active.index(member), self.templates[member])

    # -- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (plain containers and tensors)."""
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "exp_avg": {k: v.clone() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.clone() for k, v in self.exp_avg_sq.items()},
            "n_steps": self.n_steps,
            "active": list(self.active),
            "epoch": self.epoch,
            "wall_s": self.wall_s,
            "generator": self.generator.get_state(),
            "members": [
                {
                    "control": st.control.state_dict(),
                    "rows": list(st.rows),
                    "best_value": st.best_value,
                    "best_state": st.best_state,
                    "best_epoch": st.best_epoch,
                    "stop_reason": st.stop_reason,
                }
                for st in self.states
            ],
        }

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        self.params = {
            k: v.clone().requires_grad_(self._trained[k]) for k, v in sd["params"].items()
        }
        self.exp_avg = {k: v.clone() for k, v in sd["exp_avg"].items()}
        self.exp_avg_sq = {k: v.clone() for k, v in sd["exp_avg_sq"].items()}
        self.n_steps = int(sd["n_steps"])
        self.active = [int(i) for i in sd["active"]]
        self.epoch = int(sd["epoch"])
        self.wall_prev = float(sd["wall_s"])
        self._t0 = time.perf_counter()
        self.generator.set_state(sd["generator"])
        for st, m in zip(self.states, sd["members"], strict=True):
            st.control.load_state_dict(m["control"])
            st.rows = list(m["rows"])
            st.best_value = float(m["best_value"])
            st.best_state = m["best_state"]
            st.best_epoch = int(m["best_epoch"])
            st.stop_reason = m["stop_reason"]


def train_stack(
    members: Sequence[StackMember],
    dataset,
    split,
    settings: StackSettings,
    order_seed: int = 0,
    dtype: torch.dtype | None = None,
    callback: Callable[[StackTrainer], None] | None = None,
) -> list[MemberResult]:
    """Train ``members`` as one stack until each stops (see :class:`StackTrainer`)."""
    return StackTrainer(members, dataset, split, settings, order_seed, dtype).train(callback)
