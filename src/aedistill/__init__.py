"""aedistill: teacher-student atomic-energy distillation for HIPNN interatomic potentials.

Units inside the package: energies in eV, lengths in Å, forces in eV/Å, time in fs.
Conversions happen once, at the data boundary (see :mod:`aedistill.data`).
"""

from aedistill.errors import UserInputError

__all__ = ["UserInputError", "__version__"]
__version__ = "0.1.0"
