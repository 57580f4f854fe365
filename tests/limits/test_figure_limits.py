"""The fundamental-limits figure draws at reduced size: a non-empty PNG."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

pytestmark = pytest.mark.slow  # minutes on 2 cores; not in the fast subset



def test_fundamental_limits_figure_quick(tmp_path):
    module = importlib.import_module("odesolve.figures.fundamental_limits")
    with threadpool_limits(limits=1):      # shared machine: no BLAS oversubscription
        path = Path(module.make_figure(tmp_path, quick=True))
    assert path == tmp_path / "fundamental_limits.png"
    assert path.stat().st_size > 20_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
