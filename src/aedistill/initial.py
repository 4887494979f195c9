"""The initial weights of a training, the same for both engines.

Same seed ⇒ identical initial weights for every role of an architecture: the torch RNG is
seeded immediately before the modules are created (:func:`aedistill.models.build_training_graph`)
and the energy initialisation depends only on the training data: hippynn's
``hierarchical_energy_initialization`` fits the per-species energies E0 (eV) to the
configurations of ``split.for_initialisation()`` (the training split; the augmented role:
its student's) and freezes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aedistill.arch import Arch
from aedistill.hippynn_log import hippynn_to_log, quiet_hippynn
from aedistill.models import ModelSpec, TrainingGraph, build_training_graph


def initial_graph(
    config: Mapping[str, Any], arch: Arch | str, seed: int, dataset, split
) -> tuple[ModelSpec, TrainingGraph]:
    """(spec, training graph) of ``arch`` seeded with ``seed``, E0-initialised on
    ``split.for_initialisation()`` of ``dataset``."""
    quiet_hippynn()
    spec = ModelSpec.from_config(config, Arch.parse(arch))
    graph = build_training_graph(spec, seed)
    initialise_energy(graph, dataset, split)
    return spec, graph


def initialise_energy(graph: TrainingGraph, dataset, split) -> None:
    """E0 of ``graph``'s energy head from the configurations that fix the initial weights."""
    from hippynn.pretraining import hierarchical_energy_initialization

    from aedistill.database import make_database
    from aedistill.models import DB_ENERGY, DB_SPECIES

    with hippynn_to_log():
        db = make_database(dataset, split.for_initialisation(), None, [DB_SPECIES], [DB_ENERGY])
        hierarchical_energy_initialization(
            graph.henergy, db, energy_name=DB_ENERGY, species_name=DB_SPECIES, decay_factor=1e-2
        )
