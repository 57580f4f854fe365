"""Benchmark of parameter sweeps: a 16-point sweep on 1 and 2 local dask workers.

Run: ``python -m benchmarks.bench_sweep [--quick]``.  One experiment per point
(``odesolve.workflow.experiment.run_experiment``), erf, K = 3, three spikes, D = 500, grid
lr × init.scale (4 × 4), in two flavours:

* theory only, t_max = 3000 with the default solver (``auto``: LSODA here);
* theory + one simulated SGD seed, t_max = 1000, i.e. 5·10⁵ SGD steps per point, long
  enough for the workers to pay off (only when the ``simulations`` package is present).

Rows: the 16 points in a plain loop in this process (no dask), then
``odesolve.workflow.sweep.run_sweep`` with a local cluster of 1 and of 2 worker processes, each
into an empty point cache; the sweep wall times include starting the cluster and the
workers' imports.  A theory-only sweep also runs the default way, in this process
(no cluster).  The generated equations are compiled once beforehand, so every row
finds them cached on disk.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


CONFIG = """
[data]
kind = "spiked"
D = {D}
spikes = [1.5, 0.6, 0.25]
bulk = 0.05
[model]
K = 3
activation = "erf"
[train]
lr = 1.0
t_max = {t_max}
n_times = 40
[simulation]
seeds = {seeds}
n_test = 500
"""
GRID = {"lr": [0.25, 0.5, 0.75, 1.0], "init.scale": [0.05, 0.1, 0.2, 0.3]}
QUICK_GRID = {"lr": [0.5, 1.0], "init.scale": [0.1, 0.2]}


def flavours(quick: bool):
    """(label, config) of the benchmarked sweeps."""
    from odesolve.workflow.config import parse_config, tomllib
    D = 200 if quick else 500
    out = [(f"theory only, t_max={20 if quick else 3000}",
            CONFIG.format(D=D, t_max=20.0 if quick else 3000.0, seeds=0))]
    out.append((f"theory + 1 SGD seed, t_max={5 if quick else 1000}",
                    CONFIG.format(D=D, t_max=5.0 if quick else 1000.0, seeds=1)))
    return [(label, parse_config(tomllib.loads(text), "bench_sweep")) for label, text in out]


def time_loop(config, grid) -> float:
    from odesolve.workflow.experiment import run_experiment
    from odesolve.workflow.sweep import expand_grid
    start = time.perf_counter()
    for point in expand_grid(grid):
        run_experiment(config.with_overrides(point))
    return time.perf_counter() - start


def time_sweep(config, grid, n_workers: int | None) -> float:
    from odesolve.workflow.sweep import run_sweep
    with tempfile.TemporaryDirectory() as sweep_dir:
        start = time.perf_counter()
        _, summary = run_sweep(config, grid, sweep_dir, n_workers=n_workers)
        wall = time.perf_counter() - start
    assert summary["computed"] == len(grid["lr"]) * len(grid["init.scale"]), summary
    return wall


def rows(quick: bool = False, log=None):
    """Benchmark rows ``(group, case, seconds, compared with, ratio)``."""
    from odesolve.workflow.experiment import run_experiment
    log = log or (lambda msg: None)
    grid = QUICK_GRID if quick else GRID
    n_points = len(grid["lr"]) * len(grid["init.scale"])
    out = []
    for label, config in flavours(quick):
        log(f"sweep: {label}")
        run_experiment(config)                      # compile / load the generated module
        group = f"{n_points}-point sweep (lr × init.scale), {label}, D={config.data.D}"
        loop = time_loop(config, grid)
        out.append((group, "plain loop in this process, no dask", loop, "", None))
        if not config.simulated:
            batched = time_sweep(config, grid, None)
            out.append((group, "run_sweep default: in this process (no cluster; point "
                        "files written and gathered)", batched, "in process / plain loop",
                        batched / loop))
        one = time_sweep(config, grid, 1)
        two = time_sweep(config, grid, 2)
        out += [(group, "run_sweep, 1 local dask worker (incl. cluster start)", one,
                 "1 worker / plain loop", one / loop),
                (group, "run_sweep, 2 local dask workers (incl. cluster start)", two,
                 "speed-up 1 → 2 workers", one / two)]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 small points")
    args = parser.parse_args(argv)
    from odesolve.testing.tables import format_table
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(format_table(rows(args.quick, log=lambda m: print(f"  [{m}]", file=sys.stderr))))


if __name__ == "__main__":
    main()
