"""Parameter sweeps on dask.distributed, with a per-point cache that survives restarts.

``odesolve sweep CONFIG.toml --grid lr=0.1,0.5,1 --grid K=2,4`` runs
:func:`~odesolve.workflow.experiment.run_experiment` for every point of the grid (theory and
simulation), in parallel on a local cluster or on an existing scheduler, and gathers the
results into one netCDF file whose swept parameters are dimensions.

* Every finished point is written (atomically, by the process that submitted the sweep)
  to ``SWEEP_DIR/points/<hash>.nc``, where ``<hash>`` (:func:`point_digest`) covers
  everything the point depends on: its full configuration, the contents of the files it
  names (``data.file``, ``data.path``, ``init.weights``) and the package version.
  Restarting the sweep skips these points; changing anything they depend on changes the
  hash, so stale points are never reused, and a damaged point file is computed again.
* Tasks are submitted with ``retries=2``; a task whose worker dies is also rescheduled
  by the scheduler, so a killed worker does not lose points.
* Workers only compute and return the (small) result datasets, so a remote cluster needs
  no file system shared with the submitting machine.
* A theory-only sweep (``simulation.seeds = 0``) without ``scheduler`` or ``n_workers``
  runs its points one by one in this process instead, each cached as it finishes:
  starting a local cluster takes longer than such a sweep.
"""
from __future__ import annotations

import ast
import contextlib
import datetime
import hashlib
import itertools
import json
import logging
import os
import re
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from distributed import Client, LocalCluster, as_completed

from .._checks import check_cost, check_integer
from .._progress import progress_bar
from ..errors import ConfigError, CostWarning, SweepError
from .config import Config, estimated_seconds, parse_value, resolve_key
from .experiment import run_experiment
from .outputs import write_outputs
from .plotting import plot_sweep, png_writer
from .results import (RESULT_DIMENSIONS, load_results, netcdf_writer, package_version,
                      write_netcdf)

__all__ = ["SweepError", "parse_grid", "expand_grid", "point_digest", "point_path", "map_points",
           "run_sweep"]


def parse_grid(specs) -> dict:
    """Parse ``["lr=0.1,0.5,1", "K=2,4"]`` into ``{"lr": [0.1, 0.5, 1], "K": [2, 4]}``.

    Values are TOML values (``true``, ``"relu"``, ``[1.5, 0.6]``) or bare strings;
    commas inside brackets or quotes do not split.

    >>> parse_grid(["lr=0.1,0.5,1", "activation=erf,relu", "spikes=[2, 1],[3, 1]"])
    {'lr': [0.1, 0.5, 1], 'activation': ['erf', 'relu'], 'spikes': [[2, 1], [3, 1]]}
    """
    grid = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError("--grid", spec, "expected KEY=VALUE1,VALUE2,...")
        if key in grid:
            raise ConfigError("--grid", key, "given twice")
        grid[key] = [parse_value(v) for v in _split_top_level(values)]
    return grid


