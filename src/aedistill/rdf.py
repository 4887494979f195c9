"""Radial distribution functions: g(r) from frames, RDF error, first-peak position.

g(r) of one species in a periodic cell, on ``n_bins`` equal bins of (0, r_max]::

    g(r_k) = count_k / (N (N − 1) / V · 4π/3 (r_{k+1}³ − r_k³))

with ``count_k`` the ordered pairs (i ≠ j, all periodic images) in bin k, averaged over
frames. The (N − 1) normalisation makes an ideal gas give g = 1 exactly on average.
``r_max`` must be below half the shortest cell height (minimum image).

RDF error between two g(r) on the same bins: ∫ |g_a − g_b| dr = Σ_k |Δg_k| Δr (Å).

Ground truth: the experimental g(r) of liquid aluminium at 1198 K shipped in
``aedistill/data/experimental/`` (from hippynn's repository, BSD-3; see the README there).
The error vs experiment is the same measure over every bin of the model's g(r), i.e. over
(0, ``lammps.rdf_rmax``] (≤ 10 Å, the experiment's range), with the experiment linearly
interpolated onto the model's bin centres; it is reported only for RDF runs within
:data:`EXPERIMENT_MAX_DT_K` of the experiment's temperature.

The reference g(r) is a teacher's, and a teacher's liquid can fuse atoms (a pair closer than
:data:`FUSED_PAIR_DISTANCE_A`: the model never saw short pairs and has no repulsion there).
A fused liquid is no reference: :func:`choose_reference` takes the first of the candidate
teacher members, in seed order, whose liquid does not fuse; if every member fuses there is no
teacher reference and the models are compared with the experiment only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aedistill.errors import UserInputError

log = logging.getLogger(__name__)


def bin_edges(r_max: float, n_bins: int) -> np.ndarray:
    """Edges (n_bins + 1,) of equal bins on [0, r_max] (Å)."""
    return np.linspace(0.0, float(r_max), int(n_bins) + 1)


class RdfAccumulator:
    """Average g(r) over frames of one periodic single-species system.

    Even and odd frames are also kept apart: :meth:`sampling_floor` estimates, from their
    difference, how large ∫|Δg| dr stays for this many frames even against the exact g(r).
    """

    def __init__(self, r_max: float, n_bins: int) -> None:
        if r_max <= 0 or n_bins < 1:
            raise UserInputError(f"RDF: need r_max > 0 and n_bins ≥ 1, got {r_max}, {n_bins}")
        self.edges = bin_edges(r_max, n_bins)
        self.r_max = float(r_max)
        self._g_sum = np.zeros(int(n_bins))
        self._g_half = np.zeros((2, int(n_bins)))  # sums over even / odd frames
        self.n_frames = 0

    def add(self, positions: np.ndarray, cell: np.ndarray) -> None:
        """Add one frame: positions (N, 3) Å, cell (3, 3) Å (rows = lattice vectors, pbc)."""
        from ase import Atoms
        from ase.neighborlist import neighbor_list

        cell = np.asarray(cell, dtype=float)
        vol = abs(np.linalg.det(cell))
        heights = vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if self.r_max >= 0.5 * heights.min():
            raise UserInputError(
                f"RDF: r_max = {self.r_max} Å must be below half the cell height "
                f"({0.5 * heights.min():.3f} Å)"
            )
        n = len(positions)
        atoms = Atoms(numbers=np.ones(n, dtype=int), positions=positions, cell=cell, pbc=True)
        d = neighbor_list("d", atoms, self.r_max)
        counts, _ = np.histogram(d, bins=self.edges)
        shell = 4.0 / 3.0 * np.pi * np.diff(self.edges**3)
        g = counts / (n * (n - 1) / vol * shell)
        self._g_sum += g
        self._g_half[self.n_frames % 2] += g
        self.n_frames += 1

    def state(self) -> dict[str, Any]:
        """The accumulated frames as plain data (JSON), for a restart point."""
        return {
            "g_sum": self._g_sum.tolist(),
            "g_half": self._g_half.tolist(),
            "n_frames": self.n_frames,
            "r_max": self.r_max,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` of an accumulator with the same r_max and bins."""
        g_sum = np.asarray(state["g_sum"], dtype=float)
        if g_sum.shape != self._g_sum.shape or float(state["r_max"]) != self.r_max:
            raise ValueError("RDF state has other bins or r_max")
        self._g_sum = g_sum
        self._g_half = np.asarray(state["g_half"], dtype=float)
        self.n_frames = int(state["n_frames"])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin centres (Å) and the frame-averaged g(r)."""
        if self.n_frames == 0:
            raise RuntimeError("RDF: no frames were added")
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        return centres, self._g_sum / self.n_frames

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """g(r) averaged over the even and over the odd frames (needs ≥ 2 frames)."""
        if self.n_frames < 2:
            raise RuntimeError("RDF: halves need at least 2 frames")
        n_even = (self.n_frames + 1) // 2
        return self._g_half[0] / n_even, self._g_half[1] / (self.n_frames - n_even)

    def sampling_floor(self) -> float:
        """½ ∫ |g_even − g_odd| dr (Å): the two halves differ by about twice the sampling noise
        of the whole average, so this is the ∫|Δg| dr a model would still show against the
        exact g(r) of its own liquid with this many frames (NaN below 2 frames)."""
        if self.n_frames < 2:
            return float("nan")
        r, _ = self.result()
        g_even, g_odd = self.halves()
        return 0.5 * rdf_error(r, g_even, r, g_odd)


def radial_distribution(
    frames: Iterable[tuple[np.ndarray, np.ndarray]], r_max: float, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """g(r) averaged over ``frames`` of (positions (N, 3), cell (3, 3)); see module docstring."""
    acc = RdfAccumulator(r_max, n_bins)
    for positions, cell in frames:
        acc.add(positions, cell)
    return acc.result()


def read_rdf(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read an ``rdf.csv`` (columns ``r_A``, ``g``)."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: RDF file not found")
    df = pd.read_csv(p)
    if not {"r_A", "g"} <= set(df.columns):
        raise UserInputError(f"{p}: expected columns r_A, g; got {list(df.columns)}")
    return df["r_A"].to_numpy(float), df["g"].to_numpy(float)


def read_sampling_floor(path: str | os.PathLike[str]) -> float:
    """½ ∫ |g_even − g_odd| dr (Å) from an ``rdf.csv`` with ``g_even``/``g_odd`` columns
    (:meth:`RdfAccumulator.sampling_floor`); NaN for files without them."""
    df = pd.read_csv(path)
    if not {"g_even", "g_odd"} <= set(df.columns) or len(df) < 2:
        return float("nan")
    r = df["r_A"].to_numpy(float)
    return 0.5 * rdf_error(r, df["g_even"].to_numpy(float), r, df["g_odd"].to_numpy(float))


def rdf_error(r_a: np.ndarray, g_a: np.ndarray, r_b: np.ndarray, g_b: np.ndarray) -> float:
    """∫ |g_a − g_b| dr (Å) on identical, equally spaced bins (bin centres ``r``)."""
    r_a, r_b = np.asarray(r_a, float), np.asarray(r_b, float)
    if r_a.shape != r_b.shape or not np.allclose(r_a, r_b, rtol=0, atol=1e-9):
        raise UserInputError(
            f"RDF error: the two g(r) use different bins ({len(r_a)} bins up to "
            f"{r_a.max() if len(r_a) else 0:.3f} Å vs {len(r_b)} up to "
            f"{r_b.max() if len(r_b) else 0:.3f} Å); use the same lammps.rdf_bins/rdf_rmax"
        )
    if len(r_a) < 2:
        raise UserInputError("RDF error: need at least 2 bins")
    dr = np.diff(r_a)
    if not np.allclose(dr, dr[0], rtol=1e-6, atol=1e-12):
        raise UserInputError("RDF error: bins are not equally spaced")
    return float(np.sum(np.abs(np.asarray(g_a) - np.asarray(g_b))) * dr[0])


# first peak of liquid aluminium near its melting point: 2.7-2.9 Å (experiment ≈ 2.8 Å)
LIQUID_AL_FIRST_PEAK_A = (2.7, 2.9)
# no two Al atoms of a liquid come this close (EMT and MEAM liquids at 1200 K: > 2 Å); a model
# that lets pairs reach it has fused atoms (no learnt short-range repulsion)
FUSED_PAIR_DISTANCE_A = 1.5


def closest_pair(r: np.ndarray, g: np.ndarray) -> float:
    """The smallest occupied bin centre (Å) of a g(r): about the closest pair of the run
    (NaN for an empty g)."""
    occupied = np.asarray(r, float)[np.asarray(g, float) > 0]
    return float(occupied.min()) if occupied.size else float("nan")


def liquid_fused(path: str | os.PathLike[str]) -> bool:
    """True when the g(r) in ``path`` (an ``rdf.csv``) has pairs closer than
    :data:`FUSED_PAIR_DISTANCE_A`: its liquid fused atoms and it cannot be a reference."""
    return bool(closest_pair(*read_rdf(path)) < FUSED_PAIR_DISTANCE_A)


def first_peak(r: np.ndarray, g: np.ndarray) -> float:
    """Position (Å) of the first peak: the maximum of g, refined by a parabola through the
    maximum bin and its two neighbours (the first peak is the highest one for liquids and
    fcc solids)."""
    r, g = np.asarray(r, float), np.asarray(g, float)
    k = int(np.argmax(g))
    if 0 < k < len(g) - 1:
        denom = g[k - 1] - 2 * g[k] + g[k + 1]
        if denom < 0:
            shift = 0.5 * (g[k - 1] - g[k + 1]) / denom
            return float(r[k] + shift * (r[k + 1] - r[k]))
    return float(r[k])


def _vertex(r: np.ndarray, g: np.ndarray, k: int) -> float:
    """Position of the extremum at bin ``k`` refined by a parabola through k − 1, k, k + 1."""
    if 0 < k < len(g) - 1:
        denom = g[k - 1] - 2 * g[k] + g[k + 1]
        if denom != 0:
            shift = 0.5 * (g[k - 1] - g[k + 1]) / denom
            if abs(shift) <= 1:
                return float(r[k] + shift * (r[k + 1] - r[k]))
    return float(r[k])


def rdf_features(r: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """First peak, first minimum and second peak (Å) of a liquid's g(r).

    First peak: :func:`first_peak`. The minimum and second peak are searched on g smoothed
    over 3 bins (frame-averaged MD g(r) is noisy): the first minimum in (r₁, 1.75 r₁], the
    second peak in (r_min, r_min + 2.5 Å] (liquid Al, experiment: 2.78, 3.90, 5.2 Å). An
    extremum on the edge of its window (no turning point there, e.g. the second peak beyond
    ``rdf_rmax``) is NaN.
    """
    r, g = np.asarray(r, float), np.asarray(g, float)
    r1 = first_peak(r, g)
    smooth = np.convolve(g, np.ones(3) / 3, mode="same")
    out = {"first_peak_A": r1, "first_min_A": float("nan"), "second_peak_A": float("nan")}
    window = np.flatnonzero((r > r1) & (r <= 1.75 * r1))
    if window.size < 3:
        return out
    k = int(window[np.argmin(smooth[window])])
    if k in (window[0], window[-1]):
        return out
    out["first_min_A"] = _vertex(r, smooth, k)
    window = np.flatnonzero((r > r[k]) & (r <= r[k] + 2.5))
    if window.size < 3:
        return out
    j = int(window[np.argmax(smooth[window])])
    if j not in (window[0], window[-1]):
        out["second_peak_A"] = _vertex(r, smooth, j)
    return out


#: temperature (K) of the shipped experimental liquid-Al g(r)
EXPERIMENT_TEMPERATURE_K = 1198.0
#: RDF runs further than this from the experiment's temperature get no error vs experiment
EXPERIMENT_MAX_DT_K = 50.0


def experimental_gr() -> tuple[np.ndarray, np.ndarray]:
    """r (Å) and g of liquid aluminium at 1198 K (0-10 Å, 0.05 Å steps), shipped data."""
    path = resources.files("aedistill.data") / "experimental" / "Al_1198K_gr.csv"
    df = pd.read_csv(str(path))
    return df["r_A"].to_numpy(float), df["g"].to_numpy(float)


def rdf_error_vs_experiment(r: np.ndarray, g: np.ndarray) -> float:
    """∫ |g − g_exp| dr (Å) over the model's equally spaced bins (centres ``r``, ≤ 10 Å)."""
    r_exp, g_exp = experimental_gr()
    r = np.asarray(r, float)
    if r.max() > r_exp.max():
        raise UserInputError(
            f"RDF error vs experiment: bins reach {r.max():.2f} Å, the experiment only "
            f"{r_exp.max():.1f} Å (lammps.rdf_rmax)"
        )
    return rdf_error(r, g, r, np.interp(r, r_exp, g_exp))


