"""The fast training engine: cached pair geometry, analytic pair forces, stacked models (CPU).

Same model (hippynn ``HipnnVec``/``Hipnn`` with one interaction layer, inverse sensitivities,
cosine cutoff, ResNet blocks, ``HEnergy`` head) and the same loss as
the hippynn engine, :mod:`aedistill.hippynn_train` (eq 2 / eq 5 with Lerr = RMSE + MAE)::

    L_m = w_E Lerr(E/N) + w_F Lerr(F) [+ w_A Lerr(ε)] + w_L2 L2 + w_R R

but evaluated without hippynn's graph machinery, for M models of one architecture at once
(a *stack*: e.g. student and control × 4 seeds). Where the time of hippynn's training step
goes (``bench/profile_train_step.py``; L1-W8-S4, batch 4 ≈ 270 atoms ≈ 26 k directed pairs,
~56 ms per step on an idle core): elementwise arithmetic on per-pair arrays — sensitivities,
their stacking with r̂, the environment sum, the force gradient and the double backward of
all of it — (``mul``/``sum``/``div`` ≈ 50 % of self time), gathering the batch from the
sparse pair cache (``index_select`` + ``coalesce`` ≈ 10 %), pair re-indexing; the network
itself is small. What replaces it (``bench/train_throughput.py --mode fast``):

* **Pair geometry is fixed during training** (positions never change), so each
  configuration's directed pairs within the hard cutoff, their unit vectors r̂, 1/d and the
  cosine cutoff with its derivative are computed once (numba cell list of
  :func:`aedistill.neighbours.half_pairs`). Pairs are stored per atom in padded neighbour slots
  ``(atom, slot)``; a batch is a row gather of these arrays.
* **Fused pair kernels with hand-written first derivatives** (numba, :class:`~aedistill.fast.ops.SensEnv`,
  :class:`~aedistill.fast.ops.PairForces`): one pass computes the sensitivities s_k(d), their derivative and
  the environment sums env[i, c, f·K + k] = Σ_q U_c s_k (U = [1, r̂]); G = ∂E/∂env comes from
  autograd on the atom-level network (create_graph); the pair derivative
  ∂E/∂r_q = (Σ_k A_k s'_k) r̂ + (h − (h·r̂) r̂)/d with A = U G, h = s G_vec (as in
  :mod:`aedistill.pairkernels`' backward kernel) is scattered into F_i += g_q, F_j −= g_q.
  The loss differentiates these kernels only once (their backward kernels), and needs
  second derivatives only of the atom-level network. ``stack_forward(..., fused=False)``
  evaluates the same formulas as plain torch ops (the tests' reference).
* **Stacked models**: all weights carry a leading model axis (M, …); one step runs batched
  matmuls and kernels for every model over a shared batch, so per-op overhead and the
  geometry are paid once per stack. Each model keeps its own loss weights (and schedule),
  its own Adam moments and learning rate, its own ReduceLROnPlateau and termination
  patience, its own best weights; a finished model leaves the stack. The models never
  interact: a stack gives each model what training it alone (same ``order_seed``) gives,
  up to float rounding.

Supported: what this project trains (1 interaction layer, ResNet, softplus, inverse
sensitivities with cosine cutoff, HEnergy over the input and interaction features, any
number of elements, l_max 0 or 1); anything else raises ``NotImplementedError``, and the job falls back to the hippynn engine
(:func:`aedistill.engine.choose_engine`).

Batch order: every epoch draws ``torch.randperm(n_train)`` from a generator seeded with
``order_seed`` (then the training-evaluation subsample, as hippynn's loader does with the
global RNG), so every model of a stack sees the same batches; a single model rerun with the
same ``order_seed`` sees them too.

Weights map 1:1 to the hippynn modules of :func:`aedistill.models.build_graph`
(:class:`StackLayout`): a stack is built from the members' initial hippynn modules and the
trained weights are exported back into hippynn state dicts, so ``model.pt``, the Predictor,
ASE and LAMMPS paths are unchanged. Cells are treated as periodic in all directions, as
hippynn's training graph (``periodic=True``) does.

Units: Å, eV, eV/Å throughout (those of the canonical dataset).

Modules, by concern: :mod:`~aedistill.fast.geometry` (pair geometry, batches),
:mod:`~aedistill.fast.layout` (weight layout), :mod:`~aedistill.fast.kernels` (numba
kernels), :mod:`~aedistill.fast.ops` (their autograd wrappers), :mod:`~aedistill.fast.forward`
(the model maths), :mod:`~aedistill.fast.control` (learning rate and stopping),
:mod:`~aedistill.fast.members` (members, settings, results), :mod:`~aedistill.fast.trainer`
(the epoch loop). The job around it (checkpoint, files, run record) is
:mod:`aedistill.training`'s, shared with the hippynn engine.
"""

from aedistill.fast.control import Control
from aedistill.fast.forward import stack_forward
from aedistill.fast.geometry import Batch, PairGeometry
from aedistill.fast.layout import StackLayout
from aedistill.fast.members import MemberResult, StackMember, StackSettings, member_for_role
from aedistill.fast.trainer import StackTrainer, train_stack

__all__ = [
    "Batch",
    "Control",
    "MemberResult",
    "PairGeometry",
    "StackLayout",
    "StackMember",
    "StackSettings",
    "StackTrainer",
    "member_for_role",
    "stack_forward",
    "train_stack",
]
