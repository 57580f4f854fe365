"""Figure 5: real images, theory on their covariance (all modes) vs SGD on the images.

``examples/digits.toml``: scikit-learn's 8×8 digits (D = 64).  The theory integrates
one equation per eigen-mode of the empirical covariance; the simulation trains on the
images themselves (not on Gaussian samples).  Left: the error, PCA levels dashed; right:
the spectrum of the covariance, the K learnt modes highlighted.
"""
from __future__ import annotations

import numpy as np

from odesolve.config import build_problem
from odesolve.plotting import new_figure, plot_error_panel

from figures.common import example_config, main, run, save

NAME = "fig5_image_data"


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Run ``examples/digits.toml`` and draw the figure; returns the PNG path."""
    config = example_config("digits", quick)
    dataset = run(config, progress)
    spectrum = build_problem(config).spectrum
    fig, (ax_error, ax_spectrum) = new_figure(2)
    plot_error_panel(ax_error, dataset, color="C0", label="theory (all modes)",
                     simulation_label_prefix="SGD on the images")
    ax_error.legend(fontsize=7, loc="lower left")
    ax_error.set_title(f"{config.data.dataset}: ODE on the covariance vs SGD", fontsize=9)
    s = np.sort(spectrum.eigenvalues)[::-1] / spectrum.D
    K = config.model.K
    ax_spectrum.semilogy(np.arange(1, len(s) + 1), s, ".", color="0.5", ms=4)
    ax_spectrum.semilogy(np.arange(1, K + 1), s[:K], "o", color="C0", mfc="none",
                         label=f"the K = {K} leading modes")
    ax_spectrum.set_ylim(bottom=s[0] * 1e-8)  # constant pixels give zero modes: off the plot
    ax_spectrum.set_xlabel("mode")
    ax_spectrum.set_ylabel("eigenvalue / D")
    ax_spectrum.set_title("spectrum of the data covariance", fontsize=9)
    ax_spectrum.legend(fontsize=7)
    return save(fig, out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
