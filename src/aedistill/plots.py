"""Figures 2-5 of Matin et al. (2025) from the pipeline's tidy tables.

Every figure:

* uses :func:`apply_style` (one style for all) and the fixed role → colour/marker map of
  :func:`role_style` (seaborn's colour-blind palette), so a role looks the same everywhere;
* shows points as mean ± std over seeds (error bars);
* is written as PNG (dpi 150) and PDF through :func:`aedistill.io.atomic_path`;
* shows what exists when a table (efficiency, RDF, LAMMPS timing) is absent or lacks rows,
  with a note in the empty panel, instead of failing.

Units on the axes: force RMSE eV/Å, energy RMSE meV/atom, time µs per MD step per atom,
memory kB per atom, RDF error Å.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from aedistill import analysis  # noqa: E402
from aedistill.io import atomic_path  # noqa: E402
from aedistill.rdf import FUSED_PAIR_DISTANCE_A, NO_REFERENCE  # noqa: E402
from aedistill.roles import (  # noqa: E402
    WA_PREFIX,
    grid_roles,
    is_known,
    ordered_roles,
    role_spec,
    wa_value,
)

log = logging.getLogger(__name__)
# matplotlib's PDF backend logs every font-subsetting step at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

DPI = 150
_PALETTE = sns.color_palette("colorblind", 10)
#: Colours of the student_wA<value> roles, in w_A order (other roles: their RoleSpec's).
_WA_COLOURS = [_PALETTE[i] for i in (5, 6, 8, 7)]

F_LABEL = "test force RMSE (eV/Å)"
E_LABEL = "test energy RMSE (meV/atom)"
T_LABEL = "time per MD step per atom (µs)"
M_LABEL = "memory per atom (kB)"
W_LABEL = "number of weights"
RDF_LABEL = "RDF error vs teacher, ∫|g − g_T| dr (Å)"
RDF_EXP_LABEL = "RDF error vs experiment (1198 K), ∫|g − g_exp| dr (Å)"


def apply_style() -> None:
    """The one style of every figure (call before creating a figure)."""
    sns.set_theme(context="paper", style="ticks", font_scale=1.15)
    plt.rcParams.update(
        {
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.6,
            "legend.frameon": False,
            "errorbar.capsize": 2.5,
            "lines.markersize": 6,
            "savefig.bbox": "tight",
            "pdf.fonttype": 42,
        }
    )


def role_style(role: str, roles: Sequence[str] = ()) -> tuple[tuple[float, ...], str, str]:
    """(colour, marker, legend label) of ``role``, from its :class:`aedistill.roles.RoleSpec`.

    Fixed for the named roles; ``student_wA<v>`` roles are coloured in increasing ``v`` order
    among all w_A roles in ``roles`` (pass every role of the run so figures agree).
    """
    if not is_known(role):
        return (0.5, 0.5, 0.5), "x", role
    spec = role_spec(role)
    if spec.sweep:
        was = sorted(
            {r for r in (*roles, role) if is_known(r) and role_spec(r).sweep}, key=wa_value
        )
        colour = _WA_COLOURS[was.index(role) % len(_WA_COLOURS)]
        return colour, spec.marker, spec.label.format(w_A=role.removeprefix(WA_PREFIX))
    colour = (0.0, 0.0, 0.0) if spec.colour is None else _PALETTE[spec.colour]
    return colour, spec.marker, spec.label


def save_figure(fig: plt.Figure, png: str | os.PathLike[str], pdf: str | os.PathLike[str]) -> None:
    """Write ``fig`` as PNG (dpi 150) and PDF atomically, then close it."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
    plt.close(fig)


