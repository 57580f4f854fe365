"""Results files: one labelled :class:`xarray.Dataset` per run, stored as netCDF.

Layout (``odesolve run`` writes it, ``odesolve plot`` reads it back)::

    coordinates  time (n_time), seed (n_seed), unit, unit_ (K), spike (n_overlap),
                 rank (0…K), plateau (1…)
    theory       error_theory(seed, time), Q/R/T/T0_theory(seed, time, unit, unit_),
                 A/B_theory(seed, time, unit, spike), m_theory(seed, time, unit),
                 learning_time_theory(seed, plateau)
    simulation   error_simulation(seed, time) (Monte-Carlo error on held-out samples),
                 error_exact_simulation(seed, time) (exact error of the simulated weights:
                 the error formula on their order parameters) and the same order
                 parameters with the suffix ``_simulation``
    reference    eigenvalue(spike) (ρ/D of each overlap mode), pca_error(rank)
    attributes   config (the full TOML), config_file, config_digest, odesolve_version,
                 seeds, theory_mode, theory_solver, theory_finite_size, lr, protocol_* (schedule, rates,
                 decays, batch size: :meth:`odesolve.protocols.Protocol.describe`), created,
                 wall times, warnings, divergences; n_train_samples and
                 passes_over_training_set for a simulation on images

``seed`` i holds the theory started from the initial weights of seed i and, when
simulated, the SGD run from the very same weights.  The ``spike`` coordinate is the
index of the mode in the spectrum (tracked modes in the order of the data); ``A`` is
``w_k·e_τ`` and ``B`` is ``v_k·e_τ/√D``.

Files are written atomically and as consistent sets (:mod:`odesolve.workflow.outputs`):
a run killed while writing leaves the previous set untouched.  ``run_id`` (an attribute,
also stored in the PNG drawn from the file) tells which run a file comes from.
"""
from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from .config import parse_config, tomllib
from .outputs import recover, write_outputs

__all__ = [
    "ENGINE",
    "RESULT_DIMENSIONS",
    "package_version",
    "assemble_dataset",
    "write_netcdf",
    "netcdf_writer",
    "load_results",
    "config_of",
    "normalised_overlaps",
]

#: netCDF engine used for every results file.
ENGINE = "h5netcdf"
#: The dimensions of a result file (a sweep adds one per grid key, named otherwise).
RESULT_DIMENSIONS = ("seed", "time", "unit", "unit_", "spike", "rank", "plateau")

_MATRICES = ("Q", "R", "T", "T0")


def package_version() -> str:
    """Version of the installed ``odesolve`` package."""
    return __version__


