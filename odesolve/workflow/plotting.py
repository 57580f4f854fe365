"""Theory-vs-simulation plots of results datasets (see :mod:`odesolve.workflow.results`).

Conventions of every plot, each explained by a key on the figure itself: the theory is
drawn as lines (the mean over seeds, thick, and each seed's own prediction from its
initial weights, thin), the simulation as markers with error bars (mean ± standard error
over seeds), PCA error levels as dashed grey lines, and time on a log axis (t = 0 is
left out).  The simulated error is, by default, the *exact* generalisation error of the
simulated weights (the theory's error formula evaluated on their order parameters, free
of Monte-Carlo noise); the held-out Monte-Carlo test error is an option, and the only
choice for SGD on a real data set, whose inputs are not Gaussian.  Legends sit beside or
below the panels, never on the data.

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing here
touches pyplot's global state or needs a display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .outputs import write_outputs
from .results import normalised_overlaps

__all__ = [
    "new_figure",
    "legend_outside",
    "style_key",
    "simulation_error_variable",
    "plot_theory_and_simulation",
    "plot_pca_levels",
    "simulation_label",
    "plot_error_panel",
    "with_overlap_shares",
    "plot_overlap_panel",
    "plot_bias_panel",
    "plot_result",
    "final_values",
    "plot_sweep",
    "save_figure",
    "png_writer",
]

#: Styles shared by every plot (and by the keys that explain them).
THEORY_LW, SEED_LW, SEED_ALPHA = 1.8, 0.6, 0.35
MARKER_SIZE = 3.5
PCA_STYLE = dict(ls="--", lw=0.8, color="0.45")
EXIT_STYLE = dict(ls=":", lw=0.9, color="0.45")
UNIT_STYLES = ["-", "--", ":", "-."]
#: How the simulated error is measured: ``"exact"`` (the error formula on the simulated
#: weights), ``"test"`` (Monte-Carlo error on held-out samples), ``"auto"`` (exact for
#: Gaussian inputs, the held-out error for SGD on a real data set).
SIMULATION_ERRORS = ("auto", "exact", "test")


def new_figure(n_panels: int = 1, *, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure with ``n_panels`` side by side; returns ``(figure, axes)`` (axes always a list)."""
    fig = Figure(figsize=(width * n_panels, height), layout="constrained")
    axes = fig.subplots(1, n_panels, squeeze=False, **kwargs)[0]
    return fig, list(axes)


def legend_outside(ax, handles=None, labels=None, *, where: str = "below", ncol: int = 1,
                   fontsize: float = 6.5, **kwargs):
    """A legend of ``ax`` placed off the data: ``"below"`` the axes or ``"right"`` of them.

    The figure's constrained layout makes room for it.  ``handles``/``labels`` default to
    the artists of ``ax`` that carry a label.  Returns the legend (None if empty).
    """
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if not handles:
        return None
    if where == "below":
        place = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    elif where == "right":
        place = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        raise ValueError(f"where must be 'below' or 'right', got {where!r}")
    return ax.legend(handles, labels, fontsize=fontsize, ncol=ncol, borderaxespad=0.0,
                     **place, **kwargs)


def simulation_error_variable(dataset: xr.Dataset, simulation_error: str = "auto"):
    """``(variable, description)`` of the simulated error that ``simulation_error`` picks.

    ``"exact"`` needs ``error_exact_simulation`` (the error formula evaluated on the
    simulated weights); ``"test"`` is ``error_simulation`` (held-out Monte-Carlo error);
    ``"auto"`` is exact for Gaussian inputs and the held-out error for image data (whose
    error on the images is not the Gaussian formula's) or for files that lack the exact one.

    Raises
    ------
    ValueError
        For an unknown choice, or ``"exact"`` on a dataset without the exact error.
    """
    if simulation_error not in SIMULATION_ERRORS:
        raise ValueError(f"simulation_error must be one of {SIMULATION_ERRORS}, "
                         f"got {simulation_error!r}")
    has_exact = "error_exact_simulation" in dataset
    if simulation_error == "exact" and not has_exact:
        raise ValueError("this dataset has no exact error of the simulated weights "
                         "(error_exact_simulation); use simulation_error='test'")
    if simulation_error == "auto":
        simulation_error = ("exact" if has_exact and dataset.attrs.get("data_kind") != "images"
                            else "test")
    if simulation_error == "exact":
        return "error_exact_simulation", "exact error of the weights"
    n_test = dataset.attrs.get("n_test")
    return "error_simulation", ("held-out test error" if n_test is None
                                else f"test error on {n_test} held-out samples")


def _n_seeds(dataset: xr.Dataset) -> int:
    return int(dataset.sizes["seed"])