RDF_TABLE_COLUMNS = [
    "role",
    "arch",
    "seed",
    "reference",
    "rdf_error_A",
    "rdf_error_vs_exp_A",
    "first_peak_A",
    "first_min_A",
    "second_peak_A",
    "first_peak_ok",
    "min_r_A",
    "fused",
    "sampling_floor_A",
    "skipped_references",
]
#: ``reference`` of every row when every candidate teacher's liquid fused
NO_REFERENCE = "none"

Model = tuple[str, str, int]


def model_name(model: Model) -> str:
    """``role/arch/seed<k>``, as the ``reference`` column names a model."""
    return f"{model[0]}/{model[1]}/seed{model[2]}"


def choose_reference(
    candidates: Sequence[Model], rdf_paths: Mapping[Model, str | os.PathLike[str]]
) -> tuple[Model | None, list[tuple[Model, float]]]:
    """The reference g(r): the first of ``candidates`` (in order) whose liquid does not fuse.

    Returns (reference, skipped): skipped are the (candidate, closest pair Å) of the fused
    candidates before it; reference is None when every candidate fused. A candidate that is
    reached (every one before it fused) must have its rdf.csv in ``rdf_paths``.
    """
    if not candidates:
        raise UserInputError("RDF errors: no reference candidates (teachers.n_members ≥ 1)")
    skipped: list[tuple[Model, float]] = []
    for cand in candidates:
        if cand not in rdf_paths:
            raise UserInputError(
                f"RDF errors: reference candidate {model_name(cand)} has no rdf.csv among "
                f"the inputs (reached because {', '.join(model_name(m) for m, _ in skipped)} "
                "fused)"
                if skipped
                else f"RDF errors: reference {model_name(cand)} has no rdf.csv among the inputs"
            )
        min_r = closest_pair(*read_rdf(rdf_paths[cand]))
        if not min_r < FUSED_PAIR_DISTANCE_A:
            return cand, skipped
        skipped.append((cand, min_r))
    return None, skipped


