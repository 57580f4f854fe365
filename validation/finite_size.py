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
  one run, and the rms over the whole trajectory;
* the offset at t_max times D (the O(η/D) noise floor of SGD, outside the D → ∞ theory).

SGD fluctuations of the order parameters are O(D^(-1/2)), so the discrepancies should
fall like D^(-1/2): the fitted exponents are tabulated and plotted
(``validation/finite_size.png``); the raw curves go to ``validation/finite_size.npz``.

Run: ``python -m validation.finite_size [--quick]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from validation.common import (HERE, atomic_write, fmt, md_table, power_law_fit, save_figure,
                               script_main, stopwatch)

LR = 1.0
INIT = 0.1
BULK = 0.05
FIGURE = HERE / "finite_size.png"
#: numbers of the last :func:`main` call (for the tests)
RESULTS: dict = {}

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
    return dict(models=MODELS, Ds=[250, 500, 1000, 2000], seeds=list(range(20)), t_max=60.0,
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
    start = res.state(0)                      # the simulation's own initial state: same draw
    if not (np.array_equal(start.Y, state.Y) and np.allclose(start.G, state.G, rtol=1e-12)):
        raise AssertionError(f"simulate(seed={seed}) and State.random(seed={seed}) start apart")
    ode = {bulk: integrate(state, LR, (0.0, t[-1]), t_eval=t, method="LSODA", rtol=1e-9,
                           atol=1e-11, bulk=bulk).error for bulk in ("finite", "limit")}
    return t, np.asarray(res.theory_error(), dtype=float), ode["finite"], ode["limit"]


def discrepancy(sim, ode) -> dict:
    """Statistics of d = sim − ode, shape (seeds, times); maxima are over the trajectory.

    ``max_mean``: max |mean_s d|; ``max_z``: max |mean_s d| / SE (times with SE > 0);
    ``max_se``: max SE; ``max_rms``: max sqrt(mean_s d²); ``traj_rms``: sqrt of the mean of
    d² over seeds and recording times; ``final``/``final_se``: mean_s d and its SE at t_max.
    """
    d = sim - ode
    n = d.shape[0]
    mean = d.mean(0)
    se = d.std(0, ddof=1) / np.sqrt(n)
    moving = se > 1e-14 * np.maximum(np.abs(ode).max(), 1.0)   # t = 0 is exact: skip it
    z = np.abs(mean[moving]) / se[moving]
    return dict(max_mean=float(np.max(np.abs(mean))), max_z=float(np.max(z)),
                max_se=float(np.max(se)), max_rms=float(np.max(np.sqrt((d**2).mean(0)))),
                traj_rms=float(np.sqrt(np.mean(d[:, 1:]**2))), final=float(mean[-1]),
                final_se=float(se[-1]))


#: (column, statistic, bulk mode) of the fitted exponents
FITTED = [("max abs(mean)", "max_mean", "finite"), ("max abs(mean), limit", "max_mean", "limit"),
          ("max per-seed rms", "max_rms", "finite"), ("trajectory rms", "traj_rms", "finite")]


def _key(label: str, D: int) -> str:
    """Prefix of a (model, D) point's arrays in the data file."""
    return f"{label.split(',')[0].replace(' ', '_').replace('+', '')}_D{D}"


def _same_config(stored, cfg) -> bool:
    return (list(stored["models"]) == [m[0] for m in cfg["models"]]
            and list(stored["Ds"]) == list(cfg["Ds"])
            and list(stored["seeds"]) == list(cfg["seeds"])
            and float(stored["t_max"]) == cfg["t_max"] and int(stored["n_times"]) == cfg["n_times"])


def main(quick: bool = False, figure=None, data=None, reuse: bool = False) -> str:
    """Markdown section; also writes the log-log figure to ``figure`` (default: full runs
    write ``validation/finite_size.png``, quick runs none) and the raw curves to ``data``
    (default: full runs write ``validation/finite_size.npz``).  With ``reuse``, the curves
    are read back from ``data`` when it holds a run of the same configuration (only the
    analysis is redone)."""
    from odesolve import Autoencoder
    cfg = settings(quick)
    figure = (None if quick else FIGURE) if figure is None else figure
    data = (None if quick else HERE / "finite_size.npz") if data is None else data
    stored = None
    if reuse and data is not None and Path(data).exists():
        with np.load(data) as f:
            stored = {k: f[k] for k in f.files}
        if "config_Ds" not in stored or not _same_config(
                {k[7:]: v for k, v in stored.items() if k.startswith("config_")}, cfg):
            stored = None
    results, raw = {}, {}
    with stopwatch() as elapsed:
        for label, kwargs, spikes in cfg["models"]:
            model = Autoencoder(**kwargs)
            for D in cfg["Ds"]:
                key = _key(label, D)
                if stored is not None:
                    t, sim = stored[f"{key}_t"], stored[f"{key}_sgd"]
                    fin, lim = stored[f"{key}_ode_finite"], stored[f"{key}_ode_limit"]
                else:
                    runs = [run_point(model, spikes, D, seed, cfg["t_max"], cfg["n_times"])
                            for seed in cfg["seeds"]]
                    t = runs[0][0]
                    sim = np.array([r[1] for r in runs])
                    fin = np.array([r[2] for r in runs])
                    lim = np.array([r[3] for r in runs])
                results[label, D] = dict(finite=discrepancy(sim, fin), limit=discrepancy(sim, lim),
                                         eps_final=float(fin[:, -1].mean()))
                raw.update({f"{key}_t": t, f"{key}_sgd": sim, f"{key}_ode_finite": fin,
                            f"{key}_ode_limit": lim})
        sim_seconds = float(stored["config_sim_seconds"]) if stored is not None and \
            "config_sim_seconds" in stored else (elapsed() if stored is None else float("nan"))
        raw.update(config_sim_seconds=np.array(sim_seconds))
        raw.update(config_models=np.array([m[0] for m in cfg["models"]]),
                   config_Ds=np.array(cfg["Ds"]), config_seeds=np.array(cfg["seeds"]),
                   config_t_max=np.array(cfg["t_max"]), config_n_times=np.array(cfg["n_times"]))
        rows = []
        for (label, D), r in results.items():
            f, l = r["finite"], r["limit"]
            rows.append([label, D, len(cfg["seeds"]), r["eps_final"], f["max_mean"], f["max_z"],
                         f["max_se"], f["max_rms"], f["traj_rms"],
                         f"{fmt(D * f['final'])} ± {fmt(D * f['final_se'], 2)}",
                         l["max_mean"], l["max_z"]])
        fits, fit_rows = {}, []
        Ds = np.array(cfg["Ds"], dtype=float)
        for label, _, _ in cfg["models"]:
            row = [label]
            for column, stat, bulk in FITTED:
                y = np.array([results[label, D][bulk][stat] for D in cfg["Ds"]])
                p, c, se = power_law_fit(Ds, y)
                fits[label, stat, bulk] = (p, c, se)
                row.append(f"{p:+.2f} ± {fmt(se, 2)}" if np.isfinite(se) else f"{p:+.2f}")
            fit_rows.append(row)
        if figure is not None:
            _plot(cfg, results, fits, figure)
        if data is not None:
            import io
            buf = io.BytesIO()
            np.savez_compressed(buf, **raw)
            atomic_write(data, buf.getvalue())
    RESULTS.clear()
    RESULTS.update(results=results, fits=fits, config=cfg)
    heads = ["model", "D", "seeds", "ε_ODE(t_max)", "max abs(mean d)", "in SE", "max SE",
             "max per-seed rms", "trajectory rms", "D × mean d(t_max)",
             "max abs(mean d), limit", "in SE, limit"]
    D_big = cfg["Ds"][-1]
    text = [
        "## Finite-size scaling: theory vs SGD simulation",
        "",
        f"**Summary.**  Finite size (ODE from each seed's own initial state, "
        f"{len(cfg['seeds'])} seeds), max |ODE − SGD mean| at D = {D_big} and exponent p of "
        "the trajectory-rms discrepancy ∝ D^p (expected −0.5): "
        + "; ".join(f"{lab.replace(', ', ' ')}: {fmt(results[lab, D_big]['finite']['max_mean'], 2)} "
                    f"({fmt(results[lab, D_big]['finite']['max_z'], 2)} SE), "
                    f"p = {fits[lab, 'traj_rms', 'finite'][0]:+.2f}"
                    for lab, _, _ in cfg["models"])
        + ".  See the assessment for the linear model's O(η/D) offset.",
        "",
        "Models and spikes: "
        + "; ".join(f"{label} on spikes {spikes}" for label, _, spikes in cfg["models"])
        + f"; bulk {BULK}, η = {LR}, init {INIT}, t from 0 to {cfg['t_max']:g} "
        f"({cfg['n_times']} log-spaced times), seeds {cfg['seeds'][0]}…{cfg['seeds'][-1]} "
        "per D.",
        "",
        "**How the ODE is started.**  For every seed the theory is integrated from *that "
        "seed's own initial weights* (`State.random(model, spectrum, scale, seed)`, "
        "identical to `simulate(..., seed).state(0)`: same draw), so d_s(t) = ε_SGD,s(t) − "
        "ε_ODE,s(t) is a paired difference and the initial-condition scatter cancels.  "
        "ε_SGD is the exact population error of the simulated weights "
        "(`SimulationResult.theory_error()`; no test-set noise).  Columns (maxima over the "
        "recorded times): *max abs(mean d)* = max_t |mean_s d_s(t)| = max |ODE − SGD mean| "
        "(absolute, in units of ε); *in SE* = max_t |mean_s d_s| / SE_t (SE_t = standard "
        "error of the mean over seeds; a max over ~45 correlated times of pure noise is "
        "typically 2–3); *max per-seed rms* = max_t sqrt(mean_s d_s²); *trajectory rms* = "
        "sqrt(mean over seeds and times of d²); *D × mean d(t_max)* = the final offset times D "
        "(± SE × D).  Theory with `bulk=\"finite\"` (exact finite-D closure of the bulk) "
        "unless marked *limit* (strict D → ∞ closure).",
        "",
        md_table(heads, rows),
        "",
        "Fitted exponents p of discrepancy ∝ D^p (least squares in log-log over D = "
        + ", ".join(map(str, cfg["Ds"])) + "; ± standard error of the slope); "
        "SGD fluctuations predict p = −1/2.",
        "",
        md_table(["model"] + ["p of " + column for column, _, _ in FITTED], fit_rows),
        "",
    ]
    text += _assessment(cfg, results, fits)
    if not quick:
        text += noise_floor_table()
    if figure is not None:
        text += [f"![finite-size scaling]({Path(figure).name})", ""]
    text.append(f"Run time {elapsed():.0f} s" + (" (analysis only: curves read back from "
                f"`{Path(data).name}`, written by an earlier full run whose simulations and "
                f"integrations took {sim_seconds:.0f} s)." if stored is not None else "."))
    return "\n".join(text)


def noise_floor_table(D: int = 500, lrs=(1.0, 0.5), seeds=range(10), eta_t: float = 60.0):
    """Linear K = 2: the converged offset D·(ε_SGD − ε_ODE) at two learning rates, same ηt."""
    from simulations import simulate

    from odesolve import Autoencoder, State, integrate, spiked_covariance
    model = Autoencoder(K=2, activation="linear")
    spec = spiked_covariance(D, [1.5, 0.6], BULK)
    rows = []
    for lr in lrs:
        t_max = eta_t / lr
        times = np.round(np.array([0.0, 0.75 * t_max, t_max]) * D) / D
        d = []
        for seed in seeds:
            res = simulate(model, spec, lr, t_max, seed=seed, scale=INIT, times=times, n_test=100)
            ode = integrate(State.random(model, spec, INIT, seed), lr, t_max, t_eval=times,
                            method="LSODA", rtol=1e-9, atol=1e-11, bulk="finite")
            d.append(res.theory_error()[1:] - ode.error[1:])
        d = D * np.array(d)
        se = d.std(0, ddof=1) / np.sqrt(len(d))
        rows.append([lr, len(d), f"{fmt(d[:, 0].mean())} ± {fmt(se[0], 2)}",
                     f"{fmt(d[:, 1].mean())} ± {fmt(se[1], 2)}",
                     f"{fmt(d[:, 1].mean() / lr)}"])
    return ["Check of the noise floor (linear, K = 2, D = " + f"{D}, seeds "
            f"{min(seeds)}…{max(seeds)}, the same ηt = {eta_t:g}): if the converged offset is "
            "the O(η/D) stationary noise of SGD, D × offset / η is the same at both rates.", "",
            md_table(["η", "seeds", "D × mean d at 0.75 t_max", "D × mean d at t_max",
                      "D × mean d(t_max) / η"], rows), ""]


def _assessment(cfg, results, fits, z_max=4.0) -> list[str]:
    """What the tables say, in words generated from the numbers."""
    lines = ["**Assessment** (generated from the numbers above).", ""]
    calm, biased = [], []
    for label, _, _ in cfg["models"]:
        zs = [results[label, D]["finite"]["max_z"] for D in cfg["Ds"]]
        (calm if max(zs) <= z_max else biased).append((label, zs))
    if calm:
        lines.append(f"* No systematic discrepancy resolved (max |mean d| ≤ {z_max:g} SE at every "
                     "D, which a max over the trajectory of pure noise reaches): "
                     + "; ".join(f"{lab} (max {max(zs):.2f} SE)" for lab, zs in calm) + ".")
    for label, zs in biased:
        offs = [results[label, D]["finite"]["final"] * D for D in cfg["Ds"]]
        errs = [results[label, D]["finite"]["final_se"] * D for D in cfg["Ds"]]
        spread = np.std(offs) / max(abs(np.mean(offs)), 1e-300)
        what = ("constant in D within "
                f"{100 * spread:.1f}%: a 1/D offset once learning has converged, the stationary "
                "noise floor of SGD at finite D (O(η/D), absent from the D → ∞ equations, "
                "which have no η² term; see the check below); it, not a fault of the "
                "equations, sets the max in SE units" if spread < 0.1 and min(abs(np.array(offs)) / np.array(errs)) > 5
                else "not constant in D: a systematic discrepancy that this run does not explain")
        lines.append(f"* {label}: max |mean d| up to {max(zs):.0f} SE.  D × mean d(t_max) = "
                     + ", ".join(f"{o:.4f} ± {e:.4f}" for o, e in zip(offs, errs))
                     + f" for D = {', '.join(map(str, cfg['Ds']))}: {what}.")
    ok, off = [], []
    for label, _, _ in cfg["models"]:
        for column, stat, bulk in FITTED:
            if bulk != "finite":
                continue
            p, _, se = fits[label, stat, bulk]
            (ok if abs(p + 0.5) <= 2 * se else off).append(f"{label} / {column}: {p:+.2f} ± "
                                                            f"{se:.2f}")
    lines.append(f"* Exponents compatible with −1/2 within 2 standard errors: {len(ok)} of "
                 f"{len(ok) + len(off)}" + (".  Not compatible: " + "; ".join(off) + "."
                                            if off else "."))
    lines.append("* The largest single-seed discrepancies sit at the steep drops of ε (a small "
                 "shift in the time of a plateau exit gives a large difference in ε) and at "
                 "late exits from long plateaus, whose timing is set by the O(D^(-1/2)) SGD "
                 "noise acting on a small unstable component; the raw curves are in the data "
                 "file.")
    return lines + [""]


def _plot(cfg, results, fits, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ds = np.array(cfg["Ds"], dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, stat, title in ((axes[0], "max_mean", "max_t |ODE − SGD mean|"),
                            (axes[1], "max_rms", "max_t per-seed rms discrepancy"),
                            (axes[2], "traj_rms", "trajectory rms discrepancy")):
        for i, (label, _, _) in enumerate(cfg["models"]):
            y = np.array([results[label, D]["finite"][stat] for D in cfg["Ds"]])
            p, c, _ = fits[label, stat, "finite"]
            ax.loglog(Ds, y, "o", color=f"C{i}")
            ax.loglog(Ds, np.exp(c) * Ds**p, "-", color=f"C{i}", label=f"{label}: slope {p:+.2f}")
        ref = np.array([results[lab, cfg["Ds"][0]]["finite"][stat] for lab, _, _ in cfg["models"]])
        ax.loglog(Ds, np.exp(np.mean(np.log(ref))) * (Ds / Ds[0]) ** -0.5, "k--", lw=0.8,
                  label="D^(-1/2)")
        ax.set_xticks(Ds, [str(int(D)) for D in Ds])
        ax.minorticks_off()
        ax.set_xlabel("D")
        ax.set_title(title + " (bulk finite)", fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("discrepancy in ε")
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    script_main(main, __doc__.splitlines()[0])
