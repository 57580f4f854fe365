"""Figure 2: tied sigmoidal autoencoders fail, untied ones approach PCA.

erf autoencoders on two spikes (``examples/tied_erf.toml``), with tied weights
(v_k = √D w_k) and untied.  Left: the error, PCA levels dashed; right: the excess over
the PCA error of rank K, which keeps decaying (like t^(-2/3)) only for untied weights.
"""
from __future__ import annotations

from odesolve.workflow.plotting import new_figure, plot_error_panel, plot_theory_and_simulation, \
    simulation_label

from .common import example_config, main, run, save

NAME = "fig2_tied_vs_untied"


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Run the tied and untied erf autoencoders and draw the figure; returns the PNG path."""
    runs = {"untied": run(example_config("tied_erf", quick, **{"model.tied": False}), progress),
            "tied": run(example_config("tied_erf", quick), progress)}
    fig, (ax_error, ax_excess) = new_figure(2)
    for i, (name, dataset) in enumerate(runs.items()):
        color = f"C{i}"
        plot_error_panel(ax_error, dataset, color=color, label=f"{name} (theory)",
                         simulation_label_prefix=f"{name} SGD", pca=(i == 0))
        pca_K = dataset["pca_error"].sel(rank=dataset.sizes["unit"])
        excess = dataset.assign({f"excess_{kind}": dataset[f"error_{kind}"] - pca_K
                                 for kind in ("theory", "simulation") if f"error_{kind}" in dataset})
        plot_theory_and_simulation(ax_excess, excess, "excess", color=color, label=name,
                                   simulation_label=simulation_label(dataset, f"{name} SGD"))
    ax_error.legend(fontsize=7, loc="lower left")
    ax_error.set_title("erf: tied weights stay above PCA", fontsize=9)
    ax_excess.set_yscale("log")
    ax_excess.set_ylabel("ε − ε_PCA(K)")
    ax_excess.set_title("excess error over PCA of rank K", fontsize=9)
    return save(fig, out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
