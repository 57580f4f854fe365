"""Figure 3: ReLU autoencoders with and without a trained encoder bias.

``examples/relu_bias.toml`` (trained bias) against the same network without a bias.
Left: the error, PCA levels dashed; right: the trained biases m_k(t), in the colour of
the trained-bias run, one line style per unit.  Whether the biased state is reached
depends on the initial weights (docs/theory.md): these seeds reach it.
"""
from __future__ import annotations

from matplotlib.lines import Line2D

from odesolve.workflow.plotting import (THEORY_LW, legend_outside, new_figure, plot_bias_panel,
                               plot_error_panel, style_key)

from .common import example_config, main, run, save

NAME = "fig3_relu_bias"
COLORS = {"no bias": "C0", "trained bias": "C1"}


def figure(quick: bool = False, *, progress: bool = False):
    """Run ReLU autoencoders with and without bias and draw the figure; returns the Figure."""
    runs = {"no bias": run(example_config("relu_bias", quick, **{"model.bias": "none"}), progress),
            "trained bias": run(example_config("relu_bias", quick), progress)}
    fig, (ax_error, ax_bias) = new_figure(2, height=4.4)
    for i, (name, dataset) in enumerate(runs.items()):
        plot_error_panel(ax_error, dataset, color=COLORS[name], pca=(i == 0))
    trained = runs["trained bias"]
    legend_outside(ax_error, [Line2D([], [], color=c, lw=THEORY_LW, label=name)
                              for name, c in COLORS.items()]
                   + style_key(trained, pca=True))
    ax_error.set_title("ReLU: error with and without a trained bias", fontsize=9)
    plot_bias_panel(ax_bias, trained, color=COLORS["trained bias"])
    ax_bias.set_title("trained biases (trained-bias run)", fontsize=9)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
