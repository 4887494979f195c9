"""Weight layout of a stack: a 1:1 map between hippynn modules and stacked tensors.

Every weight carries a leading model axis (M, …). A stack is built from the members'
initial hippynn modules (:meth:`StackLayout.stack`) and trained weights are exported back
into hippynn state dicts (:meth:`StackLayout.export`), so ``model.pt``, the Predictor, ASE and
LAMMPS paths are those of the hippynn engine. A model the fast engine does not support
raises ``NotImplementedError`` here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class _Slot:
    name: str
    get: Callable[[Any], torch.Tensor]  # hippynn ModuleDict -> parameter
    to_stack: Callable[[torch.Tensor], torch.Tensor]
    from_stack: Callable[[torch.Tensor], torch.Tensor]
    l2: bool  # part of hippynn's l2reg(network)


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.t()


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


class StackLayout:
    """1:1 map between one hippynn model (``network`` + ``henergy`` of
    :func:`aedistill.models.build_graph`) and one row of the stacked weights.

    Stacked names and shapes (M models, K sensitivities, n species, W width):
    ``mu``/``sigma`` (M, K) Å; ``int_w`` (M, n·K, W) = int_weights (K, W, n) with row
    f·K + k (element-major; hippynn's own matmul uses k·n + f); ``vecscales`` (M, W); ``self_w`` (M, n, W),
    ``self_b`` (M, W); ``res0_w`` (M, W, W), ``res0_b`` (M, W); ``adj0_w`` (M, n, W) when
    n ≠ W; per atom layer l: ``lin{l}_w``/``res{l}_w`` (M, W, W) and biases (M, W);
    ``head0_w`` (M, n, 1) (no bias, E0 per species), ``head1_w`` (M, W, 1), ``head1_b`` (M, 1).
    Linear weights are stored transposed (input, output) so that ``x @ w`` applies them.
    """

    def __init__(self, modules) -> None:
        net, blk, lay = _supported_parts(modules)
        self.vec = type(lay).__name__ == "InteractLayerVec"
        self.cusp_reg = float(lay.cusp_reg) if self.vec else 0.0
        self.n_dist = int(lay.n_dist)
        self.nf_in = int(lay.nf_in)
        self.width = int(lay.nf_out)
        self.n_atom_layers = len(blk) - 1
        self.rc = float(lay.sensitivity.cutoff.hard_max_dist)
        self.elements = [int(z) for z in torch.as_tensor(net.species_set).tolist()][1:]
        self.slots = self._slots(blk)
        n_mapped = sum(s.get(modules).numel() for s in self.slots)
        n_params = sum(p.numel() for p in modules.parameters())
        if n_mapped != n_params:
            raise NotImplementedError(
                f"fast training maps {n_mapped} of the model's {n_params} weights"
            )
        l2_ids = {id(p) for p in net.regularization_params()}
        if l2_ids != {id(s.get(modules)) for s in self.slots if s.l2}:
            raise NotImplementedError("fast training: L2 parameters differ from hippynn's")

    def _slots(self, blk) -> list[_Slot]:
        """The stacked weights in order: interaction layer, atom layers, energy head."""
        K, n = self.n_dist, self.nf_in

        def int_to(w):  # (K, W, n) -> (n*K, W), row f*K + k (element-major)
            return w.permute(2, 0, 1).reshape(n * K, -1)

        def int_from(w):
            return w.reshape(n, K, -1).permute(1, 2, 0).contiguous()

        def row(x):
            return x.reshape(-1)

        slots = [
            _Slot("mu", lambda m: _lay(m).sensitivity.mu, row, lambda x: x.reshape(1, -1), False),
            _Slot(
                "sigma", lambda m: _lay(m).sensitivity.sigma, row, lambda x: x.reshape(1, -1), False
            ),
            _Slot("int_w", lambda m: _lay(m).int_weights, int_to, int_from, True),
        ]
        if self.vec:
            slots.append(_Slot("vecscales", lambda m: _lay(m).vecscales, _same, _same, False))
        slots += [
            _Slot("self_w", lambda m: _lay(m).selfint.weight, _t, _t, True),
            _Slot("self_b", lambda m: _lay(m).selfint.bias, _same, _same, False),
            _Slot("res0_w", lambda m: _blk(m)[0].res_layer.weight, _t, _t, True),
            _Slot("res0_b", lambda m: _blk(m)[0].res_layer.bias, _same, _same, False),
        ]
        if blk[0].needs_size_adjust:
            slots.append(_Slot("adj0_w", lambda m: _blk(m)[0].adjust_layer.weight, _t, _t, True))
        for i in range(1, self.n_atom_layers + 1):
            slots += [
                _Slot(f"lin{i}_w", lambda m, i=i: _blk(m)[i].base_layer.weight, _t, _t, True),
                _Slot(f"lin{i}_b", lambda m, i=i: _blk(m)[i].base_layer.bias, _same, _same, False),
                _Slot(f"res{i}_w", lambda m, i=i: _blk(m)[i].res_layer.weight, _t, _t, True),
                _Slot(f"res{i}_b", lambda m, i=i: _blk(m)[i].res_layer.bias, _same, _same, False),
            ]
        slots += [
            _Slot("head0_w", lambda m: m["henergy"].layers[0].weight, _t, _t, False),
            _Slot("head1_w", lambda m: m["henergy"].layers[1].weight, _t, _t, False),
            _Slot("head1_b", lambda m: m["henergy"].layers[1].bias, _same, _same, False),
        ]
        return slots

    def stack(self, modules_list: Sequence[Any], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Stacked leaf tensors from hippynn modules, one row per model.

        A weight is trained (``requires_grad``) exactly when it is in the hippynn modules:
        hippynn's E0 initialisation freezes ``head0_w`` (the per-species energies).
        """
        out = {}
        for s in self.slots:
            flags = {bool(s.get(m).requires_grad) for m in modules_list}
            if len(flags) != 1:
                raise ValueError(f"stack members disagree on whether {s.name} is trained")
            rows = [s.to_stack(s.get(m).detach()).to(dtype) for m in modules_list]
            out[s.name] = torch.stack(rows).contiguous().requires_grad_(flags.pop())
        return out

    def export(self, params: Mapping[str, torch.Tensor], row: int, template) -> dict[str, Any]:
        """hippynn state dict (``aedistill.models`` keys) of stack row ``row``; ``template``
        is a ModuleDict of the same architecture (its non-weight state is kept)."""
        from aedistill.models import state_dict_of

        mods = copy.deepcopy(template)
        with torch.no_grad():
            for s in self.slots:
                p = s.get(mods)
                p.copy_(s.from_stack(params[s.name][row].detach()).to(p.dtype))
        return state_dict_of(mods)


def _blk(m):
    return m["network"].blocks[0]


def _lay(m):
    return _blk(m)[0].base_layer


def _supported_parts(modules):
    """(network, its interaction block, the interaction layer) of a model the fast engine
    supports; ``NotImplementedError`` naming what it does not."""
    from hippynn.layers.hiplayers.interactions import InteractLayer, InteractLayerVec
    from hippynn.layers.hiplayers.sensitivity import CosCutoff, InverseSensitivityModule
    from hippynn.layers.transform import ResNetWrapper

    net, he = modules["network"], modules["henergy"]
    if len(net.blocks) != 1:
        raise NotImplementedError(
            f"fast training supports 1 interaction layer, got {len(net.blocks)}"
        )
    blk = net.blocks[0]
    if not all(isinstance(b, ResNetWrapper) for b in blk):
        raise NotImplementedError("fast training needs resnet=True")
    lay = blk[0].base_layer
    if type(lay) not in (InteractLayer, InteractLayerVec):
        raise NotImplementedError(f"unsupported interaction layer {type(lay).__name__}")
    sens = lay.sensitivity
    if type(sens) is not InverseSensitivityModule or type(sens.cutoff) is not CosCutoff:
        raise NotImplementedError("fast training: inverse sensitivities, cosine cutoff only")
    if not isinstance(net.activation, torch.nn.Softplus) or net.activation.beta != 1:
        raise NotImplementedError("fast training: softplus activation only")
    if he.first_is_interacting or len(he.layers) != 2:
        raise NotImplementedError("fast training: HEnergy over input + 1 interaction layer")
    if any(b.needs_size_adjust for b in blk[1:]):
        raise NotImplementedError("fast training: atom layers of equal width only")
    if he.layers[0].bias is not None:
        raise NotImplementedError("fast training: HEnergy's first layer has no bias")
    return net, blk, lay