def rdf_errors_table(
    entries: Iterable[tuple[str, str, int, str | os.PathLike[str]]],
    references: Sequence[Model],
    temperature_K: float | None = EXPERIMENT_TEMPERATURE_K,
) -> pd.DataFrame:
    """Tidy table: role, arch, seed, reference, rdf_error_A (vs the reference teacher),
    rdf_error_vs_exp_A (vs experiment; NaN unless ``temperature_K``, the RDF runs'
    temperature, is within :data:`EXPERIMENT_MAX_DT_K` of 1198 K), first_peak_A,
    first_min_A, second_peak_A (:func:`rdf_features`), first_peak_ok, min_r_A, fused,
    sampling_floor_A, skipped_references.

    ``first_peak_ok``: the first peak lies in :data:`LIQUID_AL_FIRST_PEAK_A` (a physics check
    of the liquid; a reference outside it is also logged as a warning). ``min_r_A``: the
    smallest occupied bin centre; ``fused``: a pair came closer than
    :data:`FUSED_PAIR_DISTANCE_A` (logged as a warning for every model).

    ``entries`` are (role, arch, seed, rdf.csv path); ``references`` the (role, arch, seed)
    candidates for the reference g(r) in order of preference (the teacher members by seed):
    the first whose liquid does not fuse is the reference (:func:`choose_reference`);
    ``skipped_references`` names the fused candidates passed over (``name (closest pair
    Å)``, ``; ``-separated; empty when the first candidate is the reference). When every
    candidate fused, ``reference`` is :data:`NO_REFERENCE`, ``rdf_error_A`` is NaN for every
    row and only the error vs experiment remains (logged as an error).
    """
    entries = [(str(r), str(a), int(s), Path(p)) for r, a, s, p in entries]
    candidates = [(str(r), str(a), int(s)) for r, a, s in references]
    paths = {(r, a, s): p for r, a, s, p in entries}
    ref_key, ref_name, skipped_text = _reference(candidates, paths)
    if ref_key is not None:
        r_ref, g_ref = read_rdf(paths[ref_key])
    lo, hi = LIQUID_AL_FIRST_PEAK_A
    vs_exp = _compare_with_experiment(temperature_K)
    rows = []
    for role, arch, seed, path in entries:
        r, g = read_rdf(path)
        features = rdf_features(r, g)
        peak = features["first_peak_A"]
        min_r, fused = _closest_pair(f"{role}/{arch}/seed{seed}", r, g)
        if (role, arch, seed) == ref_key and not lo <= peak <= hi:
            log.warning(
                "reference %s: liquid-Al first peak at %.3f Å, outside %.1f-%.1f Å: "
                "the reference model's liquid is unphysical",
                ref_name,
                peak,
                lo,
                hi,
            )
        rows.append(
            {
                "role": role,
                "arch": arch,
                "seed": seed,
                "reference": ref_name,
                "rdf_error_A": (float("nan") if ref_key is None else rdf_error(r, g, r_ref, g_ref)),
                "rdf_error_vs_exp_A": rdf_error_vs_experiment(r, g) if vs_exp else float("nan"),
                **features,
                "first_peak_ok": bool(lo <= peak <= hi),
                "min_r_A": min_r,
                "fused": fused,
                "sampling_floor_A": read_sampling_floor(path),
                "skipped_references": skipped_text,
            }
        )
    table = pd.DataFrame(rows, columns=RDF_TABLE_COLUMNS)
    return table.sort_values(["role", "arch", "seed"], ignore_index=True)


