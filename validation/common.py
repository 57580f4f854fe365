"""Helpers shared by the validation scripts: paths, markdown tables, fits, file output."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from odesolve.testing.tables import cpu_and_cores, fmt, machine, md_table

__all__ = ["cpu_and_cores", "fmt", "machine", "md_table", "power_law_fit", "expected_max_abs_normal",
           "atomic_write", "save_figure", "stopwatch", "script_main", "HERE", "ROOT"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))   # E[g'(0)] for g(x) = erf(x/√2)


def power_law_fit(x, y):
    """Least-squares fit ``log y = p log x + c``; returns ``(p, c, standard error of p)``."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    A = np.vstack([lx, np.ones_like(lx)]).T
    coef, res, *_ = np.linalg.lstsq(A, ly, rcond=None)
    n = len(lx)
    if n > 2:
        sigma2 = float(np.sum((ly - A @ coef) ** 2)) / (n - 2)
        se = float(np.sqrt(sigma2 / np.sum((lx - lx.mean()) ** 2)))
    else:
        se = float("nan")
    return float(coef[0]), float(coef[1]), se


def expected_max_abs_normal(n: int) -> float:
    """Median of the largest |z| among ``n`` independent standard normals."""
    from scipy.stats import norm
    return float(norm.ppf(0.5 * (1.0 + 0.5 ** (1.0 / max(n, 1)))))


def atomic_write(path, data) -> Path:
    """Write text or bytes to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)            # mkstemp creates 0600: use the usual mode
        os.replace(tmp, path)
    except BaseException:
        with _quiet():
            os.unlink(tmp)
        raise
    return path


def save_figure(fig, path) -> Path:
    """Save a matplotlib figure atomically as PNG."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


@contextmanager
def _quiet():
    try:
        yield
    except OSError:
        pass


@contextmanager
def stopwatch():
    """``with stopwatch() as elapsed: ...; elapsed()`` gives seconds since entry."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def script_main(main, description: str, argv=None) -> None:
    """Command line of a validation script: print ``main(quick)``'s markdown."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args(argv)
    print(main(quick=args.quick))
