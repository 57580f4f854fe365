"""What the figure scripts share: their configurations, runs, and command line.

Every figure is built from the example configurations in ``examples/`` and the single
experiment runner :func:`odesolve.workflow.experiment.run_experiment` (theory for every seed,
SGD from the same initial weights), so a figure shows exactly what
``odesolve run examples/NAME.toml`` computes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from odesolve.workflow.config import Config, load_config
from odesolve.workflow.experiment import run_experiment
from odesolve.workflow.plotting import save_figure

__all__ = ["EXAMPLES", "QUICK", "example_config", "run", "save", "main"]

#: Directory of the example configurations.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: Reduced size used by ``quick=True`` (the test suite): small D and two seeds, but the
#: time grid of the full figures, so that the theory lines stay smooth on the log axis
#: (the markers show the exact error of the simulated weights, which needs no test set;
#: the Monte-Carlo test error, a figure option, uses ``n_test`` held-out samples).
QUICK = {"simulation.seeds": 2, "simulation.n_test": 400, "train.n_times": 80}
QUICK_D = 100


def example_config(name: str, quick: bool = False, **overrides) -> Config:
    """``examples/{name}.toml`` with ``overrides`` (see :meth:`Config.with_overrides`).

    ``quick`` also applies :data:`QUICK` and, for data with a free dimension, D = 100.
    """
    config = load_config(EXAMPLES / f"{name}.toml")
    changes = {}
    if quick:
        changes.update(QUICK)
        if config.data.kind in ("spiked", "sinusoidal"):
            changes["data.D"] = QUICK_D
    changes.update(overrides)
    return config.with_overrides(changes) if changes else config


def run(config: Config, progress: bool = False):
    """Theory for every seed and SGD for every seed: the results dataset."""
    return run_experiment(config, progress=progress)


def save(fig, out_dir, name: str) -> Path:
    """Save ``fig`` as ``out_dir/name.png``."""
    return save_figure(fig, Path(out_dir) / f"{name}.png")


def main(make_figure, description: str) -> None:
    """Command line of a figure script: ``--out DIR``, ``--quick``, ``--quiet``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path("results/figures"),
                        help="output directory (default: results/figures)")
    parser.add_argument("--quick", action="store_true", help="reduced size (seconds)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    start = time.perf_counter()
    path = make_figure(args.out, quick=args.quick, progress=not args.quiet)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
