"""Figure 2: tied sigmoidal autoencoders fail, untied ones approach PCA.

erf autoencoders on two spikes (``examples/tied_erf.toml``), with tied weights
(v_k = √D w_k) and untied.  Left: the error, PCA levels dashed; right: the excess over
the PCA error of rank K, which keeps decaying (like t^(-2/3)) only for untied weights.
The two start from different initial spike overlaps (init and init/√D, docs/theory.md),
so their plateau exits are not comparable.
"""
from __future__ import annotations

from matplotlib.lines import Line2D

from odesolve.workflow.plotting import (THEORY_LW, legend_outside, new_figure, plot_error_panel,
                               plot_theory_and_simulation, simulation_error_variable,
                               style_key)

from .common import example_config, main, run, save

NAME = "fig2_tied_vs_untied"
COLORS = {"untied": "C0", "tied": "C1"}


def figure(quick: bool = False, *, progress: bool = False):
    """Run the tied and untied erf autoencoders and draw the figure; returns the Figure."""
    runs = {"untied": run(example_config("tied_erf", quick, **{"model.tied": False}), progress),
            "tied": run(example_config("tied_erf", quick), progress)}
    fig, (ax_error, ax_excess) = new_figure(2, height=4.4)
    for i, (name, dataset) in enumerate(runs.items()):
        plot_error_panel(ax_error, dataset, color=COLORS[name], pca=(i == 0))
        pca_K = dataset["pca_error"].sel(rank=dataset.sizes["unit"])
        sim_name = simulation_error_variable(dataset)[0]
        excess = dataset.assign(excess_theory=dataset["error_theory"] - pca_K)
        if sim_name in dataset:
            excess = excess.assign(excess_simulation=dataset[sim_name] - pca_K)
        plot_theory_and_simulation(ax_excess, excess, "excess", color=COLORS[name])
    colours = [Line2D([], [], color=c, lw=THEORY_LW, label=name) for name, c in COLORS.items()]
    key = style_key(runs["tied"], pca=True)
    legend_outside(ax_error, colours + key)
    ax_error.set_title("erf: tied weights stay above PCA", fontsize=9)
    legend_outside(ax_excess, colours + key[:-1])
    ax_excess.set_yscale("log")
    ax_excess.set_ylabel("ε − ε_PCA(K)")
    ax_excess.set_title("excess error over PCA of rank K", fontsize=9)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
