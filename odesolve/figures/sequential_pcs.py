"""Figure 1: an erf autoencoder learns the principal components one after the other.

Untied weights, vanilla SGD, three spikes (``examples/sequential_pcs.toml``).  Left: the
error drops in steps towards the PCA errors of rank 1, 2, 3 (dashed), the exit of each
plateau marked (dotted); right: which spike each unit aligns with.
"""
from __future__ import annotations

from odesolve.workflow.plotting import (EXIT_STYLE, legend_outside, new_figure, plot_error_panel,
                               plot_overlap_panel, style_key)

from .common import example_config, main, run, save

NAME = "fig1_sequential_pcs"


def figure(quick: bool = False, *, progress: bool = False):
    """Run ``examples/sequential_pcs.toml`` and draw the figure; returns the Figure."""
    dataset = run(example_config("sequential_pcs", quick), progress)
    fig, (ax_error, ax_overlap) = new_figure(2, height=4.4)
    plot_error_panel(ax_error, dataset, color="C0")
    for t in dataset["learning_time_theory"].mean("seed").values:
        ax_error.axvline(t, **EXIT_STYLE)
    legend_outside(ax_error, style_key(dataset, pca=True, exits=True))
    ax_error.set_title("error: one step per principal component", fontsize=9)
    seed = dataset["seed"].values[0]
    plot_overlap_panel(ax_overlap, dataset, seed=seed)
    ax_overlap.set_title(f"units align with the spikes in turn (seed {seed})", fontsize=9)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
