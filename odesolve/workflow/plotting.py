"""Theory-vs-simulation plots of results datasets (see :mod:`odesolve.workflow.results`).

Conventions of every plot: the theory is drawn as lines (the mean over seeds, thick,
and each seed's own prediction, thin), the simulation as markers with error bars (mean
± standard error over seeds), PCA error levels as dashed horizontal lines, and time on
a log axis (t = 0 is left out).

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing here
touches pyplot's global state or needs a display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .outputs import write_outputs
from .results import normalised_overlaps

__all__ = [
    "new_figure",
    "plot_theory_and_simulation",
    "plot_pca_levels",
    "simulation_label",
    "plot_error_panel",
    "with_overlap_shares",
    "plot_overlap_panel",
    "plot_result",
    "final_values",
    "plot_sweep",
    "save_figure",
    "png_writer",
]


def new_figure(n_panels: int = 1, *, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure with ``n_panels`` side by side; returns ``(figure, axes)`` (axes always a list)."""
    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False, **kwargs)[0]
    return fig, list(axes)


def plot_theory_and_simulation(ax, dataset: xr.Dataset, variable: str = "error", *,
                               select: dict | None = None, color=None, label: str | None = None,
                               simulation_label: str | None = None, per_seed: bool = True,
                               marker: str = "o", linestyle: str = "-") -> None:
    """Draw ``{variable}_theory`` as lines and ``{variable}_simulation`` as markers.

    Parameters
    ----------
    ax : matplotlib Axes
    dataset : xarray.Dataset
        A results dataset (or one with derived ``{variable}_theory`` variables).
    variable : str
        ``"error"``, ``"Q"``, ``"A"``, …: the stem of ``{variable}_theory``.
    select : dict, optional
        ``.sel`` indexers picking one curve out of extra dimensions (e.g. ``{"unit": 0,
        "unit_": 0}``).
    color : optional
        Colour of both the lines and the markers.
    label, simulation_label : str, optional
        Legend labels of the theory line and of the simulation markers.
    per_seed : bool
        Also draw each seed's theory as a thin line.
    marker, linestyle : str
        Marker of the simulation points, style of the theory lines.
    """
    def get(kind):
        name = f"{variable}_{kind}"
        if name not in dataset:
            return None
        da = dataset[name].sel(select) if select else dataset[name]
        return da.sel(time=da["time"] > 0)

    theory = get("theory")
    if theory is not None:
        t = theory["time"].values
        if per_seed and theory.sizes["seed"] > 1:
            ax.plot(t, theory.transpose("time", "seed").values, color=color, lw=0.6, alpha=0.35,
                    ls=linestyle)
        line, = ax.plot(t, theory.mean("seed").values, color=color, lw=1.8, ls=linestyle,
                        label=label)
        color = line.get_color()
    sim = get("simulation")
    if sim is not None:
        mean = sim.mean("seed")
        stderr = sim.std("seed", ddof=1) / np.sqrt(sim.count("seed")) if sim.sizes["seed"] > 1 else None
        ax.errorbar(sim["time"].values, mean.values, yerr=None if stderr is None else stderr.values,
                    fmt=marker, ms=3.5, mfc="none", color=color, elinewidth=0.8, capsize=1.5,
                    label=simulation_label)
    ax.set_xscale("log")
    ax.set_xlabel("time t (samples / D)")


def plot_pca_levels(ax, dataset: xr.Dataset, ranks=None, *, label_levels: bool = True) -> None:
    """Dashed horizontal lines at the PCA errors of rank 1…K (``pca_error``)."""
    pca = dataset["pca_error"]
    ranks = [int(r) for r in pca["rank"].values if r > 0] if ranks is None else list(ranks)
    for k in ranks:
        level = float(pca.sel(rank=k))
        ax.axhline(level, ls="--", lw=0.8, color="0.45", zorder=0)
        if label_levels:
            ax.annotate(f"PCA {k}", xy=(1.0, level), xycoords=("axes fraction", "data"),
                        xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom",
                        fontsize=7, color="0.35")


def simulation_label(dataset: xr.Dataset, prefix: str = "SGD") -> str:
    """``"SGD, D = 500, 4 seeds"``: legend label of a dataset's simulation markers."""
    n = dataset.sizes["seed"]
    return f"{prefix}, D = {dataset.attrs.get('D')}, {n} seed{'s' if n > 1 else ''}"


def plot_error_panel(ax, dataset: xr.Dataset, *, color=None, label: str = "theory",
                     simulation_label_prefix: str = "SGD", pca: bool = True,
                     marker: str = "o") -> None:
    """Generalisation error against time: theory, simulation and PCA levels (log-log)."""
    plot_theory_and_simulation(ax, dataset, "error", color=color, label=label, marker=marker,
                               simulation_label=simulation_label(dataset, simulation_label_prefix))
    if pca:
        plot_pca_levels(ax, dataset)
    ax.set_yscale("log")
    ax.set_ylabel("generalisation error ε")