def _note(ax: plt.Axes, text: str) -> None:
    """Grey note in the middle of an empty panel."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        wrap=True,
        fontsize=10,
        color="0.35",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _panel_label(ax: plt.Axes, label: str) -> None:
    ax.text(
        -0.02,
        1.02,
        label,
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontweight="bold",
        fontsize=13,
    )


def _plain_log(ax: plt.Axes, axis: str) -> None:
    """Log scale with plain-number tick labels (6, 40, 0.3 rather than 6×10⁰)."""
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(mticker.LogFormatter(labelOnlyBase=False))
    target.set_minor_formatter(mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))


def _finite(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for c in cols:
        mask &= np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(float))
    return df[mask]


def _scatter_roles(
    ax: plt.Axes,
    points: pd.DataFrame,
    x: str,
    y: str,
    all_roles: Sequence[str],
    xscale: float = 1.0,
    yscale: float = 1.0,
    front: bool = False,
    connect: bool = False,
) -> list[str]:
    """Mean ± std points per role; optional Pareto-front step line or size-ordered line.

    ``x``/``y`` are metric names of :func:`analysis.summarise_points` (``n_weights`` or
    ``<metric>``, read from ``<metric>_mean``/``_std``). Returns the roles drawn.
    """
    xm = "n_weights" if x == "n_weights" else f"{x}_mean"
    xs = None if x == "n_weights" else f"{x}_std"
    ym, ys = f"{y}_mean", f"{y}_std"
    if xm not in points.columns or ym not in points.columns:
        return []
    data = _finite(points, xm, ym)
    drawn = []
    for role in ordered_roles(data["role"].unique()):
        d = data[data["role"] == role].sort_values(xm)
        colour, marker, _ = role_style(role, all_roles)
        big = role in ("teacher", "born_again")
        xerr = d[xs].fillna(0).to_numpy() * xscale if xs and xs in d else None
        ax.errorbar(
            d[xm] * xscale,
            d[ym] * yscale,
            yerr=d[ys].fillna(0).to_numpy() * yscale,
            xerr=xerr,
            fmt=marker,
            color=colour,
            markersize=12 if role == "teacher" else (9 if big else 6),
            markeredgecolor="white" if not big else colour,
            markeredgewidth=0.5,
            elinewidth=1,
            zorder=4 if big else 3,
            linestyle="none",
        )
        if front and len(d) > 1:
            mask = analysis.pareto_mask(d[xm], d[ym])
            f = d[mask].sort_values(xm)
            ax.step(
                f[xm] * xscale,
                f[ym] * yscale,
                where="post",
                color=colour,
                linewidth=1.5,
                alpha=0.8,
                zorder=2,
            )
        elif connect and len(d) > 1:
            ax.plot(d[xm] * xscale, d[ym] * yscale, color=colour, lw=1, alpha=0.5, zorder=2)
        drawn.append(role)
    return drawn


def _legend(fig: plt.Figure, roles: Sequence[str], all_roles: Sequence[str], extra=()) -> None:
    handles = []
    for role in ordered_roles(roles):
        colour, marker, label = role_style(role, all_roles)
        handles.append(
            Line2D(
                [],
                [],
                marker=marker,
                color=colour,
                linestyle="none",
                markersize=11 if role == "teacher" else 7,
                label=label,
            )
        )
    handles.extend(extra)
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 4),
            bbox_to_anchor=(0.5, 1.0),
        )


def _footer(fig: plt.Figure, run: str | None, notes: Sequence[str]) -> None:
    parts = []
    if run:
        parts.append(f"run: {run}")
    parts.extend(notes)
    if parts:
        fig.text(0.01, -0.01, " · ".join(parts), fontsize=8, color="0.35", ha="left", va="top")


def _has(df: pd.DataFrame | None, col: str) -> bool:
    return (
        df is not None
        and col in df.columns
        and bool(np.isfinite(pd.to_numeric(df[col], errors="coerce")).any())
    )


# --------------------------------------------------------------------------- figures
def fig2_pareto(
    models: pd.DataFrame,
    efficiency: pd.DataFrame | None,
    png: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    run: str | None = None,
) -> list[str]:
    """Fig 2: force RMSE vs ASE time per step per atom (A) and memory per atom (B).

    Mean ± std over seeds (y: models.csv; x: timed seeds), Pareto-front step line per role;
    teacher (star) and Born-Again (cross) marked. Returns notes about missing data.
    """
    apply_style()
    all_roles = list(models["role"].unique())
    points = analysis.summarise_points(models, efficiency, None)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    notes: list[str] = []
    drawn: set[str] = set()
    panels = (
        ("time_per_step_per_atom_s", 1e6, T_LABEL, "time"),
        ("bytes_per_atom", 1e-3, M_LABEL, "memory"),
    )
    for ax, (col, scale, xlabel, what), label in zip(axes, panels, "AB", strict=True):
        _panel_label(ax, label)
        if not _has(efficiency, col):
            _note(ax, f"no {what} measurements\n(efficiency table absent\nor without {col})")
            notes.append(f"{label}: no {what} data")
            continue
        drawn |= set(
            _scatter_roles(ax, points, col, "test_f_rmse", all_roles, xscale=scale, front=True)
        )
        _plain_log(ax, "x")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(F_LABEL)
        missing = sorted(set(points["role"]) - set(_finite(points, f"{col}_mean")["role"]))
        if missing:
            notes.append(f"{label}: not measured for {', '.join(missing)}")
    extra = [Line2D([], [], color="0.3", lw=1.5, label="Pareto front (per role)")] if drawn else []
    _legend(fig, sorted(drawn), all_roles, extra)
    _footer(fig, run, notes)
    save_figure(fig, png, pdf)
    return notes


def _mark_fused(
    ax, points: pd.DataFrame, rdf: pd.DataFrame | None, col: str, panel: str
) -> list[str]:
    """Red rings on the (role, arch) points of ``col`` (a column of ``rdf``) where a seed's
    liquid had fused atom pairs."""
    if rdf is None or "fused" not in rdf.columns:
        return []
    fused = rdf[rdf["fused"].astype(str).str.lower() == "true"][["role", "arch"]]
    hit = _finite(points.merge(fused.drop_duplicates(), on=["role", "arch"]), f"{col}_mean")
    if hit.empty:
        return []
    ax.scatter(
        hit["n_weights"], hit[f"{col}_mean"], s=220, facecolors="none",
        edgecolors="red", linewidths=1.5, zorder=6,
    )  # fmt: skip
    for _, h in hit.iterrows():
        ax.annotate(
            "fused atoms", (h["n_weights"], h[f"{col}_mean"]), textcoords="offset points",
            xytext=(8, 6), fontsize=8, color="red",
        )  # fmt: skip
    return [
        f"{panel}: red rings: atom pairs fused in the liquid "
        f"(closer than {FUSED_PAIR_DISTANCE_A:g} Å; {', '.join(sorted(set(hit['role'])))})"
    ]


def _no_reference(rdf: pd.DataFrame | None) -> bool:
    """True when the rdf_errors table has no teacher reference (every member's liquid fused)."""
    return (
        rdf is not None
        and "reference" in rdf.columns
        and set(rdf["reference"].astype(str)) == {NO_REFERENCE}
    )


def reference_note(rdf: pd.DataFrame | None) -> str | None:
    """What Fig 3 C says about its reference teacher when it is not the first candidate:
    the fused members passed over (``skipped_references``), or that every member fused and
    there is no teacher reference. None when the first candidate is the reference."""
    if rdf is None or "reference" not in rdf.columns:
        return None
    skipped = ""
    if "skipped_references" in rdf.columns:
        skipped = "; ".join(sorted(set(rdf["skipped_references"].fillna("").astype(str)) - {""}))
    if _no_reference(rdf):
        return (
            f"C: NO TEACHER REFERENCE: every teacher member's liquid fused ({skipped}); "
            "D compares with experiment only"
        )
    if skipped:
        refs = ", ".join(sorted(set(rdf["reference"].astype(str))))
        return f"C: reference {refs}; not used, liquid fused: {skipped}"
    return None


def fig3_accuracy_vs_weights(
    models: pd.DataFrame,
    rdf: pd.DataFrame | None,
    png: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    run: str | None = None,
) -> list[str]:
    """Fig 3: force RMSE (A), energy-per-atom RMSE (B), RDF error vs the reference teacher
    (C) and vs the 1198 K experiment (D) against the number of weights.

    Fused liquids get red rings in C and D; a reference other than the first teacher member
    (its liquid fused) is named in the footer, and C stays empty with a note when every
    member fused (:func:`reference_note`).

    Log x; mean ± std over seeds. Returns notes about missing data.
    """
    apply_style()
    all_roles = list(models["role"].unique())
    points = analysis.summarise_points(models, None, rdf)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), constrained_layout=True)
    notes: list[str] = []
    drawn: set[str] = set()
    panels = (
        ("test_f_rmse", 1.0, F_LABEL),
        ("test_e_rmse", 1e3, E_LABEL),
        ("rdf_error_A", 1.0, RDF_LABEL),
        ("rdf_error_vs_exp_A", 1.0, RDF_EXP_LABEL),
    )
    ref_note = reference_note(rdf)
    if ref_note:
        notes.append(ref_note)
    for ax, (col, scale, ylabel), label in zip(axes, panels, "ABCD", strict=True):
        _panel_label(ax, label)
        if col == "rdf_error_A" and _no_reference(rdf):
            _note(ax, "no teacher reference:\nevery teacher member's liquid\nfused (see D)")
            continue
        if col.startswith("rdf_") and not _has(rdf, col):
            _note(ax, "no RDF errors\n(LAMMPS stage disabled or rdf_errors table empty)")
            notes.append(f"{label}: no RDF data")
            continue
        drawn |= set(
            _scatter_roles(ax, points, "n_weights", col, all_roles, yscale=scale, connect=True)
        )
        ax.set_xscale("log")
        ax.set_xlabel(W_LABEL)
        ax.set_ylabel(ylabel)
        if col.startswith("rdf_"):
            notes += _mark_fused(ax, points, rdf, col, label)
        if col == "rdf_error_A":
            missing = sorted(set(points["role"]) - set(_finite(points, "rdf_error_A_mean")["role"]))
            missing = [m for m in missing if m != "teacher"]
            if missing:
                notes.append(f"C: no RDF for {', '.join(missing)}")
    _legend(fig, sorted(drawn), all_roles)
    _footer(fig, run, notes)
    save_figure(fig, png, pdf)
    return notes


