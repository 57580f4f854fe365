"""The ``odesolve`` command line, driven end to end in subprocesses."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY_CONFIG

TINY = TINY_CONFIG.format(seeds=2)

from odesolve.workflow.cli import main
from odesolve.workflow.results import config_of, load_results


def odesolve(*args):
    """Run ``python -m odesolve.workflow.cli ARGS`` in a subprocess (stderr is not a terminal)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "odesolve.workflow.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def odesolve_here(capsys, *args):
    """Run ``odesolve ARGS`` in this process (cheaper): ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_run_writes_result_and_plot_then_replots(tiny, tmp_path):
    out = tmp_path / "out"
    done = odesolve("run", tiny, "--out", out)
    assert done.returncode == 0, done.stderr
    nc, png = out / "result.nc", out / "result.png"
    assert f"wrote {nc}" in done.stdout and f"wrote {png}" in done.stdout
    assert "PCA error of rank 2" in done.stdout
    assert "it/s" not in done.stderr and "%|" not in done.stderr, "no bars off a terminal"
    ds = load_results(nc)
    assert ds["error_theory"].dims == ("seed", "time") and ds.sizes["seed"] == 2
    assert "error_simulation" in ds and "A_theory" in ds
    assert config_of(ds).train.t_max == 4.0
    assert png.stat().st_size > 10_000

    tiny.unlink()  # replotting needs nothing but the results file
    replot = odesolve("plot", nc, "--out", tmp_path / "again.png")
    assert replot.returncode == 0, replot.stderr
    assert (tmp_path / "again.png").stat().st_size > 10_000


def test_run_theory_only_with_overrides(tiny, tmp_path, capsys):
    status, _, err = odesolve_here(capsys, "run", tiny, "--out", tmp_path / "o", "--set", "seeds=0",
                                   "--set", "init.seed=5", "--no-plot", "--quiet")
    assert status == 0, err
    ds = load_results(tmp_path / "o" / "result.nc")
    assert list(ds["seed"].values) == [5]
    assert "error_simulation" not in ds
    assert not (tmp_path / "o" / "result.png").exists()


def test_run_from_a_weights_file(tiny, tmp_path, capsys):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "w.npz", W=rng.normal(0, 0.1, (2, 60)), V=rng.normal(0, 0.1, (2, 60)))
    tiny.write_text(TINY.replace("seeds = 2", "seeds = 1")
                    + '[init]\nweights = "w.npz"\n')
    status, _, err = odesolve_here(capsys, "run", tiny, "--out", tmp_path / "w", "--no-plot")
    assert status == 0, err
    ds = load_results(tmp_path / "w" / "result.nc")
    assert ds.sizes["seed"] == 1
    np.testing.assert_allclose(ds["Q_theory"].isel(time=0), ds["Q_simulation"].isel(time=0),
                               rtol=1e-6)


@pytest.mark.parametrize("edit, key", [
    (lambda t: t.replace("bulk = 0.1", "bulk = 0.1\nbluk = 2"), "data.bluk"),
    (lambda t: t.replace('activation = "erf"', 'activation = "swish"'), "model.activation"),
    (lambda t: t.replace("lr = 1.0", "lr = nan"), "train.lr"),
    (lambda t: t.replace("K = 2", "K = 60"), "model.K"),
])
def test_config_errors_exit_2_naming_file_and_key(tiny, edit, key, capsys):
    tiny.write_text(edit(TINY))
    status, _, err = odesolve_here(capsys, "run", tiny, "--out", tiny.parent / "never")
    assert status == 2
    assert err.startswith(f"odesolve: error: {tiny}: {key}: ")
    assert not (tiny.parent / "never").exists()


def test_bad_override_and_missing_files(tiny, tmp_path, capsys):
    status, _, err = odesolve_here(capsys, "run", tiny, "--set", "lr=fast")
    assert status == 2 and "train.lr: expected float" in err
    status, _, err = odesolve_here(capsys, "plot", tmp_path / "nothing.nc")
    assert status == 2 and "no such results file" in err
    status, _, err = odesolve_here(capsys, "run", tmp_path / "nothing.toml")
    assert status == 2 and "no such file" in err
    status, _, err = odesolve_here(capsys, "sweep", tiny, "--grid", "lr")
    assert status == 2 and "expected KEY=VALUE1,VALUE2" in err


def test_version_and_figure_list(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("odesolve ")
    status, out, _ = odesolve_here(capsys, "figure", "list")
    assert status == 0
    for name in ("sequential-pcs", "tied-untied", "relu-bias", "exact-pcs", "images", "limits"):
        assert name in out


@pytest.mark.slow
def test_sweep_2x2_on_a_local_cluster_and_restart(tiny, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", tiny, "--grid", "lr=0.5,1", "--grid", "K=1,2", "--out", sweep_dir,
            "--workers", "2", "--set", "seeds=1"]
    first = odesolve(*args)
    assert first.returncode == 0, first.stderr
    assert "4 points computed, 0 from the cache" in first.stdout
    ds = load_results(sweep_dir / "sweep.nc")
    assert ds["error_theory"].dims == ("lr", "K", "seed", "time")
    assert list(ds["lr"].values) == [0.5, 1.0] and list(ds["K"].values) == [1, 2]
    assert np.all(np.isfinite(ds["error_theory"])) and np.all(np.isfinite(ds["error_simulation"]))
    # one unit: the second unit's order parameters are padding
    assert np.all(np.isnan(ds["Q_theory"].sel(K=1, unit=1)))
    cached = sorted((sweep_dir / "points").glob("*.nc"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert len(cached) == 4

    status, out, err = odesolve_here(capsys, *args)  # restart: everything is cached
    assert status == 0, err
    assert "0 points computed, 4 from the cache" in out
    assert (sweep_dir / "sweep.png").stat().st_size > 10_000
    status, _, err = odesolve_here(capsys, "plot", sweep_dir / "sweep.nc")
    assert status == 0, err
    assert [p.stat().st_mtime_ns for p in cached] == stamps