def _split_top_level(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of the grid values, the last key varying fastest.

    >>> expand_grid({"lr": [0.1, 1], "K": [2, 4]})
    [{'lr': 0.1, 'K': 2}, {'lr': 0.1, 'K': 4}, {'lr': 1, 'K': 2}, {'lr': 1, 'K': 4}]
    """
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*grid.values())]


def point_digest(config: Config) -> str:
    """SHA-256 of what one point's results depend on: the configuration, the contents of
    every file it names, and the package version."""
    h = hashlib.sha256(config.digest().encode())
    h.update(package_version().encode())
    for key, path in (("data.file", config.data.file), ("data.path", config.data.path),
                      ("init.weights", config.init.weights)):
        if path is not None:
            h.update(key.encode())
            _hash_path(h, Path(path))
    return h.hexdigest()


def _hash_path(h, path: Path) -> None:
    """Feed the contents of a file, or of every file below a folder, into ``h``."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        h.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        try:
            with open(file, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"<unreadable>")


def point_path(sweep_dir, config: Config) -> Path:
    """Cache file of one point: ``sweep_dir/points/<point_digest>.nc``."""
    return Path(sweep_dir) / "points" / f"{point_digest(config)[:24]}.nc"


def _cached(path: Path) -> bool:
    """Whether a readable point file is cached at ``path`` (a damaged one is removed)."""
    if not path.exists():
        return False
    try:
        load_results(path)
    except (OSError, ValueError):
        path.unlink()
        return False
    return True


def _compute_point(config: Config) -> xr.Dataset:
    """Run one point (on a worker)."""
    return run_experiment(config, progress=False)


def map_points(client, function, arguments: dict, *, retries: int = 2, on_result=None,
               progress: bool = False, desc: str = "sweep") -> dict:
    """Run ``function(argument)`` for every ``{key: argument}`` on a dask client.

    Parameters
    ----------
    client : distributed.Client
    function : callable
        Must be importable by the workers.
    arguments : dict
        ``{key: argument}``; keys name the tasks.
    retries : int
        Extra attempts for a task that raises (a task whose worker dies is rescheduled
        by the scheduler as well).
    on_result : callable, optional
        ``on_result(key, result)``, called on the submitting process as each task
        finishes (used to cache points as soon as they are done).

    Returns
    -------
    dict
        ``{key: exception}`` for the tasks that still failed.
    """
    futures = {client.submit(function, arg, key=f"odesolve-point-{key}", retries=retries,
                             pure=False): key for key, arg in arguments.items()}
    failures = {}
    with progress_bar(total=len(futures), desc=desc, unit="point", disable=not progress) as bar:
        for future in as_completed(futures):
            key = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # reported to the caller, the other points go on
                failures[key] = exc
            else:
                if on_result is not None:
                    on_result(key, result)
            finally:
                future.release()
            bar.update()
    return failures


def _map_in_process(function, arguments: dict, *, on_result=None, progress: bool = False,
                    desc: str = "sweep") -> dict:
    """:func:`map_points` in this process, one argument after the other: same arguments
    (no retries: nothing can die under it) and the same ``{key: exception}`` result;
    ``on_result`` gets each result as it finishes, so an interrupted sweep keeps its
    finished points."""
    failures = {}
    with progress_bar(total=len(arguments), desc=desc, unit="point",
                      disable=not progress) as bar:
        for key, argument in arguments.items():
            try:
                result = function(argument)
            except Exception as exc:  # reported to the caller, the other points go on
                failures[key] = exc
            else:
                if on_result is not None:
                    on_result(key, result)
            bar.update()
    return failures


@contextlib.contextmanager
def _client(scheduler: str | None, n_workers: int | None, n_points: int):
    if scheduler is not None:
        with Client(scheduler, timeout="10s") as client:
            yield client
        return
    workers = n_workers or max(1, min(os.cpu_count() or 1, n_points))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


def run_sweep(config: Config, grid: dict, sweep_dir, *, scheduler: str | None = None,
              n_workers: int | None = None, retries: int = 2, progress: bool = False,
              plot: bool = False):
    """Run every point of ``grid`` on top of ``config`` and gather the results.

    Parameters
    ----------
    config : Config
        Base configuration.
    grid : dict
        ``{key: [values]}``; keys as in :meth:`Config.with_overrides` (``"lr"``,
        ``"model.K"``, …).  Each key becomes a dimension of the result.
    sweep_dir : path
        Directory of the point cache (``points/``) and of the gathered ``sweep.nc``.
    scheduler : str, optional
        Address of an existing dask scheduler; default: a local cluster, or for a
        theory-only sweep this process (see the module doc).
    n_workers : int, optional
        Workers of the local cluster (default: one per core, at most one per point);
        given, a theory-only sweep runs on the cluster too.
    retries : int
        Extra attempts per point.
    progress : bool
        Show a progress bar over the points.
    plot : bool
        Also draw ``sweep.png``, written with ``sweep.nc`` as one consistent set.

    Returns
    -------
    dataset : xarray.Dataset
        Every result variable with the swept parameters as leading dimensions.
    summary : dict
        ``{"path": sweep.nc, "computed": n, "cached": n}``.

    Raises
    ------
    ConfigError
        For an invalid grid key or value, a key given twice in any spelling, two points
        that are the same configuration, or invalid cluster options (before anything runs).
    ValueError
        For a sweep whose estimated total run time is beyond
        :data:`odesolve._checks.MAX_SECONDS` (before anything runs; a total beyond a
        minute is announced once, as a CostWarning).
    SweepError
        If points failed after their retries (the finished ones are cached), or when a
        local cluster is requested from the top level of a script without the
        ``if __name__ == "__main__":`` guard its worker processes need.
    """
    if not grid:
        raise ConfigError("--grid", None, "give at least one --grid KEY=VALUES")
    if scheduler is not None:
        _check_scheduler(scheduler, n_workers)
    elif n_workers is not None:
        check_integer("--workers", n_workers, minimum=1)
    dims = _dimension_names(grid, config.source)
    points = expand_grid(grid)

    def configure(point):
        return config.with_overrides(point, source=f"{config.source} with " + ", ".join(
            f"{k}={v!r}" for k, v in point.items()))

    what = f"sweep of {len(points)} points"
    with warnings.catch_warnings():
        # one estimate for the whole sweep, not a warning per point: first from one point
        # (so that a grid of 10⁵ points is refused before 10⁵ configurations are built),
        # then from all of them
        warnings.simplefilter("ignore", CostWarning)
        configs = [configure(points[0])]
        check_cost(what, seconds=len(points) * estimated_seconds(configs[0]))
        configs += [configure(point) for point in points[1:]]
    check_cost(what, seconds=sum(map(estimated_seconds, configs)))
    paths = [point_path(sweep_dir, c) for c in configs]
    first = {}
    for point, path in zip(points, paths):
        # the same configuration in two spellings (lr = 1.0 and lr = 1) would be one point
        # under two grid coordinates
        if path.stem in first:
            same = ", ".join(f"{k}={first[path.stem][k]!r} and {k}={v!r}"
                             for k, v in point.items() if first[path.stem][k] != v or
                             type(first[path.stem][k]) is not type(v))
            raise ConfigError("--grid", None, f"two grid points are the same configuration "
                              f"({same or point})")
        first[path.stem] = point
    # tasks are named by the digest of their configuration: unique on a shared scheduler
    todo = {p.stem: c for c, p in zip(configs, paths) if not _cached(p)}
    point_of = {p.stem: point for point, p in zip(points, paths)}
    in_process = scheduler is None and n_workers is None and not any(
        c.simulated for c in todo.values())
    if todo and scheduler is None and not in_process:
        _check_main_guard()

    def cache(digest, dataset):
        write_netcdf(dataset, Path(sweep_dir) / "points" / f"{digest}.nc")

    failures = {}
    if todo and in_process:
        # theory only: starting a cluster would take longer than the whole sweep
        failures = _map_in_process(_compute_point, todo, on_result=cache, progress=progress)
    elif todo:
        with _client(scheduler, n_workers, len(todo)) as client:
            failures = map_points(client, _compute_point, todo, retries=retries,
                                  on_result=cache, progress=progress)
    if failures:
        lines = [f"  {point_of[d]}: {type(exc).__name__}: {exc}" for d, exc in failures.items()]
        raise SweepError(f"{len(failures)} of {len(points)} points failed (the others are "
                         f"cached in {Path(sweep_dir) / 'points'}):\n" + "\n".join(lines))
    dataset = _gather(config, grid, dims, points, paths)
    writers = {"sweep.nc": netcdf_writer(dataset)}
    if plot:
        writers["sweep.png"] = png_writer(plot_sweep(dataset), run_id=dataset.attrs["run_id"])
    out = write_outputs(sweep_dir, writers)["sweep.nc"]
    return dataset, {"path": out, "computed": len(todo), "cached": len(points) - len(todo)}


def _dimension_names(grid: dict, source: str) -> dict:
    """``{grid key: dimension name}``: the bare key name, qualified only if two collide.

    A key given twice in any spelling (``lr`` and ``train.lr``), or a value given twice
    for one key, is a :class:`ConfigError`."""
    resolved = {key: resolve_key(key, "--grid") for key in grid}
    seen = {}
    for key, dotted in resolved.items():
        if dotted in seen:
            raise ConfigError("--grid", key, f"given twice (as {seen[dotted]!r} and {key!r}, "
                              f"both {'.'.join(dotted)})")
        seen[dotted] = key
        values = [json.dumps(v, sort_keys=True) for v in grid[key]]
        twice = [v for v in values if values.count(v) > 1]
        if twice:
            raise ConfigError("--grid", key, f"value {twice[0]} given twice")
    names = [name for _, name in resolved.values()]
    # init.seed is not "seed": each point's results already have a seed dimension
    return {key: name if names.count(name) == 1 and name not in RESULT_DIMENSIONS
            else f"{section}_{name}" for key, (section, name) in resolved.items()}


_ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://\S+|[^\s:/]+:\d+")


def _check_scheduler(address, n_workers) -> None:
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise ConfigError("--scheduler", None, f"{address!r} is not a scheduler address "
                          "(tcp://HOST:PORT)")
    if n_workers is not None:
        raise ConfigError("--workers", None, "sets the size of a local cluster: it cannot be "
                          "used with --scheduler")


def _check_main_guard() -> None:
    """Fail at once when a local cluster is started by a script's top-level code without
    the ``if __name__ == "__main__":`` guard: dask's worker processes import the script
    again, which would start the sweep again in each of them (and fail in ~170 lines)."""
    main = sys.modules.get("__main__")
    source = getattr(main, "__file__", None)
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals.get("__name__") in ("__main__",
                                                                              "__mp_main__")):
        frame = frame.f_back
    if frame is None or source is None:
        return  # interactive session, python -c, a test runner: nothing is imported again
    if frame.f_globals.get("__name__") == "__mp_main__" or not _guarded(source, frame.f_lineno):
        raise SweepError(f"run_sweep() is called by the top-level code of {source} (line "
                         f"{frame.f_lineno}): put it under `if __name__ == \"__main__\":`, "
                         "because the worker processes import that script again")