def fig4_learning_curves(
    histories: pd.DataFrame | None,
    archs: Sequence[str],
    png: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    run: str | None = None,
    roles: Sequence[str] | None = None,
) -> list[str]:
    """Fig 4: train (A) and validation (B) force RMSE vs epoch, one row per architecture.

    One thin line per seed (student and control share seeds, hence initial weights); the
    grid roles in ``roles`` (default: the named grid roles of :mod:`aedistill.roles`) that
    have histories for the architecture are drawn. Log y.
    ``archs``: the config's choice, :func:`aedistill.analysis.learning_curve_archs`.
    """
    apply_style()
    roles = grid_roles() if roles is None else roles
    notes: list[str] = []
    archs = list(archs)
    nrow = max(1, len(archs))
    fig, axes = plt.subplots(
        nrow, 2, figsize=(10, 3.6 * nrow), squeeze=False, constrained_layout=True
    )
    all_roles = [] if histories is None else list(histories["role"].unique())
    drawn: set[str] = set()
    for i, arch in enumerate(archs or [None]):
        for j, (col, what) in enumerate(
            (("train_f_rmse", "train"), ("valid_f_rmse", "validation"))
        ):
            ax = axes[i, j]
            _panel_label(ax, "AB"[j] + (str(i + 1) if nrow > 1 else ""))
            h = None
            if histories is not None and arch is not None and col in histories.columns:
                h = histories[(histories["arch"] == arch) & histories["role"].isin(roles)]
                h = _finite(h, "epoch", col)
            if arch is None:
                _note(ax, "no architecture chosen\n(figures.learning_curve_archs)")
                notes.append("no architecture chosen for the learning curves")
                continue
            if h is None or h.empty:
                _note(ax, f"no training histories for {arch}")
                notes.append(f"no histories for {arch}")
                continue
            for role in ordered_roles(h["role"].unique()):
                colour, _, _ = role_style(role, all_roles)
                hr = h[h["role"] == role]
                for _seed, hs in hr.groupby("seed"):
                    hs = hs.sort_values("epoch")
                    ax.plot(hs["epoch"], hs[col], color=colour, lw=1.1, alpha=0.85)
                drawn.add(role)
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{what} force RMSE (eV/Å)")
            ax.set_title(f"{arch}: {what}", fontsize=11)
    handles = []
    for role in ordered_roles(sorted(drawn)):
        colour, _, label = role_style(role, all_roles)
        handles.append(Line2D([], [], color=colour, lw=2, label=f"{label} (one line per seed)"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, 1))
    _footer(fig, run, notes)
    save_figure(fig, png, pdf)
    return notes


