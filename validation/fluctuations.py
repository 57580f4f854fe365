"""The leading finite-D correction against SGD: D × (SGD − theory) at late times.

For the README's two examples — linear, K = 2, spikes [1.5, 0.6] (the validation
settings of the O(η/D) offset) and erf, K = 3, spikes [1.5, 0.6, 0.25] (the main job,
``examples/sequential_pcs.toml``), bulk 0.05, η = 1, init 0.1 — each seed's SGD run
(``simulations.simulate``, exact error of its weights) is compared with the theory started
from the same weights (``bulk="finite"``) in three forms:

* ``D→∞``: the order-parameter ODE alone;
* ``bulk floor``: with the noise floor of the bulk decoder only (the part of
  ``finite_size=True`` that is not the fluctuation term);
* ``finite_size``: with the whole correction (floor + fluctuations of the tracked
  overlaps, :mod:`odesolve.fluctuations`).

The table gives mean ± standard error over seeds of D × (ε_SGD − ε_theory) (paired per
seed) at the late times.

Run: ``python -m validation.fluctuations [--quick]`` (full: D = 250, 500, 1000, 6 seeds;
8 min at load 4 on 2 cores); ``--example erf --Ds 250,500 --seeds 20 --times 100,200``
for more seeds on one example.
"""
from __future__ import annotations

import numpy as np

import argparse

from validation.common import md_table, stopwatch

LR, INIT, BULK = 1.0, 0.1, 0.05
#: (label, activation, spikes, late times)
EXAMPLES = [("linear, K=2", "linear", [1.5, 0.6], [20.0, 40.0, 60.0]),
            ("erf, K=3 (sequential_pcs)", "erf", [1.5, 0.6, 0.25], [50.0, 100.0, 200.0])]
#: numbers of the last :func:`main` call (for the tests)
RESULTS: dict = {}


def settings(quick: bool) -> dict:
    if quick:
        return dict(Ds=[100], seeds=[0, 1], examples=EXAMPLES[:1])
    return dict(Ds=[250, 500, 1000], seeds=list(range(6)), examples=EXAMPLES)


def run_point(activation, spikes, D, seed, times):
    """D × (SGD − theory) at ``times`` for the three theories of the module doc."""
    from simulations import simulate

    from odesolve import Autoencoder, State, integrate, spiked_covariance
    model = Autoencoder(K=len(spikes), activation=activation)
    spec = spiked_covariance(D, spikes, BULK)
    times = np.asarray(times)
    sim = simulate(model, spec, LR, times[-1], seed=seed, scale=INIT, times=times, n_test=1)
    sgd = np.asarray(sim.theory_error(), dtype=float)
    state = State.random(model, spec, INIT, seed=seed)
    options = dict(t_eval=times, bulk="finite", rtol=1e-9, atol=1e-11)
    plain = integrate(state, LR, times[-1], **options).error
    full = integrate(state, LR, times[-1], finite_size=True, **options)
    floor = full.error - full.fluctuations.error / D
    return {"D→∞": D * (sgd - plain), "bulk floor": D * (sgd - floor),
            "finite_size": D * (sgd - full.error)}


def main(quick: bool = False, example: str | None = None, Ds=None, seeds: int | None = None,
         times=None) -> str:
    """Markdown table; ``example`` (activation), ``Ds``, ``seeds`` (a count) and ``times``
    narrow the full settings."""
    cfg = settings(quick)
    if example is not None:
        cfg["examples"] = [e for e in cfg["examples"] if e[1] == example]
    if times is not None:
        cfg["examples"] = [(label, act, spikes, list(times))
                           for label, act, spikes, _ in cfg["examples"]]
    cfg["Ds"] = cfg["Ds"] if Ds is None else list(Ds)
    cfg["seeds"] = cfg["seeds"] if seeds is None else list(range(seeds))
    rows = []
    with stopwatch() as elapsed:
        for label, activation, spikes, times in cfg["examples"]:
            for D in cfg["Ds"]:
                runs = [run_point(activation, spikes, D, s, times) for s in cfg["seeds"]]
                for i, t in enumerate(times):
                    row = [label, D, f"{t:g}"]
                    for key in ("D→∞", "bulk floor", "finite_size"):
                        d = np.array([r[key][i] for r in runs])
                        mean, se = d.mean(), d.std(ddof=1) / np.sqrt(len(d))
                        RESULTS[(activation, D, t, key)] = (mean, se)
                        row.append(f"{mean:.4f} ± {se:.4f}")
                    rows.append(row)
    headers = ["example", "D", "t", "D→∞", "bulk floor", "finite_size"]
    return ("## The finite-D correction: D × (SGD − theory), mean ± s.e. over "
            f"{len(cfg['seeds'])} seeds\n\n" + md_table(headers, rows)
            + f"\n\n({elapsed():.0f} s)\n")


def _numbers(kind):
    return lambda text: [kind(x) for x in text.split(",")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--example", choices=[e[1] for e in EXAMPLES])
    parser.add_argument("--Ds", type=_numbers(int), help="e.g. 250,500")
    parser.add_argument("--seeds", type=int, help="number of seeds (0, 1, ...)")
    parser.add_argument("--times", type=_numbers(float), help="e.g. 100,200")
    args = parser.parse_args()
    print(main(args.quick, args.example, args.Ds, args.seeds, args.times))
