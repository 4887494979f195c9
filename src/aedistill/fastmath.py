"""Branch-free polynomial exp, sin and cos (numba) for the sensitivities and the cosine
cutoff of the pair kernels (:mod:`aedistill.pairkernels`): :func:`_exp_poly`,
:func:`_sin_cos_small`, :func:`_sin_cos_poly` and :func:`_cutoff_terms` (cos²x and its
derivative). numba vectorises these loops (AVX2: 4 doubles at a time), where libm's scalar
calls inside a numba loop cost ~19 ns per value. Accuracy (tests/unit/test_pairkernels.py,
against numpy): ≤ 2 ulp for exp on [−700, 0], ≤ 2 ulp for sin/cos on [0, π/2]. This module
does not import torch (tested).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # ln 2 in two parts (Cody–Waite); kf·_LN2_HI is exact
_LN2_LO = 1.42860682030941723212e-6
_SHIFT = 6755399441055744.0  # 1.5·2⁵²: t = v·log₂e + _SHIFT rounds to an integer k
_SHIFT_BITS = np.array([_SHIFT]).view(np.int64)[0]
_PIO2_HI = 1.5707963267948966  # π/2 in two parts
_PIO2_LO = 6.123233995736766e-17
_PIO4 = 0.7853981633974483


@njit(cache=True)
def _exp_poly(x, x_bits, t, t_bits, n):
    """x[:n] ← exp(x[:n]) for x ≤ 0 (clamped at −700, i.e. e⁻⁷⁰⁰ ≈ 1e-304 for anything
    below). ``x_bits``/``t_bits``: int64 views of ``x`` and of the scratch ``t``.
    exp(v) = 2ᵏ·p(r), k = round(v/ln 2), r = v − k ln 2 (|r| ≤ ln2/2), p = Taylor to r¹³."""
    for a in range(n):
        v = max(x[a], -700.0)
        tt = v * _LOG2E + _SHIFT
        kf = tt - _SHIFT
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        x[a] = p
        t[a] = tt
    for a in range(n):  # p·2ᵏ: add k to the exponent field (k = bits(t) − bits(_SHIFT))
        x_bits[a] += (t_bits[a] - _SHIFT_BITS) << 52


@njit(cache=True, inline="always")
def _sin_cos_small(y):
    """(sin y, cos y) for |y| ≤ π/4: Taylor series to y¹⁷ and y¹⁶."""
    y2 = y * y
    s = -1.0 / 355687428096000.0
    s = s * y2 + 1.0 / 1307674368000.0
    s = s * y2 - 1.0 / 6227020800.0
    s = s * y2 + 1.0 / 39916800.0
    s = s * y2 - 1.0 / 362880.0
    s = s * y2 + 1.0 / 5040.0
    s = s * y2 - 1.0 / 120.0
    s = s * y2 + 1.0 / 6.0
    s = y - (y * y2) * s
    c = 1.0 / 20922789888000.0
    c = c * y2 - 1.0 / 87178291200.0
    c = c * y2 + 1.0 / 479001600.0
    c = c * y2 - 1.0 / 3628800.0
    c = c * y2 + 1.0 / 40320.0
    c = c * y2 - 1.0 / 720.0
    c = c * y2 + 1.0 / 24.0
    c = c * y2 - 0.5
    c = 1.0 + y2 * c
    return s, c


@njit(cache=True)
def _sin_cos_poly(x, sin_out, cos_out, n):
    """sin and cos of x[:n] ∈ [0, π/2]: above π/4 via z = π/2 − x (exact, Sterbenz),
    sin x = cos z and cos x = sin z."""
    for a in range(n):
        v = x[a]
        hi = v > _PIO4
        y = (_PIO2_HI - v) + _PIO2_LO if hi else v
        s, c = _sin_cos_small(y)
        sin_out[a] = c if hi else s
        cos_out[a] = s if hi else c


@njit(cache=True)
def _cutoff_terms(cuts, m, rc):
    """From the phase x = π d/(2 rc) in ``cuts[0]``: the cosine cutoff cos²x into ``cuts[0]``
    and its derivative d/dd = −2 cos x sin x · π/(2 rc) into ``cuts[1]``."""
    scale = -math.pi / rc
    for a in range(m):
        v = cuts[0, a]
        hi = v > _PIO4
        y = (_PIO2_HI - v) + _PIO2_LO if hi else v
        s, c = _sin_cos_small(y)
        sin_x = c if hi else s
        cos_x = s if hi else c
        cuts[0, a] = cos_x * cos_x
        cuts[1, a] = sin_x * cos_x * scale