def with_overlap_shares(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` plus ``share_theory``/``share_simulation``: see :func:`normalised_overlaps`."""
    kinds = [k for k in ("theory", "simulation") if f"A_{k}" in dataset]
    return dataset.assign({f"share_{k}": normalised_overlaps(dataset, k) for k in kinds})


def plot_overlap_panel(ax, dataset: xr.Dataset, *, pairs=None, per_seed: bool = False,
                       legend: bool = True, seed=None) -> None:
    """Share ``s_τ A_kτ²/Q_kk`` of unit k's variance along mode τ against time.

    Colour is the mode, line style the unit.  ``pairs`` restricts to some ``(unit,
    spike)`` pairs (default: every unit with each of the K leading modes).  ``seed`` shows one
    seed only: which unit learns which mode depends on the initial weights, so a mean
    over seeds blurs curves that are sharp for every seed.
    """
    styles = ["-", "--", ":", "-."]
    if seed is not None:
        dataset = dataset.sel(seed=[seed])
    shares = with_overlap_shares(dataset)
    spikes = [int(tau) for tau in dataset["spike"].values]
    if pairs is None:  # the K leading modes: all-modes runs store every one of the D
        pairs = [(int(k), tau) for k in dataset["unit"].values
                 for tau in spikes[:dataset.sizes["unit"]]]
    for k, tau in pairs:
        plot_theory_and_simulation(ax, shares, "share", select={"unit": k, "spike": tau},
                                   color=f"C{spikes.index(tau) % 10}", per_seed=per_seed,
                                   linestyle=styles[k % len(styles)],
                                   label=f"unit {k + 1}, mode {tau + 1}")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("share of unit variance on the mode")
    if legend and len(pairs) <= 12:
        ax.legend(fontsize=6, loc="best", ncol=2)


def plot_result(dataset: xr.Dataset, path=None, *, title: str | None = None) -> Figure:
    """The standard figure of one results file: error (left) and overlaps (right).

    Parameters
    ----------
    dataset : xarray.Dataset
        A results dataset (e.g. from :func:`odesolve.workflow.results.load_results`).
    path : path, optional
        Where to save the PNG.
    title : str, optional
        Figure title (default: the dataset's ``title`` attribute).
    """
    fig, (ax_error, ax_overlap) = new_figure(2)
    plot_error_panel(ax_error, dataset, color="C0")
    ax_error.legend(fontsize=7, loc="lower left")
    ax_error.set_title(f"theory: {dataset.attrs.get('theory_mode')}, η = {dataset.attrs.get('lr')}",
                       fontsize=8)
    first_seed = dataset["seed"].values[0]
    plot_overlap_panel(ax_overlap, dataset, seed=first_seed)
    ax_overlap.set_title(f"seed {first_seed}: theory (lines) vs SGD (markers)", fontsize=8)
    fig.suptitle(title if title is not None else dataset.attrs.get("title", ""), fontsize=9)
    if path is not None:
        save_figure(fig, path, run_id=dataset.attrs.get("run_id"))
    return fig


def final_values(da: xr.DataArray) -> xr.DataArray:
    """The last finite value along ``time`` (points of a sweep may stop at different times)."""
    values = np.moveaxis(da.values, da.get_axis_num("time"), -1)
    finite = np.isfinite(values)
    last = values.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    picked = np.take_along_axis(values, last[..., None], axis=-1)[..., 0]
    picked = np.where(finite.any(axis=-1), picked, np.nan)
    dims = [d for d in da.dims if d != "time"]
    return xr.DataArray(picked, dims=dims, coords={d: da.coords[d] for d in dims if d in da.coords})


def plot_sweep(dataset: xr.Dataset, path=None) -> Figure:
    """Final error of every sweep point against the first swept parameter.

    One curve per combination of the other swept parameters; theory as lines (mean over
    seeds), simulation as markers (mean ± standard error), as in every other plot.
    """
    swept = [d for d in dataset["error_theory"].dims if d not in ("seed", "time")]
    x_dim, others = swept[0], swept[1:]
    x = dataset[x_dim].values
    numeric = np.issubdtype(x.dtype, np.number)
    positions = x if numeric else np.arange(len(x))
    fig, (ax,) = new_figure(1, width=5.0)
    finals = {kind: final_values(dataset[f"error_{kind}"]) for kind in ("theory", "simulation")
              if f"error_{kind}" in dataset}
    combos = [dict()] if not others else [
        dict(zip(others, values)) for values in np.ndindex(*[dataset.sizes[d] for d in others])]
    for i, combo in enumerate(combos):
        label = ", ".join(f"{d} = {dataset[d].values[j]}" for d, j in combo.items()) or "theory"
        color = f"C{i % 10}"
        theory = finals["theory"].isel(combo)
        ax.plot(positions, theory.mean("seed").values, "-", color=color, label=label)
        if "simulation" in finals:
            sim = finals["simulation"].isel(combo)
            n = sim.count("seed")
            stderr = sim.std("seed", ddof=1) / np.sqrt(n) if sim.sizes["seed"] > 1 else None
            ax.errorbar(positions, sim.mean("seed").values,
                        yerr=None if stderr is None else stderr.values, fmt="o", mfc="none",
                        ms=4, color=color, capsize=1.5)
    if numeric and np.all(x > 0) and x.max() / x.min() >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(positions, [str(v) for v in x])
    ax.set_yscale("log")
    ax.set_xlabel(x_dim)
    ax.set_ylabel("final generalisation error ε")
    ax.legend(fontsize=7)
    ax.set_title(dataset.attrs.get("title", ""), fontsize=9)
    if path is not None:
        save_figure(fig, path, run_id=dataset.attrs.get("run_id"))
    return fig


def save_figure(fig: Figure, path, dpi: int = 150, run_id: str | None = None) -> Path:
    """Save ``fig`` as PNG atomically (parents created) and return the path.

    ``run_id`` is stored in the PNG's text metadata (``odesolve_run_id``), naming the
    results file it was drawn from."""
    path = Path(path)
    return write_outputs(path.parent, {path.name: png_writer(fig, dpi, run_id)})[path.name]


def png_writer(fig: Figure, dpi: int = 150, run_id: str | None = None):
    """``write(path)`` of ``fig`` as PNG, for :func:`odesolve.workflow.outputs.write_outputs`."""
    metadata = {"odesolve_run_id": run_id} if run_id else None
    return lambda path: fig.savefig(path, dpi=dpi, format="png", metadata=metadata)
