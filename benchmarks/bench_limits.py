"""Benchmark of the limits figure and of BLAS threads in :mod:`odesolve.limits`.

Run: ``python -m benchmarks.bench_limits [--quick] [--skip-figure]``.

The training loops of :mod:`odesolve.limits` multiply matrices of a few hundred rows;
they run with one BLAS thread (``odesolve.limits._common.small_matrices``), because waking
a thread pool for each small product costs more than the product, ruinously so when the
cores are shared (issue 11: gradient descent at d = 100 took 5 minutes instead of 6 s).
Rows:

* population gradient descent (d = 100, r = 2, 300 steps: one point of the figure) with
  one BLAS thread (what the package does) and with the BLAS default, measured in the same
  run — the ratio is the gain;
* the full-size limits figure (``odesolve figure limits``), whose target is ≤ 5 minutes on
  the 2-core CI machine.

Medians of ``--repeat`` runs; the load average is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from odesolve import limits
from odesolve.figures import fundamental_limits
from odesolve.testing.tables import format_table, machine

#: The full-size figure should take at most this long on the 2-core CI machine.
TARGET_SECONDS = 300.0


def _median_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gradient_descent(d: int, steps: int) -> None:
    limits.train_population_gd(d, 2.0, steps=steps, lr=0.5, rng=np.random.default_rng(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 40, 60 steps, quick figure")
    parser.add_argument("--skip-figure", action="store_true", help="only the GD rows")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    d, steps = (40, 60) if args.quick else (100, 300)
    blas = [f"{i['internal_api']} ({i['num_threads']} threads)" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"{machine()}; BLAS: {', '.join(blas) or 'none found'}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    one = _median_time(lambda: gradient_descent(d, steps), args.repeat)
    unlimited_gd = limits.train_population_gd.__wrapped__   # without the one-thread limit
    with threadpool_limits(limits=None):
        default = _median_time(lambda: unlimited_gd(d, 2.0, steps=steps, lr=0.5,
                                                    rng=np.random.default_rng(0)), args.repeat)
    rows = [("limits", f"population GD, d = {d}, r = 2, {steps} steps, 1 BLAS thread (the "
             "package)", one, f"BLAS default threads ({default:.3g} s) / 1 thread",
             default / one)]
    if not args.skip_figure:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            fundamental_limits.make_figure(out, quick=args.quick)
            figure = time.perf_counter() - start
        size = "quick" if args.quick else "full-size"
        rows.append(("limits", f"{size} limits figure (odesolve figure limits)", figure,
                     f"measured / target of {TARGET_SECONDS:.0f} s", figure / TARGET_SECONDS))
    print(format_table(rows))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
