"""Figure 7: training protocols and the finite-D correction, theory against SGD.

Left: ``examples/protocols.toml`` (power-law schedule, separate rates, weight decay,
mini-batches of 2) against the same run at a constant learning rate.  Middle: the final
error against the weight decay κ = κ_w = κ_v, for a linear and an erf autoencoder: the
integrated theory (lines), SGD (markers, mean of the seeds) and, for the linear model, the
closed form ``ε_PCA(K) + Σ_k κ²/(2 s_k)`` (docs/theory.md §8).  Right: the linear
autoencoder's late-time offset D × (SGD − theory) at D = 250, 500, 1000, against the
D → ∞ theory and with ``finite_size=True`` (docs/theory.md §9).
"""
from __future__ import annotations

import numpy as np

from odesolve import Autoencoder, State, generalisation_error, integrate, spiked_covariance
from odesolve.protocols import Protocol
from odesolve.workflow.config import parse_config
from odesolve.workflow.plotting import legend_outside, new_figure, plot_error_panel
from simulations import simulate

from .common import example_config, main, run, save

NAME = "fig7_protocols"


def _constant_rate(config):
    """The same configuration without its ``[schedule]`` (a constant learning rate)."""
    table = config.to_dict()
    table.pop("schedule")
    return parse_config(table, config.source)


def decay_sweep(D: int, kappas, seeds, t_max: float, activation: str, spikes=(2.0, 1.0),
                bulk: float = 0.05, lr: float = 1.0):
    """Final error against κ = κ_w = κ_v: theory (per κ) and SGD (seeds × κ).

    Returns
    -------
    theory : ndarray, shape (len(kappas),)
    sgd : ndarray, shape (len(seeds), len(kappas))
        Exact errors of the simulated weights at ``t_max``.
    """
    spec = spiked_covariance(D, list(spikes), bulk)
    model = Autoencoder(K=len(spikes), activation=activation)
    theory = np.empty(len(kappas))
    sgd = np.empty((len(seeds), len(kappas)))
    for j, kappa in enumerate(kappas):
        protocol = Protocol(encoder_decay=kappa, decoder_decay=kappa)
        theory[j] = integrate(State.random(model, spec, 0.1, seed=seeds[0]), lr, t_max,
                              n_points=5, protocol=protocol).error[-1]
        for i, seed in enumerate(seeds):
            sim = simulate(model, spec, lr, t_max, seed=seed, times=[0.0, t_max], n_test=1,
                           protocol=protocol)
            sgd[i, j] = generalisation_error(model, sim.order_parameters(-1))
    return spec, theory, sgd


def finite_size_offsets(Ds, seeds, t_max: float, spikes=(1.5, 0.6), bulk: float = 0.05,
                        lr: float = 1.0):
    """D × (SGD − theory) of a linear autoencoder, without and with the correction.

    Returns
    -------
    times : ndarray
    offsets : dict D -> (plain, corrected), each of shape (len(seeds), len(times))
    """
    model = Autoencoder(K=len(spikes), activation="linear")
    times = np.linspace(t_max / 3, t_max, 5)   # after learning: the converged offset
    offsets = {}
    for D in Ds:
        spec = spiked_covariance(D, list(spikes), bulk)
        grid = np.round(times * D) / D
        plain, corrected = [], []
        for seed in seeds:
            sim = simulate(model, spec, lr, t_max, seed=seed, times=grid, n_test=1)
            sgd = np.array([generalisation_error(model, sim.order_parameters(i))
                            for i in range(len(grid))])
            state = State.random(model, spec, 0.1, seed=seed)
            for out, fs in ((plain, False), (corrected, True)):
                theory = integrate(state, lr, t_max, t_eval=grid, bulk="finite", rtol=1e-9,
                                   atol=1e-11, finite_size=fs)
                out.append(D * (sgd - theory.error))
        offsets[D] = (np.array(plain), np.array(corrected))
    return times, offsets


def figure(quick: bool = False, *, progress: bool = False):
    """Run the protocol example, the decay sweep and the finite-D runs; returns the Figure."""
    scheduled = example_config("protocols", quick)
    runs = {"power-law schedule": run(scheduled, progress),
            "constant rate": run(_constant_rate(scheduled), progress)}
    fig, (ax_schedule, ax_decay, ax_finite) = new_figure(3, height=4.6)
    for i, (name, dataset) in enumerate(runs.items()):
        plot_error_panel(ax_schedule, dataset, color=f"C{i}", label=f"{name} (theory)",
                         simulation_label_prefix=f"{name} SGD", pca=(i == 0))
    legend_outside(ax_schedule)
    ax_schedule.set_title("η(t) = η/(1 + t/τ), rates, decay, B = 2", fontsize=9)

    D, seeds, t_max = (100, [0, 1], 60.0) if quick else (1000, [0, 1, 2], 150.0)
    kappas = np.linspace(0.0, 0.8, 5 if quick else 9)
    for i, activation in enumerate(("linear", "erf")):
        spec, theory, sgd = decay_sweep(D, kappas, seeds, t_max, activation)
        color = f"C{i + 2}"
        ax_decay.plot(kappas, theory, color=color, label=f"{activation}: theory")
        ax_decay.errorbar(kappas, sgd.mean(0), yerr=sgd.std(0), fmt="o", ms=3, color=color,
                          label=f"{activation}: SGD ({len(seeds)} seeds)")
    fine = np.linspace(0.0, 0.8, 81)
    closed = spec.pca_error(2) + np.sum(fine[:, None] ** 2 / (2 * np.array([2.0, 1.0])), axis=1)
    ax_decay.plot(fine, closed, "k--", lw=0.8, label="linear: closed form")
    ax_decay.set_xlabel("weight decay κ_w = κ_v")
    ax_decay.set_ylabel(f"error at t = {t_max:g}")
    ax_decay.set_title(f"weight decay raises the end error (D = {D})", fontsize=9)
    legend_outside(ax_decay)

    Ds, seeds, t_max = ((100, 200), [0, 1, 2], 30.0) if quick else ((250, 500, 1000), range(6), 60.0)
    times, offsets = finite_size_offsets(Ds, list(seeds), t_max)
    for i, (D, (plain, corrected)) in enumerate(offsets.items()):
        for data, marker, fill, what in ((plain, "o", "none", "D → ∞ theory"),
                                         (corrected, "s", None, "finite_size")):
            ax_finite.errorbar(times + 0.01 * t_max * i, data.mean(0),
                               yerr=data.std(0, ddof=1) / np.sqrt(len(data)), fmt=marker,
                               ms=4, color=f"C{i}", mfc=fill, label=f"D = {D}, {what}")
    ax_finite.axhline(0.0, color="0.6", lw=0.6)
    ax_finite.set_xlabel("time t (samples / D)")
    ax_finite.set_ylabel("D × (ε_SGD − ε_theory)")
    ax_finite.set_title("linear: SGD's noise floor, O(η/D)", fontsize=9)
    legend_outside(ax_finite, ncol=2)
    return fig


def make_figure(out_dir, quick: bool = False, *, progress: bool = False):
    """Draw :func:`figure` into ``out_dir``; returns the PNG path."""
    return save(figure(quick, progress=progress), out_dir, NAME)


if __name__ == "__main__":
    main(make_figure, __doc__.splitlines()[0])
