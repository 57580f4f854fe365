"""The per-run plot (``odesolve run``/``odesolve plot``) and the sweep plot: every text
inside the figure, legends off the data, the exact error of the simulated weights drawn
by default, the biases of a trained-bias run shown."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from test_results import fake_dataset, tiny_config

from odesolve.testing.layout import layout_problems
from odesolve.workflow.experiment import run_experiment
from odesolve.workflow.plotting import (plot_result, plot_sweep, save_figure,
                                        simulation_error_variable)


def _marker_means(ax):
    """y data of the error-bar markers of ``ax`` (the simulation's means)."""
    return [container.lines[0].get_ydata() for container in ax.containers]


def test_main_job_plot_layout_and_exact_error(tmp_path):
    erf_run = run_experiment(tiny_config(seeds=2))
    fig = plot_result(erf_run)
    assert layout_problems(fig) == []
    assert len(fig.axes) == 2                                     # no bias: no bias panel
    drawn = _marker_means(fig.axes[0])
    assert len(drawn) == 1                     # t = 0 is left out of the log axis
    np.testing.assert_allclose(drawn[0],
                               erf_run["error_exact_simulation"].mean("seed").values[1:])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("exact error of the weights" in t for t in texts)
    assert any("2 seeds" in t for t in texts)
    # the Monte-Carlo test error as an option, said so in the key
    fig_mc = plot_result(erf_run, simulation_error="test")
    np.testing.assert_allclose(_marker_means(fig_mc.axes[0])[0],
                               erf_run["error_simulation"].mean("seed").values[1:])
    assert any("400 held-out samples" in t.get_text()
               for t in fig_mc.axes[0].get_legend().get_texts())
    assert save_figure(fig, tmp_path / "r.png").stat().st_size > 20_000


def test_markers_are_thinned_on_a_dense_grid_the_theory_is_not():
    from matplotlib.figure import Figure

    from odesolve.workflow.plotting import plot_theory_and_simulation
    _, ds = fake_dataset(seeds=2)
    ax = Figure().subplots()
    plot_theory_and_simulation(ax, ds, "error", per_seed=False, max_markers=5)
    n_positive = int((ds["time"] > 0).sum())
    assert len(ax.lines[0].get_xdata()) == n_positive            # theory: every time
    markers = _marker_means(ax)[0]
    assert len(markers) == 5
    assert ax.containers[0].lines[0].get_xdata()[[0, -1]].tolist() == \
        ds["time"].values[ds["time"].values > 0][[0, -1]].tolist()


def test_simulation_error_choice():
    _, ds = fake_dataset(seeds=2)
    assert simulation_error_variable(ds)[0] == "error_exact_simulation"
    assert simulation_error_variable(ds, "test")[0] == "error_simulation"
    with pytest.raises(ValueError, match="no exact error"):
        simulation_error_variable(ds.drop_vars("error_exact_simulation"), "exact")
    assert simulation_error_variable(ds.drop_vars("error_exact_simulation"))[0] == \
        "error_simulation"                       # results files written before it existed
    with pytest.raises(ValueError, match="simulation_error must be one of"):
        simulation_error_variable(ds, "mc")


def test_trained_bias_run_plot_shows_the_biases():
    ds = run_experiment(tiny_config(seeds=2, **{"model.activation": "relu",
                                                "model.bias": "trained", "init.bias": 0.3}))
    fig = plot_result(ds)
    assert layout_problems(fig) == []
    assert len(fig.axes) == 3 and "bias" in fig.axes[2].get_ylabel()
    theory = ds["m_theory"].mean("seed")
    theory = theory.sel(time=theory["time"] > 0)
    drawn = [line.get_ydata() for line in fig.axes[2].lines if len(line.get_ydata()) > 2
             and line.get_linewidth() > 1]
    for k in range(2):
        assert any(np.allclose(y, theory.sel(unit=k)) for y in drawn)


def test_sweep_plot_says_what_lines_markers_time_and_seeds_are():
    _, ds = fake_dataset(seeds=3)
    sweep = xr.concat([ds, ds.assign(error_theory=2 * ds["error_theory"])],
                      dim=xr.DataArray([0.5, 1.0], dims="lr", name="lr"))
    sweep = xr.concat([sweep, sweep], dim=xr.DataArray([1, 2], dims="K", name="K"))
    sweep.attrs.update(ds.attrs)
    fig = plot_sweep(sweep)
    assert layout_problems(fig) == []
    ax = fig.axes[0]
    t_final = float(ds["time"].values[-1])
    assert ax.get_ylabel() == f"error at t = {t_final:g}"
    shorter = sweep.copy()                         # e.g. a point with a smaller t_max
    shorter["error_theory"] = shorter["error_theory"].where(
        (shorter["lr"] == 0.5) | (shorter["time"] < t_final))
    t_before = float(ds["time"].values[-2])
    assert plot_sweep(shorter).axes[0].get_ylabel() == \
        f"error at each point's last time (t = {t_before:g}…{t_final:g})"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("ODE theory, mean of 3 seeds") for t in texts)
    assert any("SGD" in t and "3 seeds" in t for t in texts)
    assert fig.axes[0].get_xlabel() == "K"                 # the first dimension: x axis
    assert "lr = 0.5" in texts and "lr = 1.0" in texts    # the others: one colour each
