"""The solvers of large states against each other: cost and accuracy on the same flows,
in one run.

Run: ``python -m benchmarks.bench_solvers [--quick]``.  Each row integrates one warm
(compiled) flow through :func:`odesolve.integrate` (plateau-exit events included) with
RK45 at ``rtol`` 1e-7 (the default; ``auto``'s choice above 400 variables until CVODE),
RKC at 1e-8, CVODE (``auto``'s choice above 400 variables now) at 1e-7 and 1e-8, and
LSODA at 1e-7 where the state has at most 400 variables (``auto``'s choice there), and
measures each against DOP853 at ``rtol`` 1e-10 (1e-11 for the small cases): right-hand-side
evaluations (for CVODE including its GMRES products), wall time (one run, one BLAS
thread) and the largest deviation of the generalisation error on 100 log-spaced times.
Erf, spikes 1.5·0.7^k, bulk 0.05, init 0.1 unless stated, seed 0, η = 1.  The machine
load (1-minute load average before and after) is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from odesolve import Autoencoder, State, compile_model, integrate, spiked_covariance
from odesolve.integrator import AUTO_LSODA_MAX_SIZE
from odesolve.integrator.grid import default_atol, time_grid
from odesolve.testing.tables import machine, md_table

#: (label, K, spikes, D, t_max, all modes, tied, reference rtol, initial scale)
CASES = [
    ("K = 3, 3 spikes, init 1e-8 (long plateaus), t = 300", 3, 3, 1000, 300, False, False,
     1e-11, 1e-8),
    ("K = 8, 8 spikes, t = 10³", 8, 8, 1000, 1e3, False, False, 1e-11),
    ("K = 8 tied, 8 spikes, t = 10³", 8, 8, 1000, 1e3, False, True, 1e-11),
    ("K = 24, 24 spikes, t = 10³", 24, 24, 1000, 1e3, False, False, 1e-11),
    ("K = 24 tied, 24 spikes, t = 10³", 24, 24, 1000, 1e3, False, True, 1e-11),
    ("all modes D = 1024, K = 32, 5 spikes, t = 10³", 32, 5, 1024, 1e3, True, False, 1e-10),
    ("K = 100, 5 spikes + bulk, t = 10⁴", 100, 5, 1000, 1e4, False, False, 1e-10),
]
RUNS = [("RK45", 1e-7), ("RKC", 1e-8), ("CVODE", 1e-7), ("CVODE", 1e-8), ("LSODA", 1e-7)]


def row(label, K, n_spikes, D, t_max, all_modes, tied, reference_rtol, init=0.1):
    spec = spiked_covariance(D, [1.5 * 0.7**k for k in range(n_spikes)], 0.05)
    spec = spec.all_modes() if all_modes else spec
    model = Autoencoder(K=K, activation="erf", tied=tied)
    state = State.random(model, spec, init, seed=0)
    compile_model(model)
    atol, times = default_atol(state), time_grid(t_max, 100)

    def run(method, rtol, atol):
        start = time.perf_counter()
        traj = integrate(state, 1.0, t_max, method=method, t_eval=times, rtol=rtol, atol=atol)
        return traj.nfev, time.perf_counter() - start, traj.error

    _, _, reference = run("DOP853", reference_rtol, float(np.min(atol)) * 1e-3)
    cells = []
    for method, rtol in RUNS:
        if method == "LSODA" and state.to_vector().size > AUTO_LSODA_MAX_SIZE:
            cells.append("(dense Jacobians: not run)")
            continue
        nfev, wall, eps = run(method, rtol, None)       # the default atol (per variable)
        cells.append(f"{nfev:,} / {wall:.2f} s / {np.max(np.abs(eps - reference)):.1e}")
    return [label, f"{state.to_vector().size:,}"] + cells


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the five smaller cases only")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    with threadpool_limits(1):
        for case in CASES[:5] if args.quick else CASES:
            rows.append(row(*case))
            print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    print(f"\nMachine: {machine()}; 1-min load average {load_before:.1f} before, "
          f"{load_after:.1f} after\n")
    print(md_table(["case", "variables"] + [f"{name} rtol {rtol:g}: evaluations / wall / "
                                            "largest Δε" for name, rtol in RUNS], rows))


if __name__ == "__main__":
    main()
