"""HIPNN models built from hippynn graph nodes: specs, graphs, model files, prediction.

A model is described by a :class:`ModelSpec` (architecture, species, cutoffs, l_max).
Training uses the graph of :func:`build_training_graph` (its pair finder may later be
replaced by a pair cache); everything downstream (labels, ASE, efficiency, LAMMPS) loads a
model file with :func:`load_model`, which rebuilds a fresh *inference* graph
(species, positions, cell → periodic pair finder → HIPNN → hierarchical energy, forces)
from the stored spec and loads the trained weights into it.

Model file (``model.pt``)::

    torch.save({"format": "aedistill-model-1", "spec": spec.to_dict(),
                "state_dict": {"network.<...>": tensor, "henergy.<...>": tensor}})

It contains only plain Python containers and tensors, so it is read with
``torch.load(..., weights_only=True)`` (no pickled code is executed).

Units: energies eV, lengths Å, forces eV/Å (the units of the canonical dataset).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aedistill.arch import Arch
from aedistill.errors import UserInputError
from aedistill.io import atomic_path

MODEL_FORMAT = "aedistill-model-1"

# Database names shared by the training graph, the hippynn Database and the loss.
DB_SPECIES = "species"
DB_POSITIONS = "positions"
DB_CELL = "cell"
DB_ENERGY = "energy"  # (n, 1) eV
DB_ENERGY_PER_ATOM = "energy_per_atom"  # (n, 1) eV/atom
DB_FORCES = "forces"  # (n, n_max, 3) eV/Å
DB_ATOM_ENERGIES = "atom_energy_labels"  # (n, n_max, 1) eV, the ε a student learns


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a HIPNN (weights excluded).

    ``species`` are the atomic numbers the model knows (padding 0 is added internally);
    cutoffs in Å; ``l_max`` 0 → :class:`hippynn.networks.Hipnn`, 1 → ``HipnnVec``.
    """

    arch: Arch
    species: tuple[int, ...]
    l_max: int = 1
    interaction_layers: int = 1
    cutoff_soft_min: float = 1.5
    cutoff_soft_max: float = 7.0
    cutoff_hard_max: float = 7.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "species", tuple(sorted(int(z) for z in self.species)))
        if self.l_max not in (0, 1):
            raise UserInputError(f"model.l_max must be 0 or 1, got {self.l_max!r}")
        if not self.species or min(self.species) < 1:
            raise UserInputError(
                f"dataset.species must be positive atomic numbers, got {self.species}"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], arch: Arch) -> ModelSpec:
        m = config["model"]
        return cls(
            arch=arch,
            species=tuple(config["dataset"]["species"]),
            l_max=int(m["l_max"]),
            interaction_layers=int(m["interaction_layers"]),
            cutoff_soft_min=float(m["cutoff_soft_min"]),
            cutoff_soft_max=float(m["cutoff_soft_max"]),
            cutoff_hard_max=float(m["cutoff_hard_max"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "species": list(self.species),
            "l_max": self.l_max,
            "interaction_layers": self.interaction_layers,
            "cutoff_soft_min": self.cutoff_soft_min,
            "cutoff_soft_max": self.cutoff_soft_max,
            "cutoff_hard_max": self.cutoff_hard_max,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(
            arch=Arch.from_dict(d["arch"]),
            species=tuple(int(z) for z in d["species"]),
            l_max=int(d["l_max"]),
            interaction_layers=int(d["interaction_layers"]),
            cutoff_soft_min=float(d["cutoff_soft_min"]),
            cutoff_soft_max=float(d["cutoff_soft_max"]),
            cutoff_hard_max=float(d["cutoff_hard_max"]),
        )

    def network_kwargs(self) -> dict[str, Any]:
        """``module_kwargs`` of hippynn's Hipnn/HipnnVec."""
        return {
            "possible_species": [0, *self.species],
            "n_features": self.arch.width,
            "n_sensitivities": self.arch.sensitivities,
            "dist_soft_min": self.cutoff_soft_min,
            "dist_soft_max": self.cutoff_soft_max,
            "dist_hard_max": self.cutoff_hard_max,
            "n_interaction_layers": self.interaction_layers,
            "n_atom_layers": self.arch.atom_layers,
            "sensitivity_type": "inverse",
            "resnet": True,
        }


@dataclass
class TrainingGraph:
    """hippynn nodes of one model; ``modules`` holds every trainable torch module.

    ``energy`` (n, 1) eV, ``energy_per_atom`` (n, 1) eV/atom, ``forces`` = −∇E (eV/Å),
    ``atom_energies`` ε (atom-indexed, eV), ``hier_per_atom`` HIPNN hierarchicality per atom.
    """

    spec: ModelSpec
    species: Any
    positions: Any
    cell: Any
    network: Any
    henergy: Any
    energy: Any
    energy_per_atom: Any
    forces: Any
    atom_energies: Any
    hier_per_atom: Any
    modules: torch.nn.ModuleDict = field(repr=False, default=None)  # type: ignore[assignment]


def _network_class(spec: ModelSpec):
    from hippynn.graphs import networks

    return networks.HipnnVec if spec.l_max == 1 else networks.Hipnn


def build_graph(spec: ModelSpec, modules: torch.nn.ModuleDict | None = None) -> TrainingGraph:
    """Build the hippynn node graph of ``spec``.

    With ``modules`` (a ModuleDict with ``network`` and ``henergy``) the nodes reuse these
    torch modules (shared weights), as the inference graph of a trained model must.
    """
    from hippynn.graphs import inputs, physics, targets

    species = inputs.SpeciesNode(db_name=DB_SPECIES)
    positions = inputs.PositionsNode(db_name=DB_POSITIONS)
    cell = inputs.CellNode(db_name=DB_CELL)
    net_cls = _network_class(spec)
    kw = spec.network_kwargs()
    if modules is None:
        network = net_cls("HIPNN", (species, positions, cell), module_kwargs=kw, periodic=True)
        henergy = targets.HEnergyNode("HEnergy", network)
    else:
        network = net_cls(
            "HIPNN", (species, positions, cell), module=modules["network"], periodic=True
        )
        henergy = targets.HEnergyNode("HEnergy", network, module=modules["henergy"])
    energy = henergy.mol_energy
    energy.db_name = DB_ENERGY
    atom_energies = henergy.atom_energies
    atom_energies.db_name = DB_ATOM_ENERGIES
    energy_per_atom = physics.PerAtom("EnergyPerAtom", energy)
    energy_per_atom.db_name = DB_ENERGY_PER_ATOM
    hier_per_atom = physics.PerAtom("RPerAtom", henergy.hierarchicality)
    forces = physics.GradientNode("forces", (energy, positions), sign=-1)
    forces.db_name = DB_FORCES
    mods = torch.nn.ModuleDict({"network": network.torch_module, "henergy": henergy.torch_module})
    return TrainingGraph(
        spec,
        species,
        positions,
        cell,
        network,
        henergy,
        energy,
        energy_per_atom,
        forces,
        atom_energies,
        hier_per_atom,
        mods,
    )


def build_training_graph(spec: ModelSpec, seed: int) -> TrainingGraph:
    """Fresh graph with weights initialised from ``seed``.

    The torch RNG is seeded immediately before the modules are created, so two graphs of
    the same spec and seed (e.g. a student and its control) start from identical weights.
    """
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    return build_graph(spec)


def count_trainable(modules: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in modules.parameters() if p.requires_grad))


@dataclass
class LoadedModel:
    """A trained model ready for inference (CPU or ``device``)."""

    spec: ModelSpec
    graph: TrainingGraph
    path: Path | None = None
    device: str = "cpu"

    @property
    def energy_node(self):
        return self.graph.energy

    @property
    def henergy(self):
        return self.graph.henergy

    @property
    def forces_node(self):
        return self.graph.forces

    @property
    def modules(self) -> torch.nn.ModuleDict:
        return self.graph.modules

    @property
    def n_weights(self) -> int:
        return count_trainable(self.graph.modules)

    def predictor(self):
        from hippynn.graphs import Predictor

        g = self.graph
        return Predictor(
            [g.species, g.positions, g.cell],
            [g.energy, g.forces, g.atom_energies],
            model_device=torch.device(self.device),
            name=f"predict {self.path or ''}",
        )

    def predict(self, dataset, batch_size: int = 16) -> dict[str, np.ndarray]:
        """Energies (n,) eV, forces (n, n_max, 3) eV/Å, atom energies (n, n_max) eV.

        Padding atoms get zeros. ``dataset`` is an :class:`aedistill.data.canonical.Dataset`.
        """
        dtype = torch.get_default_dtype()
        pred = self.predictor()
        n, n_max = dataset.species.shape
        out = pred(
            species=torch.as_tensor(dataset.species, dtype=torch.int64),
            positions=torch.as_tensor(dataset.positions, dtype=dtype),
            cell=torch.as_tensor(dataset.cell, dtype=dtype),
            batch_size=int(batch_size),
        )
        g = self.graph
        energy = out[g.energy.name].detach().cpu().numpy().reshape(n).astype(np.float64)
        forces = _pad_to(out[g.forces.name].detach().cpu().numpy(), n, n_max, 3)
        eps = _pad_to(out[g.atom_energies.name].detach().cpu().numpy(), n, n_max, 1)[..., 0]
        mask = dataset.species > 0
        forces[~mask] = 0.0
        eps[~mask] = 0.0
        return {"energy": energy, "forces": forces, "atom_energies": eps}


def _pad_to(arr: np.ndarray, n: int, n_max: int, last: int) -> np.ndarray:
    """Predictor batches are trimmed to the batch's largest system; pad back to ``n_max``."""
    arr = np.asarray(arr, dtype=np.float64).reshape(n, -1, last)
    if arr.shape[1] == n_max:
        return arr
    full = np.zeros((n, n_max, last))
    full[:, : arr.shape[1]] = arr
    return full


def _detach(v: Any) -> Any:
    return v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v


def state_dict_of(graph_or_modules: TrainingGraph | torch.nn.Module) -> dict[str, Any]:
    """Copy of the weights (tensors on CPU; hippynn's small ``_extra_state`` dicts kept)."""
    mods = (
        graph_or_modules.modules
        if isinstance(graph_or_modules, TrainingGraph)
        else graph_or_modules
    )
    return {k: _detach(v) for k, v in mods.state_dict().items()}


def save_model(
    path: str | os.PathLike[str],
    spec: ModelSpec,
    graph_or_state: TrainingGraph | torch.nn.Module | Mapping[str, torch.Tensor],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a model file atomically (see module docstring for the format)."""
    if isinstance(graph_or_state, (TrainingGraph, torch.nn.Module)):
        state = state_dict_of(graph_or_state)
    else:
        state = {k: _detach(v) for k, v in graph_or_state.items()}
    payload = {"format": MODEL_FORMAT, "spec": spec.to_dict(), "state_dict": state}
    if extra:
        payload["extra"] = dict(extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> LoadedModel:
    """Read a model file safely (``weights_only=True``) and rebuild its inference graph."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: model file not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unreadable file is the user's to fix
        raise UserInputError(
            f"{p}: not a readable aedistill model file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise UserInputError(f"{p}: not an aedistill model file (expected format {MODEL_FORMAT!r})")
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        graph = build_graph(spec)
        graph.modules.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise UserInputError(f"{p}: model weights do not match its spec ({exc})") from exc
    graph.modules.to(device)
    graph.modules.eval()
    return LoadedModel(spec=spec, graph=graph, path=p, device=device)


def _as_loaded(
    path_or_loaded: str | os.PathLike[str] | LoadedModel, device: str = "cpu"
) -> LoadedModel:
    if isinstance(path_or_loaded, LoadedModel):
        return path_or_loaded
    return load_model(path_or_loaded, device=device)


def count_weights(path_or_loaded: str | os.PathLike[str] | LoadedModel) -> int:
    """Number of trainable parameters of a model (file or loaded)."""
    return _as_loaded(path_or_loaded).n_weights


def make_calculator(path_or_loaded: str | os.PathLike[str] | LoadedModel, device: str = "cpu"):
    """An ASE calculator (hippynn's HippynnCalculator) for the model, energies in eV.

    The calculator uses ASE's neighbour list; its graph shares the model's weights.
    """
    import ase.units
    from hippynn.interfaces.ase_interface import HippynnCalculator

    loaded = _as_loaded(path_or_loaded, device=device)
    calc = HippynnCalculator(loaded.energy_node, en_unit=ase.units.eV)
    calc.to(torch.device(device))
    return calc
