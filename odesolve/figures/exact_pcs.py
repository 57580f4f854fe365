"""Figure 4: truncated SGD and Sanger's rule learn the principal components themselves.

Linear autoencoders on three spikes.  Each panel shows the share of unit k's variance
along eigenvector τ (colour: τ, line style: k).  With vanilla SGD the units end up in a
rotation of the top eigenvectors (only their span is learnt); with truncated SGD
(``examples/truncated_sgd.toml``) and with Sanger's rule (``examples/sanger.toml``) unit
k aligns with eigenvector k.
"""
from __future__ import annotations

from odesolve.workflow.plotting import new_figure, plot_overlap_panel

from .common import example_config, main, run, save

NAME = "fig4_exact_pcs"


def figure(quick: bool = False, *, progress: bool = False):
    """Run vanilla SGD, truncated SGD and Sanger's rule and draw the figure; returns the Figure."""
    runs = {"vanilla SGD (learns the span)":
                run(example_config("truncated_sgd", quick, **{"train.rule": "sgd"}), progress),
            "truncated SGD": run(example_config("truncated_sgd", quick), progress),
            "Sanger's rule (tied)": run(example_config("sanger", quick), progress)}
    fig, axes = new_figure(len(runs), sharey=True, height=4.2)
    for ax, (name, dataset) in zip(axes, runs.items()):
        seed = dataset["seed"].values[0]
        plot_overlap_panel(ax, dataset, legend=ax is axes[0], seed=seed)
        ax.set_title(f"{name}, seed {seed}", fontsize=9)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
