"""HIPNN architecture descriptors and their readable slugs (``L2-W32-S16``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from aedistill.errors import UserInputError

_SLUG = re.compile(r"^L(\d+)-W(\d+)-S(\d+)$")


@dataclass(frozen=True, order=True)
class Arch:
    """Size of a HIPNN: atom layers after the interaction layer, their width, sensitivities.

    ``atom_layers`` is ``n_atom_layers`` in hippynn's naming, ``width`` is ``n_features`` and
    ``sensitivities`` is ``n_sensitivities`` (number of radial basis functions).
    """

    atom_layers: int
    width: int
    sensitivities: int

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise UserInputError(
                    f"architecture {name} must be a positive integer, got {value!r}"
                )

    @property
    def slug(self) -> str:
        """Readable, path-safe name, e.g. ``L2-W32-S16``."""
        return f"L{self.atom_layers}-W{self.width}-S{self.sensitivities}"

    @classmethod
    def from_slug(cls, slug: str) -> Arch:
        m = _SLUG.match(slug)
        if not m:
            raise UserInputError(f"not an architecture slug (expected like L2-W32-S16): {slug!r}")
        return cls(*(int(g) for g in m.groups()))

    @classmethod
    def parse(cls, arch: Arch | str) -> Arch:
        """``arch`` itself if it is an :class:`Arch`, else the architecture of its slug."""
        return arch if isinstance(arch, Arch) else cls.from_slug(arch)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        return cls(int(d["atom_layers"]), int(d["width"]), int(d["sensitivities"]))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
