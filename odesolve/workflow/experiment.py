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
import warnings

import numpy as np
import xarray as xr

from simulations import simulate

from .._progress import progress_bar
from ..errors import DivergenceError, RegimeWarning
from ..integrator import integrate
from ..integrator.regime import regime_notes
from .config import Config
from .problem import Problem, build_problem
from .results import assemble_dataset

__all__ = ["run_experiment", "run_theory", "run_simulation", "regime_warnings"]


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
        ``divergences`` attribute (the other runs are kept).  Every :class:`RegimeWarning`
        (the run left the regime where the theory is exact: :func:`regime_warnings`, an
        Euler step beyond stability, an SGD error rising far above its start or ending far
        from the theory's, :data:`SGD_DEPARTURE`) is issued
        and listed, with its number, in the ``warnings`` attribute.
    """
    problem = build_problem(config)
    caught = []
    with warnings.catch_warnings():
        # regime warnings of the runs are collected (once each, into the results file);
        # any other warning, e.g. the cost estimate of a long run, is shown at once
        warnings.simplefilter("always", RegimeWarning)
        show = warnings.showwarning

        def collect(message, category, *args, **kwargs):
            if issubclass(category, RegimeWarning):
                caught.append(str(message))
            else:
                show(message, category, *args, **kwargs)
        warnings.showwarning = collect
        dataset = _run(problem, progress)
    notes = list(dict.fromkeys(regime_warnings(config, problem) + caught + _sgd_departures(dataset)))
    for note in notes:
        warnings.warn(RegimeWarning(note), stacklevel=2)
    dataset.attrs["warnings"] = "\n".join(notes)
    return dataset


#: An SGD run whose error rises above this multiple of its initial error has diverged.
SGD_RISE = 2.0
#: An SGD run that ends farther than this fraction of the initial error from the theory
#: did not follow the D → ∞ equations (e.g. g = x³ at η = 1, D = 500: SGD's rare large
#: steps threw one seed back up, to 1.46 where the theory ends at 0.93).
SGD_DEPARTURE = 0.2


def regime_warnings(config: Config, problem: Problem) -> list[str]:
    """Messages, each with its number, for a run outside the regime where the theory is
    exact (:func:`odesolve.integrator.regime.regime_notes` of its theory spectrum, learning
    rate, protocol, recording times and bulk closure: the notes ``integrate`` issues)."""
    return regime_notes(problem.theory_spectrum, config.train.lr, problem.protocol,
                        problem.times, config.theory.bulk)


def _sgd_departures(dataset) -> list[str]:
    """Per seed, an SGD run whose error rose far above its start (diverged, though still
    finite), or else one that ended far from the theory's curve (see SGD_DEPARTURE)."""
    if "error_simulation" not in dataset:
        return []
    notes = []
    t_end = float(dataset["time"].values[-1])
    for seed, error, exact, theory in zip(dataset["seed"].values,
                                          dataset["error_simulation"].values,
                                          dataset["error_exact_simulation"].values,
                                          dataset["error_theory"].values):
        if np.all(np.isfinite(error[:1])) and np.nanmax(error) > SGD_RISE * error[0]:
            notes.append(f"seed {seed}: online SGD diverged: its error rose to "
                         f"{np.nanmax(error):.3g}, {np.nanmax(error) / error[0]:.3g}× its "
                         f"initial {error[0]:.3g}")
        elif (np.isfinite([theory[0], theory[-1], exact[-1]]).all()
              and abs(exact[-1] - theory[-1]) > SGD_DEPARTURE * theory[0]):
            notes.append(f"seed {seed}: online SGD ended at ε = {exact[-1]:.4g} and the theory "
                         f"at {theory[-1]:.4g} (t = {t_end:g}), {abs(exact[-1] - theory[-1]) / theory[0]:.2g} "
                         "of the initial error apart: finite-D SGD did not follow the D → ∞ "
                         "equations (try a larger D or a smaller learning rate)")
    return notes


def _run(problem: Problem, progress: bool) -> xr.Dataset:
    config = problem.config
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
    odesolve.trajectory.Trajectory
        Recorded at ``problem.times``.
    """
    theory, train = problem.config.theory, problem.config.train
    return integrate(problem.initial_state(seed), train.lr, (0.0, float(problem.times[-1])),
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
