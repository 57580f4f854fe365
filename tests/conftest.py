"""Shared fixtures: the repository root, a tiny configuration, a generated-code cache.

Tests are grouped by pipeline stage (``spec/``, ``derive/``, ``theory/``, ``simulations/``,
``workflow/``, ``limits/``).  Tests that take more than a few seconds are marked
``@pytest.mark.slow``; ``pytest -m "not slow"`` is the fast subset.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

#: Root of the repository (examples/, docs/, README.md).
ROOT = Path(__file__).resolve().parents[1]

#: A tiny spiked configuration (D = 60, K = 2, erf): runs in a second.  ``{seeds}`` is
#: the number of simulated seeds.
TINY_CONFIG = """
[data]
kind = "spiked"
D = 60
spikes = [2.0, 1.0]
bulk = 0.1
[model]
K = 2
activation = "erf"
[train]
lr = 1.0
t_max = 4.0
n_times = 12
[simulation]
seeds = {seeds}
n_test = 400
"""


_OWN_CACHE = []


def pytest_configure(config):
    # generated code goes to a cache of this test run unless the caller chose one (CI
    # chooses a fresh folder; developers may keep a warm one between runs)
    if "ODESOLVE_CACHE" not in os.environ:
        _OWN_CACHE.append(tempfile.mkdtemp(prefix="odesolve-cache-"))
        os.environ["ODESOLVE_CACHE"] = _OWN_CACHE[0]


def pytest_unconfigure(config):
    for folder in _OWN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tiny_config(tmp_path):
    """Write the tiny configuration (two simulated seeds) and return its path."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_CONFIG.format(seeds=2))
    return path


@pytest.fixture
def subprocess_env():
    """Environment for ``python -m odesolve...`` subprocesses that import this tree."""
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                          if p)}
