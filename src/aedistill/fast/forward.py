"""Forward maths of a stack: energies, ε, hierarchicality and forces of every model.

The atom-level network (interaction weights, ResNet blocks, HEnergy head) runs as batched
torch matmuls over the model axis; G = ∂E/∂env comes from autograd on it (create_graph for
training); the pair arithmetic around it is the fused kernels of :mod:`aedistill.fast.ops`,
or the same formulas as plain torch ops (``fused=False``, the tests' reference).
Units: Å, eV, eV/Å.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as tF

from aedistill.fast.geometry import Batch
from aedistill.fast.layout import StackLayout
from aedistill.fast.ops import PairForces, SensEnv


@dataclass
class Outputs:
    energy: torch.Tensor  # (M, B) eV
    atom_energies: torch.Tensor  # (M, N) eV
    hier_per_atom: torch.Tensor  # (M, B)
    forces: torch.Tensor  # (M, N, 3) eV/Å


def _network_energy(L: StackLayout, P: Mapping[str, torch.Tensor], env, b: Batch):
    """Atom energies (M, N), hierarchicality per configuration (M, B) from env (M,N,C,n·K)."""
    M = env.shape[0]
    N = b.z.shape[0]
    e0 = env[:, :, 0]
    out = torch.bmm(e0, P["int_w"])
    if L.vec:
        ev = env[:, :, 1:].reshape(M, N * 3, -1)
        fv = torch.bmm(ev, P["int_w"]).reshape(M, N, 3, L.width)
        fv = torch.sqrt(torch.square(fv).sum(dim=2) + L.cusp_reg)
        out = out + fv * P["vecscales"].unsqueeze(1)
    z = b.z
    out = out + (torch.matmul(z, P["self_w"]) + P["self_b"].unsqueeze(1))
    x_in = torch.matmul(z, P["adj0_w"]) if "adj0_w" in P else z
    x = torch.baddbmm(P["res0_b"].unsqueeze(1), tF.softplus(out), P["res0_w"]) + x_in
    for i in range(1, L.n_atom_layers + 1):
        h = tF.softplus(torch.baddbmm(P[f"lin{i}_b"].unsqueeze(1), x, P[f"lin{i}_w"]))
        x = torch.baddbmm(P[f"res{i}_b"].unsqueeze(1), h, P[f"res{i}_w"]) + x
    p0 = torch.matmul(z, P["head0_w"])[..., 0]  # (M, N)
    p1 = torch.baddbmm(P["head1_b"].unsqueeze(1), x, P["head1_w"])[..., 0]
    atom_en = p0 + p1
    B = b.n_atoms.shape[0]
    energy = atom_en.new_zeros(M, B).index_add_(1, b.mol, atom_en)
    s0, s1 = torch.square(p0), torch.square(p1)
    hier = atom_en.new_zeros(M, B).index_add_(1, b.mol, s1 / (s1 + s0))
    return energy, atom_en, hier / b.n_atoms


def _sensitivities(P, b: Batch):
    """Torch reference: s, ds/dd (M, N, S, n·K) of the batch's slots (1/Å), the
    neighbour's one-hot element folded into the sensitivity axis."""
    muinv = 1.0 / P["mu"]  # (M, K)
    sig = P["sigma"]
    inv = b.inv.unsqueeze(-1)  # (N, S, 1)
    q = (inv - muinv[:, None, None, :]) * sig[:, None, None, :]  # (M, N, S, K)
    base = torch.exp(-0.5 * torch.square(q))
    cut = b.cut.unsqueeze(-1)
    s = base * cut
    ds = base * (q * sig[:, None, None, :] * torch.square(inv) * cut + b.dcut.unsqueeze(-1))
    if b.zj is not None:  # fold the neighbour's one-hot element in: index f·K + k
        zj = b.zj.unsqueeze(-1)  # (N, S, n, 1)
        s = (zj * s.unsqueeze(-2)).flatten(-2)
        ds = (zj * ds.unsqueeze(-2)).flatten(-2)
    return s, ds


def stack_forward(
    L: StackLayout,
    P: Mapping[str, torch.Tensor],
    b: Batch,
    create_graph: bool,
    fused: bool = True,
) -> Outputs:
    """Energies, ε, hierarchicality and forces of every model of the stack on batch ``b``.

    ``create_graph``: keep the graph of the forces (training: the force loss is
    differentiated with respect to the weights). ``fused``: the numba kernels for the pair
    arithmetic (False: the same formulas as plain torch ops, a reference for tests).
    """
    if fused:
        n_channels = 4 if L.vec else 1
        env, s, ds = SensEnv.apply(1.0 / P["mu"], P["sigma"], b, n_channels)
    else:
        s, ds = _sensitivities(P, b)
    if not create_graph:
        s, ds = s.detach(), ds.detach()
    with torch.enable_grad():
        if not fused:
            env = torch.matmul(b.unit_t, s)  # (M, N, C, n·K)
        elif not create_graph:
            env = env.detach()
        if not create_graph:
            env.requires_grad_(True)
        energy, atom_en, hier = _network_energy(L, P, env, b)
        (G,) = torch.autograd.grad(energy.sum(), env, create_graph=create_graph)
    if fused:
        forces = PairForces.apply(s, ds, G.contiguous(), b, L.vec)
        if not create_graph:
            energy, atom_en, hier, forces = (t.detach() for t in (energy, atom_en, hier, forces))
        return Outputs(energy, atom_en, hier, forces)
    A = torch.matmul(b.unit[..., : G.shape[2]], G)  # (M, N, S, n·K)
    radial = (A * ds).sum(-1, keepdim=True)  # (M, N, S, 1): Σ_k A_k s'_k
    rhat = b.unit[..., 1:]
    if L.vec:
        h = torch.matmul(s, G[:, :, 1:].transpose(-1, -2))  # (M, N, S, 3)
        hr = (h * rhat).sum(-1, keepdim=True)
        g = radial * rhat + (h - hr * rhat) * b.inv.unsqueeze(-1)
    else:
        g = radial * rhat
    M, N, S, _ = g.shape
    flat = torch.cat([g.reshape(M, N * S, 3), g.new_zeros(M, 1, 3)], dim=1)
    g_rev = flat.index_select(1, b.rev).reshape(M, N, S, 3)
    forces = (g - g_rev).sum(2)
    if not create_graph:
        energy, atom_en, hier, forces = (t.detach() for t in (energy, atom_en, hier, forces))
    return Outputs(energy, atom_en, hier, forces)
