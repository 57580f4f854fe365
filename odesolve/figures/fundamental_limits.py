"""Figure 6: fundamental limits of sign autoencoders in the proportional regime.

(a) MSE against the rate r = n/d for Gaussian data: the sign-autoencoder lower bound,
sign autoencoders trained by gradient descent at finite d, the explicit Haar-frame
minimiser, PCA (n real-valued units: not the same bit budget) and Shannon's D(R) at one
bit per sign unit.  (b) The same comparison on scikit-learn's 8×8 digits: the
water-filling *prediction for a Gaussian source* with the images' covariance (not a bound
for the images: encoders trained on the images beat it, docs/limits.md), encoders trained
by GD on that Gaussian risk and by SGD on the images, MSE measured on held-out images.
(c) Gradient descent: risk minus bound against iterations.  (d) Gap to the bound
against d at r = 2 for the Haar frame and for gradient descent.

Run ``python figures/fundamental_limits.py --out DIR [--quick]``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from odesolve import limits
from odesolve.workflow.plotting import legend_outside, save_figure

NAME = "fundamental_limits"

#: Sizes of the full figure and of ``quick=True`` (seconds, for the tests).
SETTINGS = {
    False: dict(d=100, trained_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0), steps=300,
                image_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0), image_steps=600,
                sgd_steps=2000, history_d=200, history_steps=300,
                haar_d=(50, 100, 200, 400, 800), gd_d=(50, 100, 200, 400)),
    True: dict(d=30, trained_rates=(0.5, 1.0, 2.0), steps=60,
               image_rates=(0.5, 2.0), image_steps=60, sgd_steps=100,
               history_d=40, history_steps=60, haar_d=(20, 40, 80), gd_d=(20, 40)),
}
GAP_RATE = 2.0
#: Resolution of the PNG (a large figure: a lower dpi than the others).
DPI = 130
#: Styles of the theory curves: sign-AE limit, PCA, Shannon.
CURVE_STYLES = [dict(color="C0", lw=2), dict(color="0.4", ls="--"), dict(color="C3", ls=":")]


def _rate_panel(ax, comparison: limits.RateComparison, styles: dict) -> None:
    for (label, values), style in zip(comparison.curves.items(), styles["curves"]):
        ax.plot(comparison.rates, values, label=label, **style)
    for (label, values), style in zip(comparison.trained.items(), styles["trained"]):
        ax.plot(comparison.trained_rates, values, ls="none", label=label, **style)
    ax.set_xlabel("rate r = n/d (bits per input coordinate for sign units)")
    ax.set_ylabel("MSE per coordinate")
    ax.set_ylim(0, 1.02)
    ax.set_title(comparison.title, fontsize=9)


def figure(quick: bool = False) -> Figure:
    """Compute every panel; returns the Figure."""
    s = SETTINGS[bool(quick)]
    rng = np.random.default_rng(2023)
    fig = Figure(figsize=(11, 10.5), layout="constrained")
    (ax_iso, ax_images), (ax_history, ax_gap) = fig.subplots(2, 2)

    # (a) isotropic Gaussian source
    rates = np.linspace(0.02, max(s["trained_rates"]), 300)
    iso = limits.compare_isotropic(rates, s["d"], rng, s["trained_rates"], s["steps"], lr=1.0)
    _rate_panel(ax_iso, iso, {"curves": CURVE_STYLES,
                              "trained": [dict(marker="o", color="C1", mfc="none")]})
    haar = [limits.optimal_risk(limits.tight_frame_encoder(s["d"], q, rng))
            for q in iso.trained_rates]
    ax_iso.plot(iso.trained_rates, haar, "x", color="C2",
                label=f"explicit minimiser (Haar frame, d = {s['d']})")
    legend_outside(ax_iso)

    # (b) real images
    images = limits.compare_image_data(np.linspace(0.02, max(s["image_rates"]), 200), rng,
                                       "digits", s["image_rates"], s["image_steps"],
                                       sgd_steps=s["sgd_steps"])
    _rate_panel(ax_images, images, {
        "curves": CURVE_STYLES,
        "trained": [dict(marker="o", color="C1", mfc="none"), dict(marker="s", color="C1"),
                    dict(marker="^", color="C4", mfc="none"), dict(marker="^", color="C4")]})
    legend_outside(ax_images)

    # (c) gradient descent against iterations
    for rate, color in [(0.5, "C0"), (GAP_RATE, "C1")]:
        for decoder, lr, ls in [("optimal", 1.0, "-"), ("joint", 0.1, "--")]:
            result = limits.train_population_gd(s["history_d"], rate, s["history_steps"], lr,
                                                rng, decoder=decoder)
            gap = np.maximum(result.risk_history - result.limit, 1e-16)
            ax_history.semilogy(result.history_steps, gap, color=color, ls=ls,
                                label=f"r = {rate:g}, decoder {decoder}, step {lr:g}")
    ax_history.set_xlabel("gradient-descent step")
    ax_history.set_ylabel("risk − lower bound")
    ax_history.set_title(f"GD on the population risk, d = {s['history_d']}", fontsize=9)
    legend_outside(ax_history, ncol=2)

    # (d) gap to the bound against d
    bound = limits.sign_risk_lower_bound(GAP_RATE)
    haar_gap = [limits.optimal_risk(limits.tight_frame_encoder(d, GAP_RATE, rng)) - bound
                for d in s["haar_d"]]
    gd_gap = [limits.train_population_gd(d, GAP_RATE, s["steps"], 1.0, rng).gap
              for d in s["gd_d"]]
    ax_gap.loglog(s["haar_d"], haar_gap, "x-", color="C2", label="Haar tight frame")
    ax_gap.loglog(s["gd_d"], gd_gap, "o-", color="C1", mfc="none",
                  label=f"gradient descent ({s['steps']} steps)")
    d_line = np.array([min(s["haar_d"]), max(s["haar_d"])], dtype=float)
    ax_gap.loglog(d_line, 0.14 / d_line, ":", color="0.4", label="0.14 / d")
    ax_gap.set_xticks(s["haar_d"], [str(d) for d in s["haar_d"]])
    ax_gap.xaxis.set_minor_formatter(NullFormatter())
    ax_gap.set_xlabel("input dimension d")
    ax_gap.set_ylabel("risk − lower bound")
    ax_gap.set_title(f"finite-d gap at r = {GAP_RATE:g}", fontsize=9)
    legend_outside(ax_gap)
    return fig


def make_figure(out_dir, quick: bool = False) -> Path:
    """Compute every panel and write ``out_dir/fundamental_limits.png``; returns the path."""
    return save_figure(figure(quick), Path(out_dir) / f"{NAME}.png", dpi=DPI)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/figures"),
                        help="output directory (default: results/figures)")
    parser.add_argument("--quick", action="store_true", help="reduced sizes (seconds)")
    args = parser.parse_args()
    start = time.perf_counter()
    path = make_figure(args.out, quick=args.quick)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