def fig5_efficiency_vs_weights(
    models: pd.DataFrame,
    efficiency: pd.DataFrame | None,
    png: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    run: str | None = None,
) -> list[str]:
    """Fig 5: time per MD step per atom (A; ASE, and LAMMPS side by side where measured)
    and memory per atom (B) vs number of weights (log x)."""
    apply_style()
    all_roles = list(models["role"].unique())
    points = analysis.summarise_points(models, efficiency, None)
    has_lmp = _has(efficiency, "lammps_time_per_step_per_atom_s")
    panels = [("time_per_step_per_atom_s", 1e6, T_LABEL, "A", "ASE")]
    if has_lmp:
        panels.append(("lammps_time_per_step_per_atom_s", 1e6, T_LABEL, "A′", "LAMMPS"))
    panels.append(("bytes_per_atom", 1e-3, M_LABEL, "B", None))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.8 * len(panels), 4.2), constrained_layout=True
    )
    notes: list[str] = []
    drawn: set[str] = set()
    for ax, (col, scale, ylabel, label, engine) in zip(axes, panels, strict=True):
        _panel_label(ax, label)
        if not _has(efficiency, col):
            _note(ax, f"no measurements\n(efficiency table absent\nor without {col})")
            notes.append(f"{label}: no data")
            continue
        drawn |= set(
            _scatter_roles(ax, points, "n_weights", col, all_roles, yscale=scale, connect=True)
        )
        ax.set_xscale("log")
        _plain_log(ax, "y")
        ax.set_xlabel(W_LABEL)
        ax.set_ylabel(ylabel)
        if engine:
            ax.set_title(f"{engine} MD", fontsize=11)
    if not has_lmp:
        notes.append("no LAMMPS timings (ASE only)")
    _legend(fig, sorted(drawn), all_roles)
    _footer(fig, run, notes)
    save_figure(fig, png, pdf)
    return notes


