"""Figure 3: ReLU autoencoders with and without a trained encoder bias.

``examples/relu_bias.toml`` (trained bias) against the same network without a bias.
Left: the error, PCA levels dashed; right: the trained biases m_k(t).
"""
from __future__ import annotations

from odesolve.workflow.plotting import new_figure, plot_error_panel, plot_theory_and_simulation

from .common import example_config, main, run, save

NAME = "fig3_relu_bias"


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Run ReLU autoencoders with and without bias and draw the figure; returns the PNG path."""
    runs = {"no bias": run(example_config("relu_bias", quick, **{"model.bias": "none"}), progress),
            "trained bias": run(example_config("relu_bias", quick), progress)}
    fig, (ax_error, ax_bias) = new_figure(2)
    for i, (name, dataset) in enumerate(runs.items()):
        plot_error_panel(ax_error, dataset, color=f"C{i}", label=f"{name} (theory)",
                         simulation_label_prefix=f"{name} SGD", pca=(i == 0))
    ax_error.legend(fontsize=7, loc="lower left")
    ax_error.set_title("ReLU: the bias improves the reconstruction", fontsize=9)
    trained = runs["trained bias"]
    for k in trained["unit"].values:
        plot_theory_and_simulation(ax_bias, trained, "m", select={"unit": k}, color=f"C{k + 2}",
                                   label=f"unit {k + 1}")
    ax_bias.axhline(0.0, color="0.6", lw=0.6)
    ax_bias.set_ylabel("encoder bias m_k")
    ax_bias.set_title("trained biases", fontsize=9)
    ax_bias.legend(fontsize=7)
    return save(fig, out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
