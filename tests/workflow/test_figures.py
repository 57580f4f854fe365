"""Every paper figure, drawn at reduced size (small D, two seeds): a non-empty PNG whose
texts all lie inside the figure and whose legends cover no data."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from odesolve.testing.layout import layout_problems
from odesolve.workflow.cli import FIGURES
from odesolve.workflow.plotting import save_figure

pytestmark = pytest.mark.slow  # minutes on 2 cores; not in the fast subset



@pytest.mark.parametrize("name", [n for n in FIGURES if n != "limits"])
def test_figure_quick(name, tmp_path):
    module = importlib.import_module(FIGURES[name][0])
    fig = module.figure(quick=True)
    assert layout_problems(fig) == []
    path = save_figure(fig, tmp_path / f"{module.NAME}.png")
    assert path.stat().st_size > 20_000


def test_limits_figure_through_the_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "odesolve.workflow.cli", "figure", "6", "--quick",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().split("wrote ")[-1])
    assert path.exists() and path.stat().st_size > 10_000