def style_key(dataset: xr.Dataset | None = None, *, theory: bool = True, per_seed: bool = True,
              simulation: bool = True, simulation_error: str = "auto", pca: bool = False,
              exits: bool = False, short: bool = False, color: str = "0.2") -> list:
    """Legend handles explaining the line styles of a panel (drawn in grey: style, not colour).

    Entries: theory mean over seeds (thick) and each seed's own theory (thin), SGD markers
    (mean ± standard error over the seeds, and which error they show), PCA levels
    (dashed), theory's plateau exits (dotted).  ``short`` gives one-line labels for
    panels whose colours are explained by other entries.
    """
    n = _n_seeds(dataset) if dataset is not None else 0
    simulated = simulation and dataset is not None and "error_simulation" in dataset
    D = dataset.attrs.get("D") if dataset is not None else None
    handles = []
    if theory:
        label = (("thick: ODE, mean of seeds" if per_seed and n > 1 else "lines: ODE theory")
                 if short else
                 "ODE theory" + (f", mean of {n} seeds" if n > 1 else ""))
        handles.append(Line2D([], [], color=color, lw=THEORY_LW, label=label))
        if per_seed and n > 1:
            handles.append(Line2D([], [], color=color, lw=SEED_LW, alpha=0.6,
                                  label="thin: ODE of each seed" if short
                                  else "ODE from each seed's initial weights"))
    if simulated:
        if short:
            label = f"markers: SGD, D = {D}"
        else:
            _, what = simulation_error_variable(dataset, simulation_error)
            label = (f"SGD, D = {D}: mean ± s.e. of {n} seed{'s' if n > 1 else ''}\n"
                     f"({what})")
        handles.append(Line2D([], [], color=color, marker="o", mfc="none", ls="none",
                              ms=MARKER_SIZE, label=label))
    if pca:
        handles.append(Line2D([], [], label="PCA error of rank k", **PCA_STYLE))
    if exits:
        handles.append(Line2D([], [], label="plateau exits (theory)", **EXIT_STYLE))
    return handles


def plot_theory_and_simulation(ax, dataset: xr.Dataset, variable: str = "error", *,
                               select: dict | None = None, color=None, label: str | None = None,
                               simulation_label: str | None = None, per_seed: bool = True,
                               marker: str = "o", linestyle: str = "-",
                               simulation_variable: str | None = None,
                               max_markers: int = 30) -> None:
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
    simulation_variable : str, optional
        Dataset variable of the simulated values (default ``{variable}_simulation``).
    max_markers : int
        At most this many markers per curve (evenly spread over the recorded times,
        which are log-spaced by default), so that a dense time grid, which the theory
        lines need to look smooth, does not bury them.
    """
    def get(name):
        if name not in dataset:
            return None
        da = dataset[name].sel(select) if select else dataset[name]
        return da.sel(time=da["time"] > 0)

    theory = get(f"{variable}_theory")
    if theory is not None:
        t = theory["time"].values
        if per_seed and theory.sizes["seed"] > 1:
            ax.plot(t, theory.transpose("time", "seed").values, color=color, lw=SEED_LW,
                    alpha=SEED_ALPHA, ls=linestyle)
        line, = ax.plot(t, theory.mean("seed").values, color=color, lw=THEORY_LW, ls=linestyle,
                        label=label)
        color = line.get_color()
    sim = get(simulation_variable or f"{variable}_simulation")
    if sim is not None:
        if sim.sizes["time"] > max_markers:
            keep = np.unique(np.round(np.linspace(0, sim.sizes["time"] - 1, max_markers)))
            sim = sim.isel(time=keep.astype(int))
        mean = sim.mean("seed")
        stderr = sim.std("seed", ddof=1) / np.sqrt(sim.count("seed")) if sim.sizes["seed"] > 1 else None
        ax.errorbar(sim["time"].values, mean.values, yerr=None if stderr is None else stderr.values,
                    fmt=marker, ms=MARKER_SIZE, mfc="none", color=color, elinewidth=0.8,
                    capsize=1.5, label=simulation_label)
    ax.set_xscale("log")
    ax.set_xlabel("time t (samples / D)")


def plot_pca_levels(ax, dataset: xr.Dataset, ranks=None, *, label_levels: bool = True) -> None:
    """Dashed horizontal lines at the PCA errors of rank 1…K (``pca_error``), labelled
    ``PCA k`` just outside the right edge of the axes (off the data)."""
    pca = dataset["pca_error"]
    ranks = [int(r) for r in pca["rank"].values if r > 0] if ranks is None else list(ranks)
    for k in ranks:
        level = float(pca.sel(rank=k))
        ax.axhline(level, zorder=0, **PCA_STYLE)
        if label_levels:
            ax.annotate(f"PCA {k}", xy=(1.0, level), xycoords=("axes fraction", "data"),
                        xytext=(2, 0), textcoords="offset points", ha="left", va="center",
                        fontsize=6.5, color="0.35", annotation_clip=False)


def simulation_label(dataset: xr.Dataset, prefix: str = "SGD") -> str:
    """``"SGD, D = 500, 4 seeds"``: legend label of a dataset's simulation markers."""
    n = dataset.sizes["seed"]
    return f"{prefix}, D = {dataset.attrs.get('D')}, {n} seed{'s' if n > 1 else ''}"