def _guarded(source: str, line: int) -> bool:
    """Whether ``line`` of the script lies inside an ``if __name__ == "__main__":`` block."""
    try:
        tree = ast.parse(Path(source).read_text())
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: do not refuse
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
                and "__main__" in ast.unparse(node.test)
                and node.body[0].lineno <= line <= max(n.end_lineno for n in node.body)):
            return True
    return False


def _coordinate(values) -> np.ndarray:
    """Grid values as a netCDF-friendly coordinate (numbers, else their text)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    return np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=str)


def _nest(items: list, shape: list) -> list:
    """Nested lists of ``shape`` from a flat list in C order (last index fastest)."""
    if len(shape) == 1:
        return list(items)
    step = len(items) // shape[0]
    return [_nest(items[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _gather(config, grid, dims, points, paths) -> xr.Dataset:
    coords = {dims[key]: _coordinate(values) for key, values in grid.items()}
    datasets = []
    for point, path in zip(points, paths):
        ds = load_results(path)
        extras = {"theory_wall_time": ds.attrs["theory_wall_time"],
                  "simulation_wall_time": ds.attrs["simulation_wall_time"],
                  "divergences": ds.attrs.get("divergences", "")}
        ds = ds.assign({name: ((), value) for name, value in extras.items()})
        index = {dims[k]: [coords[dims[k]][list(grid[k]).index(v)]] for k, v in point.items()}
        datasets.append(ds.expand_dims(index))
    combined = xr.combine_nested(_nest(datasets, [len(v) for v in grid.values()]),
                                 concat_dim=list(coords), join="outer",
                                 combine_attrs="drop_conflicts")
    combined.attrs.update({
        "title": "odesolve sweep over " + ", ".join(coords),
        "config": config.to_toml(),
        "config_file": config.source,
        "grid": json.dumps(grid),
        "odesolve_version": package_version(),
        "n_points": len(points),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,
    })
    return combined