def _reference(
    candidates: Sequence[Model], paths: dict[Model, Path]
) -> tuple[Model | None, str, str]:
    """(reference model or None, its name or :data:`NO_REFERENCE`, the fused candidates
    skipped as text) of :func:`rdf_errors_table`, with its log lines."""
    ref_key, skipped = choose_reference(candidates, paths)
    skipped_text = "; ".join(f"{model_name(m)} ({d:.2f} Å)" for m, d in skipped)
    if ref_key is None:
        log.error(
            "every teacher member's liquid fused (%s): no teacher reference, rdf_error_A is "
            "NaN; compare the models with the experiment (rdf_error_vs_exp_A)",
            skipped_text,
        )
        return None, NO_REFERENCE, skipped_text
    ref_name = model_name(ref_key)
    if skipped:
        log.warning(
            "reference %s: the liquid of %s fused atoms (closest pair below %.1f Å); a "
            "fused liquid is not used as the reference",
            ref_name,
            skipped_text,
            FUSED_PAIR_DISTANCE_A,
        )
    return ref_key, ref_name, skipped_text


def _compare_with_experiment(temperature_K: float | None) -> bool:
    """Whether RDF runs at ``temperature_K`` are compared with the 1198 K experiment (within
    :data:`EXPERIMENT_MAX_DT_K`); a warning where they are not."""
    vs_exp = (
        temperature_K is not None
        and abs(float(temperature_K) - EXPERIMENT_TEMPERATURE_K) <= EXPERIMENT_MAX_DT_K
    )
    if not vs_exp:
        log.warning(
            "RDF at %s K: no error vs the %.0f K experiment (more than %.0f K apart)",
            temperature_K,
            EXPERIMENT_TEMPERATURE_K,
            EXPERIMENT_MAX_DT_K,
        )
    return vs_exp


