"""Sweeps: grid parsing, retries of failed and killed tasks, the point cache."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from odesolve.errors import ConfigError
from odesolve.workflow.config import parse_config, tomllib
from odesolve.workflow.sweep import (SweepError, expand_grid, map_points, parse_grid, point_path,
                            run_sweep)

distributed = pytest.importorskip("distributed")

TINY = """
[data]
kind = "spiked"
D = 40
spikes = [2.0, 1.0]
bulk = 0.1
[model]
K = 2
[train]
lr = 1.0
t_max = 2.0
times = [0.0, 0.25, 0.5, 1.0, 2.0]
"""


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_grid_parsing_and_expansion():
    grid = parse_grid(["lr=0.1,0.5", "model.activation=erf,\"relu\"", "tied=true,false"])
    assert grid == {"lr": [0.1, 0.5], "model.activation": ["erf", "relu"], "tied": [True, False]}
    assert len(expand_grid(grid)) == 8
    assert expand_grid(grid)[1] == {"lr": 0.1, "model.activation": "erf", "tied": False}
    for bad in (["lr"], ["lr="], ["lr=1", "lr=2"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_point_cache_is_keyed_by_the_full_config(tmp_path):
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    same = parse_config(tomllib.loads(TINY), "elsewhere.toml")
    assert point_path(tmp_path, config) == point_path(tmp_path, same)
    assert point_path(tmp_path, config) != point_path(tmp_path, config.with_overrides({"lr": 0.5}))


def crash_first_time(marker):
    """Kill the worker process on the first call, succeed afterwards."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


def always_fails(counter):
    with open(counter, "a") as fh:
        fh.write("x")
    raise RuntimeError("boom")


@pytest.mark.slow
def test_a_killed_workers_task_is_rescheduled(client, tmp_path):
    first_pid = client.run(os.getpid)
    results = {}
    failures = map_points(client, crash_first_time, {"a": str(tmp_path / "marker")},
                          on_result=lambda key, value: results.update({key: value}))
    assert failures == {}
    assert results["a"] not in first_pid.values(), "ran again on a restarted worker"


def test_a_failing_task_is_retried_twice_then_reported(client, tmp_path):
    counter = tmp_path / "attempts"
    failures = map_points(client, always_fails, {"p": str(counter)}, retries=2)
    assert list(failures) == ["p"] and isinstance(failures["p"], RuntimeError)
    assert counter.read_text() == "xxx"


@pytest.mark.slow
def test_sweep_on_an_existing_scheduler_with_restart(client, tmp_path):
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    grid = {"lr": [0.5, 1.0], "activation": ["erf", "linear"]}
    address = client.scheduler.address
    ds, summary = run_sweep(config, grid, tmp_path, scheduler=address)
    assert summary["computed"] == 4 and summary["cached"] == 0
    assert ds["error_theory"].dims == ("lr", "activation", "seed", "time")
    assert list(ds["activation"].values) == ["erf", "linear"]
    assert "error_simulation" not in ds  # theory only (seeds = 0)
    # only ηt matters: lr = 0.5 at time 2t is lr = 1 at time t (same weights)
    slow = ds["error_theory"].sel(lr=0.5, time=[0.5, 1.0, 2.0]).values
    fast = ds["error_theory"].sel(lr=1.0, time=[0.25, 0.5, 1.0]).values
    np.testing.assert_allclose(slow, fast, rtol=1e-5)

    (tmp_path / "sweep.nc").unlink()
    one_point = point_path(tmp_path, config.with_overrides({"lr": 0.5, "activation": "erf"}))
    one_point.unlink()
    again, summary = run_sweep(config, grid, tmp_path, scheduler=address)
    assert summary == {"path": tmp_path / "sweep.nc", "computed": 1, "cached": 3}
    assert one_point.exists()
    np.testing.assert_allclose(again["error_theory"], ds["error_theory"])


