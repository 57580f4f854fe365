"""Finite-size scaling: the D → ∞ theory against the SGD simulator at D = 250 … 2000.

For each model, dimension and seed the simulator (``simulations.simulate``) runs online
SGD from the initial weights of that seed, and the theory is integrated from exactly
the same weights (``State.random(model, spectrum, scale, seed)``), with both bulk
treatments: ``bulk="finite"`` (the exact finite-D closure) and ``bulk="limit"`` (strict
D → ∞).  The simulated error is the exact error of the simulated weights
(``SimulationResult.theory_error()``), so no test-set noise enters.

With d_s(t) = ε_SGD,s(t) − ε_ODE,s(t) for seed s, reported per (model, D):

* ``max |ODE − SGD mean|``: max over the trajectory of |mean_s d_s(t)| (absolute);
* ``in SE``: the same in units of the standard error of that mean over seeds
  (paired: the theory is started from each seed's weights, so initial-condition
  scatter cancels); values of a few are what chance gives for a max over many times;
* ``per-seed rms``: max over t of sqrt(mean_s d_s(t)²), the typical discrepancy of
  one run.

SGD fluctuations of the order parameters are O(D^(-1/2)), so both discrepancies should
fall like D^(-1/2): the fitted exponents are tabulated and plotted
(``validation/finite_size.png``).

Run: ``python validation/finite_size.py [--quick]``.
"""
from __future__ import annotations

import numpy as np

try:
    from validation.common import (HERE, fmt, md_table, power_law_fit, save_figure, script_main,
                                   stopwatch)
except ImportError:                      # run as a script
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from validation.common import (HERE, fmt, md_table, power_law_fit, save_figure, script_main,
                                   stopwatch)

LR = 1.0
INIT = 0.1
BULK = 0.05
FIGURE = HERE / "finite_size.png"

#: (label, model keyword arguments, spikes)
MODELS = [
    ("erf untied, K=3", dict(K=3, activation="erf"), [1.5, 0.6, 0.25]),
    ("erf tied, K=2", dict(K=2, activation="erf", tied=True), [1.5, 0.6]),
    ("ReLU + trained bias, K=2", dict(K=2, activation="relu", bias="trained"), [1.5, 0.6]),
    ("linear, K=2", dict(K=2, activation="linear"), [1.5, 0.6]),
]


def settings(quick: bool) -> dict:
    if quick:
        return dict(models=[MODELS[3]], Ds=[100, 400], seeds=[0, 1, 2, 3], t_max=10.0,
                    n_times=16)
    return dict(models=MODELS, Ds=[250, 500, 1000, 2000], seeds=list(range(10)), t_max=60.0,
                n_times=45)


def output_times(D: int, t_max: float, n: int) -> np.ndarray:
    """0 and log-spaced times from 0.05 to t_max, rounded to whole SGD steps (multiples of 1/D)."""
    t = np.unique(np.round(np.geomspace(0.05, t_max, n) * D)) / D
    return np.concatenate([[0.0], t[t > 0]])


def run_point(model, spikes, D, seed, t_max, n_times):
    """(times, simulated error, ODE error with bulk finite, ODE error with bulk limit)."""
    from simulations import simulate

    from odesolve import State, integrate, spiked_covariance
    spec = spiked_covariance(D, spikes, BULK)
    res = simulate(model, spec, LR, t_max, seed=seed, scale=INIT,
                   times=output_times(D, t_max, n_times), n_test=200)
    t = np.asarray(res.t, dtype=float)
    state = State.random(model, spec, scale=INIT, seed=seed)
    ode = {bulk: integrate(state, LR, (0.0, t[-1]), t_eval=t, method="LSODA", rtol=1e-9,
                           atol=1e-11, bulk=bulk).error for bulk in ("finite", "limit")}
    return t, np.asarray(res.theory_error(), dtype=float), ode["finite"], ode["limit"]


def discrepancy(sim, ode):
    """(max |mean d|, max |mean d|/SE, max per-seed rms, max SE) for d = sim − ode, shape
    (seeds, t); maxima over the trajectory."""
    d = sim - ode
    mean = d.mean(0)
    se = d.std(0, ddof=1) / np.sqrt(d.shape[0])
    moving = se > 1e-14 * np.maximum(np.abs(ode).max(), 1.0)   # t = 0 is exact: skip it
    z = np.abs(mean[moving]) / se[moving]
    return (float(np.max(np.abs(mean))), float(np.max(z)), float(np.max(np.sqrt((d**2).mean(0)))),
            float(np.max(se)))


