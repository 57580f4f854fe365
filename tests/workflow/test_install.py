"""The README's own install path: a non-editable ``pip install .`` ships everything a
figure needs (the figure modules, the example configurations, the code templates), and
``odesolve figure`` then works from any directory."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_non_editable_install_draws_a_figure_from_another_directory(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--target", str(target), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    installed = target / "odesolve"
    for part in ("figures/sequential_pcs.py", "examples/sequential_pcs.toml",
                 "codegen/templates/family.py.tmpl"):
        assert (installed / part).is_file(), f"{part} is missing from the installed package"
    assert not (target / "figures").exists(), "no generic top-level 'figures' package"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # only the installed copy is importable: the source tree is neither the cwd nor on the path
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "MPLBACKEND": "Agg",
           "HOME": str(tmp_path), "ODESOLVE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "odesolve.workflow.cli", "figure", "1",
                           "--quick", "--quiet", "--out", str(tmp_path / "out")],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    # the first run of a fresh installation compiles the flow kernels, and says so once
    assert "compiling the flow kernels" in done.stderr
    env["ODESOLVE_CACHE"] = str(tmp_path / "cache2")
    again = subprocess.run([sys.executable, "-c", "from odesolve import Autoencoder, "
                            "compile_model; compile_model(Autoencoder(K=1, activation='erf'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "deriving and compiling" in again.stderr
    assert "compiling the flow kernels" not in again.stderr
    path = Path(done.stdout.strip().split("wrote ")[-1])
    assert path.is_file() and str(path).startswith(str(tmp_path / "out"))
    where = subprocess.run([sys.executable, "-c", "import odesolve; print(odesolve.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target))