@pytest.mark.slow
def test_failed_points_are_reported_after_caching_the_others(client, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", W=rng.normal(0, 0.1, (2, 40)), V=rng.normal(0, 0.1, (2, 40)))
    config = parse_config(tomllib.loads(TINY + f'[init]\nweights = "{tmp_path / "w.npz"}"\n'),
                          "tiny.toml")
    with pytest.raises(ConfigError, match="train.lr"):  # invalid grid values: nothing runs
        run_sweep(config, {"lr": [1.0, -1.0]}, tmp_path, scheduler=client.scheduler.address)
    assert not (tmp_path / "points").exists()
    # K = 3 does not match the weights file: that point fails on its worker
    with pytest.raises(SweepError, match=r"(?s)1 of 2 points failed.*'K': 3.*shape \(2, 40\)"):
        run_sweep(config, {"K": [2, 3]}, tmp_path, scheduler=client.scheduler.address)
    assert len(list((tmp_path / "points").glob("*.nc"))) == 1


def _no_cluster(*args, **kwargs):
    raise AssertionError("a theory-only sweep must not start a cluster")


def test_theory_only_sweep_runs_in_process(tmp_path, monkeypatch):
    from odesolve.workflow import experiment
    from odesolve.workflow import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_client", _no_cluster)
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    grid = {"lr": [0.5, 1.0], "init.scale": [0.1, 0.2, 0.3]}
    ds, summary = run_sweep(config, grid, tmp_path)
    assert summary["computed"] == 6 and summary["cached"] == 0
    for point in expand_grid(grid):
        alone = experiment.run_experiment(config.with_overrides(point))
        np.testing.assert_array_equal(
            ds["error_theory"].sel(lr=point["lr"], scale=point["init.scale"]).values,
            alone["error_theory"].values)
    again, summary = run_sweep(config, grid, tmp_path)
    assert summary["computed"] == 0 and summary["cached"] == 6
    np.testing.assert_allclose(again["error_theory"], ds["error_theory"])


def test_a_diverging_point_of_an_in_process_sweep_is_recorded_for_it_only(tmp_path, monkeypatch):
    from odesolve.workflow import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_client", _no_cluster)
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    # a scale of 1e5 puts overlaps beyond the run-away limit at t = 0
    ds, _ = run_sweep(config, {"init.scale": [0.1, 1e5]}, tmp_path)
    assert np.all(np.isfinite(ds["error_theory"].sel(scale=0.1)))
    assert np.all(np.isnan(ds["error_theory"].sel(scale=1e5)))
    assert "seed 0" in str(ds["divergences"].sel(scale=1e5).values)
    assert str(ds["divergences"].sel(scale=0.1).values) == ""


def test_a_seed_sweep_has_its_own_dimension(tmp_path, monkeypatch):
    """init.seed is a grid key like any other: its dimension is init_seed (each point's
    results already have a seed dimension, which once made xarray fail after the work)."""
    from odesolve.workflow import experiment
    from odesolve.workflow import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_client", _no_cluster)
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    ds, summary = run_sweep(config, {"seed": [0, 3]}, tmp_path)
    assert summary["computed"] == 2 and list(ds["init_seed"].values) == [0, 3]
    alone = experiment.run_experiment(config.with_overrides({"init.seed": 3}))
    np.testing.assert_array_equal(ds["error_theory"].sel(init_seed=3, seed=3).values,
                                  alone["error_theory"].sel(seed=3).values)


def test_a_sweep_beyond_a_day_in_all_is_refused_before_any_work(tmp_path):
    """Each point (4 seeds of online SGD at D = 10⁵) is 2.4 h: announced, not refused;
    1,000 of them were run until interrupted."""
    config = parse_config(tomllib.loads(TINY), "tiny.toml").with_overrides(
        {"data.D": 100_000, "train.t_max": 50.0, "simulation.seeds": 4})
    with pytest.raises(ValueError, match=r"sweep of 1000 points: estimated \d+ days"):
        run_sweep(config, {"lr": [0.1 + 0.001 * i for i in range(1000)]}, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("values", [[1.0, 1], [0.5, 1, 1.0]])
def test_a_value_given_twice_in_two_spellings_is_refused_before_any_work(tmp_path, values):
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    with pytest.raises(ConfigError, match=r"two grid points are the same configuration "
                                          r"\(lr=1(\.0)? and lr=1(\.0)?\)"):
        run_sweep(config, {"lr": values}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_in_process_failures_are_reported_after_caching_the_others(tmp_path, monkeypatch):
    from odesolve.workflow import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_client", _no_cluster)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", W=rng.normal(0, 0.1, (2, 40)), V=rng.normal(0, 0.1, (2, 40)))
    config = parse_config(tomllib.loads(TINY + f'[init]\nweights = "{tmp_path / "w.npz"}"\n'),
                          "tiny.toml")
    with pytest.raises(SweepError, match=r"(?s)1 of 2 points failed.*'K': 3.*shape \(2, 40\)"):
        run_sweep(config, {"K": [2, 3]}, tmp_path)
    assert len(list((tmp_path / "points").glob("*.nc"))) == 1


def test_an_interrupted_in_process_sweep_keeps_its_finished_points(tmp_path, monkeypatch):
    from odesolve.workflow import sweep as sweep_module
    monkeypatch.setattr(sweep_module, "_client", _no_cluster)
    compute, calls = sweep_module._compute_point, []

    def interrupted_second(config):
        calls.append(config)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return compute(config)
    monkeypatch.setattr(sweep_module, "_compute_point", interrupted_second)
    config = parse_config(tomllib.loads(TINY), "tiny.toml")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, {"lr": [0.5, 1.0, 2.0]}, tmp_path)
    assert len(list((tmp_path / "points").glob("*.nc"))) == 1
    monkeypatch.setattr(sweep_module, "_compute_point", compute)
    _, summary = run_sweep(config, {"lr": [0.5, 1.0, 2.0]}, tmp_path)
    assert summary["computed"] == 2 and summary["cached"] == 1