def plot_error_panel(ax, dataset: xr.Dataset, *, color=None, label: str | None = None,
                     simulation_label_prefix: str | None = None, pca: bool = True,
                     marker: str = "o", simulation_error: str = "auto") -> None:
    """Generalisation error against time: theory, simulation and PCA levels (log-log).

    ``label``/``simulation_label_prefix`` name the curve and its markers in a legend (no
    label by default: a single run is explained by :func:`style_key`);
    ``simulation_error`` picks the simulated error (:func:`simulation_error_variable`).
    """
    has_sim = "error_simulation" in dataset
    variable = simulation_error_variable(dataset, simulation_error)[0] if has_sim else None
    plot_theory_and_simulation(
        ax, dataset, "error", color=color, label=label, marker=marker,
        simulation_variable=variable,
        simulation_label=None if simulation_label_prefix is None or not has_sim
        else simulation_label(dataset, simulation_label_prefix))
    if pca:
        plot_pca_levels(ax, dataset)
    ax.set_yscale("log")
    ax.set_ylabel("generalisation error ε")


def with_overlap_shares(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` plus ``share_theory``/``share_simulation``: see :func:`normalised_overlaps`."""
    kinds = [k for k in ("theory", "simulation") if f"A_{k}" in dataset]
    return dataset.assign({f"share_{k}": normalised_overlaps(dataset, k) for k in kinds})


def plot_overlap_panel(ax, dataset: xr.Dataset, *, pairs=None, per_seed: bool = False,
                       legend: bool = True, seed=None) -> list:
    """Share ``s_τ A_kτ²/Q_kk`` of unit k's variance along mode τ against time.

    Colour is the mode, line style the unit.  ``pairs`` restricts to some ``(unit,
    spike)`` pairs (default: every unit with each of the K leading modes).  ``seed`` shows one
    seed only: which unit learns which mode depends on the initial weights, so a mean
    over seeds blurs curves that are sharp for every seed.  ``legend`` puts the key
    (colour = mode, style = unit, lines = theory, markers = SGD) below the panel.
    Returns the key's handles.
    """
    if seed is not None:
        dataset = dataset.sel(seed=[seed])
    shares = with_overlap_shares(dataset)
    spikes = [int(tau) for tau in dataset["spike"].values]
    units = [int(k) for k in dataset["unit"].values]
    if pairs is None:  # the K leading modes: all-modes runs store every one of the D
        pairs = [(k, tau) for k in units for tau in spikes[:len(units)]]
    for k, tau in pairs:
        plot_theory_and_simulation(ax, shares, "share", select={"unit": k, "spike": tau},
                                   color=f"C{spikes.index(tau) % 10}", per_seed=per_seed,
                                   linestyle=UNIT_STYLES[k % len(UNIT_STYLES)])
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("share of unit variance on the mode")
    modes = sorted({tau for _, tau in pairs}, key=spikes.index)
    handles = ([Line2D([], [], color=f"C{spikes.index(tau) % 10}", lw=THEORY_LW,
                       label=f"mode {tau + 1}") for tau in modes]
               + [Line2D([], [], color="0.2", lw=1.2, ls=UNIT_STYLES[k % len(UNIT_STYLES)],
                         label=f"unit {k + 1}") for k in sorted({k for k, _ in pairs})]
               + style_key(dataset, per_seed=per_seed, short=True))
    if legend:
        legend_outside(ax, handles, ncol=2)
    return handles


def plot_bias_panel(ax, dataset: xr.Dataset, *, color="C1", legend: bool = True) -> list:
    """Trained encoder biases m_k(t): one line style per unit (theory lines, SGD markers).

    Returns the key's handles (``legend`` puts them below the panel).
    """
    units = [int(k) for k in dataset["unit"].values]
    markers = ["o", "s", "^", "v", "D"]
    for k in units:
        plot_theory_and_simulation(ax, dataset, "m", select={"unit": k}, color=color,
                                   linestyle=UNIT_STYLES[k % len(UNIT_STYLES)],
                                   marker=markers[k % len(markers)])
    ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    ax.set_ylabel("encoder bias m_k")
    handles = [Line2D([], [], color=color, lw=1.2, ls=UNIT_STYLES[k % len(UNIT_STYLES)],
                      marker=markers[k % len(markers)], mfc="none", ms=MARKER_SIZE,
                      label=f"unit {k + 1}") for k in units]
    handles += style_key(dataset, simulation="m_simulation" in dataset, short=True)
    if legend:
        legend_outside(ax, handles, ncol=2)
    return handles


def plot_result(dataset: xr.Dataset, path=None, *, title: str | None = None,
                simulation_error: str = "auto") -> Figure:
    """The standard figure of one results file: error, overlaps (and biases, if trained).

    Parameters
    ----------
    dataset : xarray.Dataset
        A results dataset (e.g. from :func:`odesolve.workflow.results.load_results`).
    path : path, optional
        Where to save the PNG.
    title : str, optional
        Figure title (default: the dataset's ``title`` attribute).
    simulation_error : {"auto", "exact", "test"}
        Which simulated error the left panel shows (:func:`simulation_error_variable`).
    """
    biased = "m_theory" in dataset and dataset.attrs.get("bias") == "trained"
    fig, axes = new_figure(3 if biased else 2, height=4.2)
    ax_error, ax_overlap = axes[:2]
    plot_error_panel(ax_error, dataset, color="C0", simulation_error=simulation_error)
    legend_outside(ax_error, style_key(dataset, pca=True, simulation_error=simulation_error))
    ax_error.set_title(f"error (theory: {dataset.attrs.get('theory_mode')}, "
                       f"η = {dataset.attrs.get('lr')})", fontsize=8)
    first_seed = dataset["seed"].values[0]
    plot_overlap_panel(ax_overlap, dataset, seed=first_seed)
    ax_overlap.set_title(f"overlaps with the modes, seed {first_seed}", fontsize=8)
    if biased:
        plot_bias_panel(axes[2], dataset, color="C0")
        axes[2].set_title("trained encoder biases", fontsize=8)
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


def _final_time_text(da: xr.DataArray) -> str:
    """At which time :func:`final_values` takes the values of ``da``, in words."""
    when = final_values(xr.where(np.isfinite(da), da["time"], np.nan))
    times = np.unique(when.values[np.isfinite(when.values)])
    if len(times) == 1:
        return f"t = {times[0]:g}"
    return f"each point's last time (t = {times.min():g}…{times.max():g})"


def plot_sweep(dataset: xr.Dataset, path=None, *, simulation_error: str = "auto") -> Figure:
    """Final error of every sweep point against the first swept parameter.

    One colour per combination of the other swept parameters; theory as lines (mean over
    seeds), simulation as markers (mean ± standard error), as in every other plot.  The
    key says both, the number of seeds, and at which time the "final" error is taken
    (the last recorded time; a point that diverged earlier shows its last finite value).
    """
    swept = [d for d in dataset["error_theory"].dims if d not in ("seed", "time")]
    x_dim, others = swept[0], swept[1:]
    x = dataset[x_dim].values
    numeric = np.issubdtype(x.dtype, np.number)
    positions = x if numeric else np.arange(len(x))
    fig, (ax,) = new_figure(1, width=5.6, height=4.2)
    finals = {"theory": final_values(dataset["error_theory"])}
    if "error_simulation" in dataset:
        variable, _ = simulation_error_variable(dataset, simulation_error)
        finals["simulation"] = final_values(dataset[variable])
    combos = [dict()] if not others else [
        dict(zip(others, values)) for values in np.ndindex(*[dataset.sizes[d] for d in others])]
    handles = []
    for i, combo in enumerate(combos):
        color = f"C{i % 10}"
        theory = finals["theory"].isel(combo)
        ax.plot(positions, theory.mean("seed").values, "-", color=color, lw=THEORY_LW)
        if "simulation" in finals:
            sim = finals["simulation"].isel(combo)
            n = sim.count("seed")
            stderr = sim.std("seed", ddof=1) / np.sqrt(n) if sim.sizes["seed"] > 1 else None
            ax.errorbar(positions, sim.mean("seed").values,
                        yerr=None if stderr is None else stderr.values, fmt="o", mfc="none",
                        ms=4, color=color, capsize=1.5)
        if combo:
            handles.append(Line2D([], [], color=color, lw=THEORY_LW, label=", ".join(
                f"{d} = {dataset[d].values[j]}" for d, j in combo.items())))
    if numeric and np.all(x > 0) and x.max() / x.min() >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(positions, [str(v) for v in x])
    ax.set_yscale("log")
    ax.set_xlabel(x_dim)
    ax.set_ylabel(f"error at {_final_time_text(dataset['error_theory'])}")
    handles += style_key(dataset, per_seed=False, simulation_error=simulation_error)
    legend_outside(ax, handles, ncol=1)
    ax.set_title(dataset.attrs.get("title", ""), fontsize=8)
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
