"""One experiment: the theory for every seed and the SGD simulation for every seed.

This is the single code path behind ``odesolve run``, every point of a sweep and the
paper figures: a :class:`~odesolve.workflow.config.Config` goes in, a results
:class:`xarray.Dataset` (layout in :mod:`odesolve.workflow.results`) comes out.

Seed ``init.seed + i`` draws the initial weights of run i; the theory is integrated from
exactly those weights and the simulator starts from them too, so that every simulated
curve has its own theoretical prediction.
"""
from __future__ import annotations

import time

import xarray as xr

from simulations import simulate

from .._progress import progress_bar
from ..errors import DivergenceError
from ..integrator import integrate
from .config import Config
from .problem import Problem, build_problem
from .results import assemble_dataset

__all__ = ["run_experiment", "run_theory", "run_simulation"]


def run_experiment(config: Config, *, progress: bool = False) -> xr.Dataset:
    """Integrate the theory and, if ``simulation.seeds > 0``, simulate SGD, for every seed.

    Parameters
    ----------
    config : Config
        A validated configuration.
    progress : bool
        Show progress bars (they stay silent anyway when stderr is not a terminal).

    Returns
    -------
    xarray.Dataset
        See :mod:`odesolve.workflow.results`.  Runs that diverged are NaN and listed in the
        ``divergences`` attribute (the other runs are kept).
    """
    problem = build_problem(config)
    divergences = []
    start = time.perf_counter()
    trajectories = []
    with progress_bar(total=len(problem.seeds), desc="theory", unit="seed",
                      disable=not progress or len(problem.seeds) == 1) as bar:
        for seed in problem.seeds:
            trajectories.append(_or_divergence(run_theory, problem, seed, progress, divergences))
            bar.update()
    theory_wall = time.perf_counter() - start
    simulations = []
    start = time.perf_counter()
    if config.simulated:
        with progress_bar(total=len(problem.seeds), desc="simulation", unit="seed",
                          disable=not progress) as bar:
            for seed in problem.seeds:
                simulations.append(_or_divergence(run_simulation, problem, seed, progress,
                                                  divergences))
                bar.update()
    return assemble_dataset(problem, trajectories, simulations, theory_wall_time=theory_wall,
                            simulation_wall_time=time.perf_counter() - start,
                            divergences=divergences)


def _or_divergence(runner, problem, seed, progress, divergences):
    try:
        return runner(problem, seed, progress=progress)
    except DivergenceError as exc:
        divergences.append(f"seed {seed}: {exc}")
        return None


def run_theory(problem: Problem, seed: int, *, progress: bool = False):
    """Integrate the D → ∞ equations from the initial weights of ``seed``.

    Returns
    -------
    odesolve.integrator.Trajectory
        Recorded at ``problem.times``.
    """
    theory, train = problem.config.theory, problem.config.train
    return integrate(problem.initial_state(seed), train.lr, (0.0, train.t_max),
                     method=theory.solver, t_eval=problem.times, rtol=theory.rtol,
                     atol=theory.atol, dt=theory.dt, bulk=theory.bulk, protocol=problem.protocol,
                     finite_size=theory.finite_size, progress=progress)


def run_simulation(problem: Problem, seed: int, *, progress: bool = False):
    """Simulate online SGD at finite D from the initial weights of ``seed``.

    Returns
    -------
    simulations.SimulationResult
        Recorded at ``problem.times``.
    """
    config = problem.config
    return simulate(problem.model, problem.spectrum, config.train.lr, config.train.t_max,
                    seed=seed, scale=config.init.scale, bias=config.init.bias,
                    times=problem.times, n_test=config.simulation.n_test,
                    weights=problem.weights, data=problem.samples,
                    eigenbasis=config.simulation.eigenbasis, protocol=problem.protocol,
                    progress=progress)
