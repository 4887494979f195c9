"""Shared test checks (small EMT data: :func:`aedistill.data.emt.rattled_fcc_emt`)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest


def assert_forces_are_minus_gradient(
    atoms, components: Iterable[tuple[int, int]], h: float = 1e-4, **tolerance
) -> None:
    """F = −∇E: the forces of ``atoms.calc`` at (atom, direction) ``components`` equal the
    central finite difference of its energy with step ``h`` (Å); ``tolerance`` as for
    ``pytest.approx`` around the force."""
    calc = atoms.calc
    forces = atoms.get_forces()
    for i, k in components:
        e = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[i, k] += sign * h
            probe.calc = calc
            e.append(probe.get_potential_energy())
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, k], **tolerance), (i, k)