def _closest_pair(name: str, r: np.ndarray, g: np.ndarray) -> tuple[float, bool]:
    """(smallest occupied bin centre (Å), whether a pair came closer than
    :data:`FUSED_PAIR_DISTANCE_A`) of ``name``'s g(r); fused atoms are logged as a warning."""
    min_r = closest_pair(r, g)
    fused = bool(min_r < FUSED_PAIR_DISTANCE_A)
    if fused:
        log.warning(
            "%s: atom pairs at %.2f Å in the liquid (< %.1f Å): fused atoms, "
            "the model lacks short-range repulsion; its g(r) is not a liquid's",
            name,
            min_r,
            FUSED_PAIR_DISTANCE_A,
        )
    return min_r, fused


def write_rdf_errors(
    models: Iterable[Model],
    rdf_paths: Iterable[str | os.PathLike[str]],
    references: Sequence[Model],
    reference_paths: Iterable[str | os.PathLike[str]],
    out_csv: str | os.PathLike[str],
    temperature_K: float | None = EXPERIMENT_TEMPERATURE_K,
) -> pd.DataFrame:
    """Write ``tables/rdf_errors.csv`` for ``models`` (role, arch, seed) with their rdf.csv.

    ``references``: the reference candidates in order (:func:`rdf_errors_table`);
    ``reference_paths``: the rdf.csv of the first of them, as many as were run (the workflow
    runs them up to the first whose liquid does not fuse); a candidate that is also in
    ``models`` gets one row. ``temperature_K``: the RDF runs' temperature
    (``lammps.temperature``).
    """
    from aedistill.io import write_csv

    reference_paths = list(reference_paths)
    if len(reference_paths) > len(references):
        raise ValueError(f"{len(reference_paths)} rdf.csv for {len(references)} candidates")
    ran = list(references)[: len(reference_paths)]
    pairs = [*zip(models, rdf_paths, strict=True), *zip(ran, reference_paths, strict=True)]
    entries = dict.fromkeys((str(r), str(a), int(s), str(p)) for (r, a, s), p in pairs)
    table = rdf_errors_table(list(entries), [tuple(m) for m in references], temperature_K)
    write_csv(out_csv, table)
    return table