def main(quick: bool = False, figure=None) -> str:
    """Markdown section; also writes the log-log figure to ``figure`` (default: full runs
    write ``validation/finite_size.png``, quick runs none)."""
    from odesolve import Autoencoder
    cfg = settings(quick)
    figure = (None if quick else FIGURE) if figure is None else figure
    results = {}
    with stopwatch() as elapsed:
        for label, kwargs, spikes in cfg["models"]:
            model = Autoencoder(**kwargs)
            for D in cfg["Ds"]:
                runs = [run_point(model, spikes, D, seed, cfg["t_max"], cfg["n_times"])
                        for seed in cfg["seeds"]]
                sim = np.array([r[1] for r in runs])
                fin = np.array([r[2] for r in runs])
                lim = np.array([r[3] for r in runs])
                results[label, D] = dict(finite=discrepancy(sim, fin), limit=discrepancy(sim, lim),
                                         final=float(fin[:, -1].mean()))
        rows = []
        for (label, D), r in results.items():
            rows.append([label, D, len(cfg["seeds"]), r["final"], *r["finite"][:2],
                         r["finite"][3], r["finite"][2], *r["limit"][:2]])
        fits, fit_rows = {}, []
        for label, _, _ in cfg["models"]:
            Ds = np.array(cfg["Ds"], dtype=float)
            row = [label]
            for key, idx in (("finite", 0), ("limit", 0), ("finite", 2)):
                y = np.array([results[label, D][key][idx] for D in cfg["Ds"]])
                p, c, se = power_law_fit(Ds, y)
                fits[label, key, idx] = (p, c)
                row.append(f"{p:+.2f} ± {fmt(se, 2)}" if np.isfinite(se) else f"{p:+.2f}")
            fit_rows.append(row)
        if figure is not None:
            _plot(cfg, results, fits, figure)
    heads = ["model", "D", "seeds", "ε(t_max)", "max abs(ODE − SGD mean), finite",
             "in SE, finite", "max SE, finite", "per-seed rms, finite", "max abs(ODE − SGD mean), limit",
             "in SE, limit"]
    text = [
        "## Finite-size scaling: theory vs SGD simulation",
        "",
        f"Spikes as listed, bulk {BULK}, η = {LR}, init {INIT}, t from 0 to {cfg['t_max']:g} "
        f"({cfg['n_times']} log-spaced times), seeds {cfg['seeds'][0]}…{cfg['seeds'][-1]}; "
        "the theory starts from each seed's initial weights; *finite* / *limit* = the "
        "theory's bulk treatment.  Simulated error = exact error of the simulated weights.",
        "",
        md_table(heads, rows),
        "",
        "Fitted exponents p of discrepancy ∝ D^p (least squares in log-log over D = "
        + ", ".join(map(str, cfg["Ds"])) + "; ± standard error of the slope); "
        "SGD noise predicts p = −1/2.",
        "",
        md_table(["model", "p of max abs(mean), finite", "p of max abs(mean), limit",
                  "p of per-seed rms, finite"], fit_rows),
        "",
    ]
    if figure is not None:
        text += [f"![finite-size scaling]({figure.name if hasattr(figure, 'name') else figure})",
                 ""]
    text.append(f"Run time {elapsed():.0f} s.")
    return "\n".join(text)


def _plot(cfg, results, fits, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ds = np.array(cfg["Ds"], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, idx, title in ((axes[0], 0, "max |ODE − SGD mean| (bulk finite)"),
                           (axes[1], 2, "per-seed rms discrepancy (bulk finite)")):
        for i, (label, _, _) in enumerate(cfg["models"]):
            y = np.array([results[label, D]["finite"][idx] for D in cfg["Ds"]])
            p, c = fits[label, "finite", idx]
            ax.loglog(Ds, y, "o", color=f"C{i}")
            ax.loglog(Ds, np.exp(c) * Ds**p, "-", color=f"C{i}", label=f"{label}: slope {p:+.2f}")
        ref = np.array([results[lab, cfg["Ds"][0]]["finite"][idx] for lab, _, _ in cfg["models"]])
        ax.loglog(Ds, np.exp(np.mean(np.log(ref))) * (Ds / Ds[0]) ** -0.5, "k--", lw=0.8,
                  label="D^(-1/2)")
        ax.set_xlabel("D")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("discrepancy in ε")
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    script_main(main, __doc__.splitlines()[0])
