"""The fundamental-limits figure draws at reduced size: a non-empty PNG, every text
inside the figure and no legend on the data."""
from __future__ import annotations

import importlib

import pytest
from threadpoolctl import threadpool_limits

from odesolve.testing.layout import layout_problems
from odesolve.workflow.plotting import save_figure

pytestmark = pytest.mark.slow  # minutes on 2 cores; not in the fast subset



def test_fundamental_limits_figure_quick(tmp_path):
    module = importlib.import_module("odesolve.figures.fundamental_limits")
    with threadpool_limits(limits=1):      # shared machine: no BLAS oversubscription
        fig = module.figure(quick=True)
    assert layout_problems(fig, dpi=module.DPI) == []
    # the water-filling curve is the Gaussian prediction, not a limit for the images
    labels = [t.get_text() for ax in fig.axes if ax.get_legend()
              for t in ax.get_legend().get_texts()]
    water = [label for label in labels if "water-filling" in label]
    assert water and all("Gaussian prediction" in label and "limit" not in label
                         for label in water)
    path = save_figure(fig, tmp_path / "fundamental_limits.png", dpi=module.DPI)
    assert path.stat().st_size > 20_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
