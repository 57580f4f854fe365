"""Figure 5: real images, theory on their covariance (all modes) vs SGD on the images.

``examples/digits.toml`` (scikit-learn's 8×8 digits, D = 64) and
``examples/photo_patches.toml`` (32×32 grayscale patches of scikit-image's bundled
photographs, D = 1024).  The theory integrates one equation per eigen-mode of the
empirical covariance; the simulation trains on the images themselves (not on Gaussian
samples), and its markers are the Monte-Carlo error on held-out images.  Left and
middle: the errors, PCA levels dashed; right: the two spectra, the K learnt modes
highlighted.
"""
from __future__ import annotations

import numpy as np

from odesolve.workflow.problem import build_problem
from odesolve.workflow.plotting import legend_outside, new_figure, plot_error_panel, style_key

from .common import example_config, main, run, save

NAME = "fig5_image_data"
#: (example, overrides of ``quick`` runs): patches shrink to 16×16 (D = 256) in the tests
EXAMPLES = (("digits", {}), ("photo_patches", {"data.size": 16}))


def figure(quick: bool = False, *, progress: bool = False):
    """Run the two image examples and draw the figure; returns the Figure."""
    fig, axes = new_figure(3, height=4.2)
    ax_spectrum = axes[-1]
    for i, (ax_error, (name, quick_overrides)) in enumerate(zip(axes, EXAMPLES)):
        config = example_config(name, quick, **(quick_overrides if quick else {}))
        dataset = run(config, progress)
        spectrum = build_problem(config).spectrum
        plot_error_panel(ax_error, dataset, color=f"C{i}")
        legend_outside(ax_error, style_key(dataset, pca=True))
        ax_error.set_title(f"{config.data.dataset}: all-modes ODE vs SGD", fontsize=9)
        s = np.sort(spectrum.eigenvalues)[::-1] / spectrum.D
        K = config.model.K
        ax_spectrum.loglog(np.arange(1, len(s) + 1), s, ".", color=f"C{i}", ms=3, alpha=0.5,
                           label=f"{config.data.dataset} (D = {spectrum.D})")
        ax_spectrum.loglog(np.arange(1, K + 1), s[:K], "o", color=f"C{i}", mfc="none",
                           label=f"the K = {K} learnt modes")
        bottom = min(ax_spectrum.get_ylim()[0], s[0] * 1e-8) if i else s[0] * 1e-8
        ax_spectrum.set_ylim(bottom=max(bottom, 1e-10))  # constant pixels: zero modes off the plot
    ax_spectrum.set_xlabel("mode")
    ax_spectrum.set_ylabel("eigenvalue / D")
    ax_spectrum.set_title("spectra of the two data sets", fontsize=9)
    legend_outside(ax_spectrum)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