def assemble_dataset(problem, trajectories, simulations=(), *, theory_wall_time=0.0,
                     simulation_wall_time=0.0, divergences=()) -> xr.Dataset:
    """Collect the theory (and simulation) runs of one problem into a Dataset.

    Parameters
    ----------
    problem : odesolve.workflow.config.Problem
        The problem that was solved (its ``seeds`` index the runs).
    trajectories : list of odesolve.trajectory.Trajectory or None
        One per seed, recorded at ``problem.times``; ``None`` for a run that diverged
        (its values are NaN).
    simulations : list of simulations.SimulationResult or None
        One per seed (empty for theory only); ``None`` for a diverged run.
    theory_wall_time, simulation_wall_time : float
        Seconds spent, stored as attributes.
    divergences : sequence of str
        Messages of the runs that diverged, stored in the ``divergences`` attribute.
    """
    config, model = problem.config, problem.model
    seeds = np.asarray(problem.seeds, dtype=np.int64)
    times = problem.times
    K, modes = model.K, problem.overlap_modes
    if len(trajectories) != len(seeds):
        raise ValueError(f"{len(trajectories)} theory runs for {len(seeds)} seeds")
    if len(simulations) not in (0, len(seeds)):
        raise ValueError(f"{len(simulations)} simulations for {len(seeds)} seeds")
    spectrum = problem.spectrum
    n_plateau = min(K, problem.theory_spectrum.n_tracked)
    coords = {
        "time": ("time", times, {"long_name": "time", "units": "samples seen / D"}),
        "seed": ("seed", seeds, {"long_name": "seed of the initial weights"}),
        "unit": ("unit", np.arange(K), {"long_name": "hidden unit"}),
        "unit_": ("unit_", np.arange(K), {"long_name": "hidden unit (second index)"}),
        "spike": ("spike", modes, {"long_name": "index of the eigen-mode in the spectrum"}),
        "rank": ("rank", np.arange(K + 1), {"long_name": "rank of the PCA reconstruction"}),
        "plateau": ("plateau", np.arange(1, n_plateau + 1), {"long_name": "plateau exited"}),
    }
    data = {
        "eigenvalue": (("spike",), spectrum.eigenvalues[modes] / spectrum.D,
                       {"long_name": "eigenvalue / D of the mode"}),
        "pca_error": (("rank",), spectrum.pca_errors(K),
                      {"long_name": "error of the best rank-k reconstruction"}),
    }
    data.update(_theory_variables(trajectories, times, modes, K, n_plateau, model.has_bias))
    if len(simulations):
        data.update(_simulation_variables(simulations, times, modes, K, model.has_bias))
    modes_run = {t.mode for t in trajectories if t is not None}
    methods_run = {t.method for t in trajectories if t is not None}
    attrs = {
        "title": f"odesolve: {model.activation.name} autoencoder, K = {K}, "
                 f"{'tied' if model.tied else 'untied'}, rule {model.rule}",
        "config": config.to_toml(),
        "config_file": config.source,
        "config_digest": config.digest(),
        "odesolve_version": package_version(),
        "seeds": seeds,
        "D": spectrum.D,
        "K": K,
        "lr": config.train.lr,
        "activation": model.activation.name,
        "tied": int(model.tied),
        "bias": model.bias,
        "rule": model.rule,
        "data_kind": config.data.kind,
        "theory_mode": ",".join(sorted(modes_run)) or "none",
        "theory_solver": ",".join(sorted(methods_run)) or config.theory.solver,
        "theory_finite_size": int(config.theory.finite_size),
        "simulated": int(len(simulations) > 0),
        "n_test": config.simulation.n_test,
        "theory_wall_time": float(theory_wall_time),
        "simulation_wall_time": float(simulation_wall_time),
        "divergences": "\n".join(divergences),
        "warnings": "",
        **{f"protocol_{key}": value for key, value in problem.protocol.describe().items()},
        **_training_set(problem),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _training_set(problem) -> dict:
    """For a simulation on a finite set of samples (images): the size of its training
    part (``simulation.n_test`` are held out) and how many times SGD went through it
    (t_max·D samples drawn)."""
    config = problem.config
    if problem.samples is None or not config.simulated:
        return {}
    n = len(problem.samples) - config.simulation.n_test
    return {"n_train_samples": n, "passes_over_training_set": config.train.t_max * problem.spectrum.D / n}


def _stack(runs, getter, shape):
    """Stack ``getter(run)`` over runs, NaN for a missing (diverged) run."""
    return np.stack([np.full(shape, np.nan) if r is None else np.asarray(getter(r), float)
                     for r in runs])


def _run_variables(runs, kind, error, times, modes, K, has_bias, tolerance):
    """Variables ``<name>_<kind>`` of theory trajectories or simulations: both record the
    same order parameters (Q, R, T, T0, m) and overlaps (A, B) at the problem's times."""
    n = len(times)
    for run in runs:
        if run is not None and not np.allclose(run.t, times, rtol=tolerance, atol=tolerance):
            raise ValueError(f"a {kind} run was not recorded at the problem's times")
    attribute, long_name = error
    out = {f"error_{kind}": (("seed", "time"), _stack(runs, lambda r: getattr(r, attribute), (n,)),
                             {"long_name": f"{long_name} ({kind})"})}
    for name in _MATRICES:
        out[f"{name}_{kind}"] = (("seed", "time", "unit", "unit_"),
                                 _stack(runs, lambda r: getattr(r, name), (n, K, K)),
                                 {"long_name": f"order parameter {name} ({kind})"})
    done = [r for r in runs if r is not None]
    for name, what in (("A", "w_k·e_τ"), ("B", "v_k·e_τ/√D")):
        if done and getattr(done[0], name, None) is not None:
            out[f"{name}_{kind}"] = (("seed", "time", "unit", "spike"),
                                     _stack(runs, lambda r: getattr(r, name)[:, :, modes],
                                            (n, K, len(modes))),
                                     {"long_name": f"overlap {what} ({kind})"})
    if has_bias:
        out[f"m_{kind}"] = (("seed", "time", "unit"), _stack(runs, lambda r: r.m, (n, K)),
                            {"long_name": f"encoder bias ({kind})"})
    return out


def _theory_variables(trajectories, times, modes, K, n_plateau, has_bias):
    out = _run_variables(trajectories, "theory", ("error", "generalisation error"), times, modes,
                         K, has_bias, 1e-12)
    out["learning_time_theory"] = (("seed", "plateau"),
                                   _stack(trajectories, lambda r: r.learning_times[:n_plateau],
                                          (n_plateau,)),
                                   {"long_name": "exit time of the k-th plateau (theory)"})
    return out


def _simulation_variables(simulations, times, modes, K, has_bias):
    out = _run_variables(simulations, "simulation", ("test_error", "held-out test error"),
                         times, modes, K, has_bias, 1e-9)
    # the figures' default: the error formula on the simulated weights, free of the
    # Monte-Carlo noise of a finite test set
    out["error_exact_simulation"] = (("seed", "time"),
                                     _stack(simulations, lambda r: r.theory_error(),
                                            (len(times),)),
                                     {"long_name": "exact error of the simulated weights "
                                                   "(simulation)"})
    return out


def write_netcdf(dataset: xr.Dataset, path) -> Path:
    """Write ``dataset`` to ``path`` atomically (netCDF-4 through h5netcdf).

    Through :func:`odesolve.workflow.outputs.write_outputs`: readers and a run killed
    mid-write only ever see the old or the new complete file, and no temporary file stays.
    Missing parent directories are created.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    return write_outputs(path.parent, {path.name: netcdf_writer(dataset)})[path.name]


def netcdf_writer(dataset: xr.Dataset):
    """``write(path)`` of ``dataset`` as compressed netCDF, for :func:`write_outputs`."""
    encoding = {name: {"zlib": True, "complevel": 4} for name, var in dataset.data_vars.items()
                if var.dtype.kind == "f" and var.size > 64}
    return lambda path: dataset.to_netcdf(path, engine=ENGINE, encoding=encoding)


def load_results(path) -> xr.Dataset:
    """Load a results file fully into memory (the file is closed afterwards).

    A save of its folder interrupted by a kill is completed or discarded first
    (:func:`odesolve.workflow.outputs.recover`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is a folder, not a readable netCDF file, or not an odesolve results file.
    """
    path = Path(path)
    recover(path.parent)
    if not path.exists():
        raise FileNotFoundError(f"no such results file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a results file (DIR/result.nc)")
    try:
        dataset = xr.load_dataset(path, engine=ENGINE)
    except Exception as exc:  # h5py/h5netcdf/xarray raise many types on damaged files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a readable netCDF file ({reason})") from None
    if "config" not in dataset.attrs:
        raise ValueError(f"{path} is not an odesolve results file (no 'config' attribute)")
    return dataset


def config_of(dataset: xr.Dataset):
    """The :class:`~odesolve.workflow.config.Config` stored in a results file."""
    data = tomllib.loads(dataset.attrs["config"])
    if "times" in data.get("train", {}):
        # files written before the configuration refused both kept the unused count
        data["train"].pop("n_times", None)
    return parse_config(data, source=dataset.attrs.get("config_file", "<results file>"))


def normalised_overlaps(dataset: xr.Dataset, kind: str = "theory") -> xr.DataArray:
    """Share of unit k's pre-activation variance carried by mode τ: ``s_τ A_kτ² / Q_kk``.

    It lies in [0, 1] and sums to at most 1 over the modes: a unit aligned with a
    single eigenvector has one entry equal to 1.

    Parameters
    ----------
    kind : {"theory", "simulation"}
    """
    A = dataset[f"A_{kind}"]
    Q = dataset[f"Q_{kind}"]
    Qkk = xr.DataArray(np.diagonal(Q.values, axis1=-2, axis2=-1), dims=Q.dims[:-1],
                       coords={d: Q.coords[d] for d in Q.dims[:-1]})
    share = (dataset["eigenvalue"] * A**2 / Qkk).transpose(*A.dims)
    share.attrs["long_name"] = "s_τ A_kτ² / Q_kk"
    return share