# --------------------------------------------------------------------------- driver
FIGURES = ("fig2", "fig3", "fig4", "fig5")


def convergence_note(models: pd.DataFrame) -> str | None:
    """ "UNCONVERGED: k of n models" when models.csv says some models did not converge
    (``converged`` of :mod:`aedistill.convergence`); None when all did or it is not known."""
    if "converged" not in models.columns:
        return None
    converged = models["converged"].astype(str).str.lower() == "true"
    n_bad = int((~converged).sum())
    if n_bad == 0:
        return None
    return f"UNCONVERGED: {n_bad} of {len(models)} models (metrics.json 'converged')"


def make_figure(
    name: str,
    png: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    models_csv: str | os.PathLike[str],
    histories_csv: str | os.PathLike[str] | None = None,
    efficiency_csv: str | os.PathLike[str] | None = None,
    rdf_csv: str | os.PathLike[str] | None = None,
    run: str | None = None,
    learning_curve_archs: Sequence[str] = (),
) -> list[str]:
    """Read the tables a figure needs and draw figure ``name`` (fig2..fig5).

    Missing optional tables (``None`` path, absent file, no rows) leave their panels with a
    note. ``learning_curve_archs``: the architectures of Fig 4 (the config's choice,
    :func:`aedistill.analysis.learning_curve_archs`). Returns the notes (also logged).
    """
    models = analysis.read_models(models_csv)
    eff = analysis.read_table(efficiency_csv, ("role", "arch", "seed"))
    rdf = analysis.read_rdf_errors(rdf_csv)
    unconverged = convergence_note(models)
    if unconverged:  # in every figure's footer: these results are not what training can reach
        run = f"{run} · {unconverged}" if run else unconverged
    if name == "fig2":
        notes = fig2_pareto(models, eff, png, pdf, run)
    elif name == "fig3":
        notes = fig3_accuracy_vs_weights(models, rdf, png, pdf, run)
    elif name == "fig4":
        hist = analysis.read_table(histories_csv, ("role", "arch", "seed", "epoch"))
        notes = fig4_learning_curves(hist, learning_curve_archs, png, pdf, run)
    elif name == "fig5":
        notes = fig5_efficiency_vs_weights(models, eff, png, pdf, run)
    else:
        raise ValueError(f"unknown figure {name!r}; expected one of {FIGURES}")
    if unconverged:
        notes = [*notes, unconverged]
    for n in notes:
        log.warning("%s: %s", name, n)
    return notes
