"""Benchmark of the theory engine (run: ``python -m benchmarks.bench_theory [--quick]``).

Rows (every ratio is between two timings of the same run):

* one curve, erf, K = 2 and 5, five spikes, D = 1000, t from 0 to 10⁴ —
  *cold*: derivation + code generation + numba compilation + integration (LSODA) in a fresh
  process with an empty odesolve cache folder (includes Python start-up and imports; the
  flow kernels, compiled once per installation, come from numba's cache: a new family on
  an installed package, see benchmarks/bench_engine.py for the first run after installing);
  *warm*: integration time of the same curve in a fresh process whose generated module is
  cached on disk (includes loading the cached machine code at the first call), LSODA (the
  default at this size) and RK45 (the long-time erf regime is stiff: the explicit RK45
  needs many more steps there);
  *published scheme*: Euler steps dt = 1/D with a plain numpy right-hand side
  (``odesolve/testing/published_scheme.py``), timed over a slice of its 10⁷ steps and extrapolated;
* all modes of a real spectrum: the covariance of 32×32 grayscale patches of natural
  photographs (``odesolve.spec.images.photo_patches``, CIFAR-like, offline), D = 1024
  eigenvalues, each its own mode, K = 5, t = 10³, warm with the default method (CVODE at
  this size) and the published scheme (extrapolated); LSODA is left out there: it switches
  to its stiff mode and builds finite-difference Jacobians of the 2·K·D-dimensional
  state, which takes minutes;
* scaling with K (1…10, five spikes, t = 10⁴): cold and warm time with the default method
  (LSODA up to 400 variables, CVODE above), right-hand-side evaluations and the cost of
  one evaluation;
* scaling with the number of tracked modes (K = 3, t = 10³, the default method,
  synthetic decaying spectrum normalised to tr Ω = D).

:func:`rows` returns the rows ``(group, case, seconds, compared with, ratio)`` for
``run_all.py``; :func:`main` prints them as a table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from odesolve.testing.tables import format_table

HERE = Path(__file__).resolve().parent

SPIKES = [2.0, 1.5, 1.0, 0.7, 0.5]
D_SPIKED = 1000
T_CURVE = 1e4

_ONE_CURVE = """
import time
t0 = time.perf_counter()
from odesolve import Autoencoder, State, integrate, spiked_covariance
spec = spiked_covariance(D={D}, spikes={spikes}, bulk=0.05)
state = State.random(Autoencoder(K={K}, activation="erf"), spec, seed=0)
traj = integrate(state, 1.0, {t_max}, method="{method}")
print(time.perf_counter() - t0, traj.wall_time, traj.nfev, traj.error[-1])
"""


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def curve_in_subprocess(K, cache, t_max=T_CURVE, method="LSODA", blas_threads=None):
    """(total seconds incl. start-up, integration seconds, RHS evaluations, final error),
    measured in a new process with ``ODESOLVE_CACHE=cache`` (and ``blas_threads`` BLAS
    threads if given; otherwise the environment's setting)."""
    env = dict(os.environ, ODESOLVE_CACHE=str(cache))
    if blas_threads is not None:
        env.update({v: str(blas_threads) for v in BLAS_THREAD_VARIABLES})
    code = _ONE_CURVE.format(D=D_SPIKED, spikes=SPIKES, K=K,
                             t_max=t_max, method=method)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    total, wall, nfev, err = map(float, out)
    return total, wall, int(nfev), err


def reference_time(K, s, t_max, D, timed_steps=20_000, seed=0, bulk=True):
    """Seconds the published scheme (Euler 1/D, numpy RHS) needs for ``t_max``,
    extrapolated from ``timed_steps`` steps; and the number of steps it needs."""
    from odesolve.testing.published_scheme import euler_reference
    rng = np.random.default_rng(seed)
    s = np.asarray(s, dtype=float)
    A = rng.normal(0, 0.1, (K, len(s)))
    B = rng.normal(0, 0.1 / np.sqrt(D), (K, len(s)))
    QB, T0B = 0.05 * 0.01 * np.eye(K), 0.01 * np.eye(K)
    if not bulk:                                    # all modes tracked: no bulk aggregates
        QB, T0B = np.zeros((K, K)), np.zeros((K, K))
    start = time.perf_counter()
    euler_reference(A, B, s, QB, T0B, 1.0, t_max, D, n_steps=timed_steps)
    per_step = (time.perf_counter() - start) / timed_steps
    steps = int(round(t_max * D))
    return per_step * steps, steps


def warm_run(model_kwargs, spec, t_max, repeats=1, method="LSODA"):
    """(best seconds, RHS evaluations, method run) of repeated integrations after a first
    call."""
    from odesolve import Autoencoder, State, integrate
    state = State.random(Autoencoder(**model_kwargs), spec, seed=0)
    integrate(state, 1.0, t_max, method=method)       # compile / load
    best, nfev = np.inf, 0
    for _ in range(repeats):
        start = time.perf_counter()
        traj = integrate(state, 1.0, t_max, method=method)
        best, nfev = min(best, time.perf_counter() - start), traj.nfev
    return best, nfev, traj.method


def real_like_spectrum(n, seed=0):
    """n eigenvalues ~ squared exponentials, normalised to mean 1 (a decaying spectrum)."""
    from odesolve import given_spectrum
    rng = np.random.default_rng(seed)
    eig = np.sort(rng.exponential(1.0, n) ** 2)[::-1]
    return given_spectrum(eig * n / eig.sum())


def image_spectrum(side: int):
    """(spectrum, description): all ``side²`` modes of the covariance of grayscale
    ``side × side`` patches of scikit-image's photographs (``odesolve.spec.images``, offline,
    CIFAR-like)."""
    from odesolve.spec.images import photo_patches
    return (photo_patches(side, n_patches=10000).spectrum(),
            f"spectrum of {side}×{side} grayscale photo patches")


def rows(quick: bool = False, log=None):
    """The benchmark rows ``(group, case, seconds, compared with, ratio)``."""
    from odesolve import spiked_covariance
    log = log or (lambda msg: None)
    out = []
    curve = f"erf, 5 spikes, D={D_SPIKED}, t=1e4"
    # a fresh cache per K: one compiled module serves every K of a family, so K = 5 in
    # K = 2's cache would not be a cold start
    for K in (2, 5):
        with tempfile.TemporaryDirectory() as cache:
            log(f"one curve K={K}")
            cold, _, _, _ = curve_in_subprocess(K, cache)
            _, warm, nfev, _ = curve_in_subprocess(K, cache)
            _, warm_rk, nfev_rk, _ = curve_in_subprocess(K, cache, method="RK45")
            blas = []
            if K == 5 and (os.cpu_count() or 1) > 1:
                n = os.cpu_count()
                _, warm_mt, nfev_mt, _ = curve_in_subprocess(K, cache, blas_threads=n)
                blas = [(f"one curve, K={K}", f"warm, LSODA, {n} BLAS threads instead of "
                         f"{os.environ.get('OPENBLAS_NUM_THREADS', 'the default')} "
                         f"({nfev_mt} RHS evaluations)", warm_mt, f"{n} / 1 BLAS threads",
                         warm_mt / warm)]
            ref, steps = reference_time(K, SPIKES, T_CURVE, D_SPIKED,
                                        timed_steps=5_000 if quick else 20_000)
            g = f"one curve, K={K}"
            out += [
                (g, f"{curve}: cold (derive + codegen + compile + LSODA, fresh process, "
                    "empty odesolve cache)", cold, "", None),
                (g, f"warm, LSODA ({nfev} RHS evaluations)", warm, "cold / warm LSODA",
                 cold / warm),
                (g, f"warm, RK45 ({nfev_rk} RHS evaluations)", warm_rk, "RK45 / LSODA",
                 warm_rk / warm),
                (g, f"published scheme: Euler dt=1/D, numpy RHS, {steps:.1e} steps "
                    "(extrapolated)", ref, "published / warm LSODA", ref / warm),
            ] + blas
    log("all modes")
    n_all = 256 if quick else 1024
    spec, spec_name = image_spectrum(int(round(np.sqrt(n_all))))
    t_all = 1e2 if quick else 1e3
    # the default method (CVODE at this size): LSODA switches to its stiff mode here and
    # builds finite-difference Jacobians of the 2·K·D-dimensional state (measured once:
    # ~450 s, 2·10⁵ evaluations)
    rk, nfev_rk, used = warm_run(dict(K=5, activation="erf"), spec, t_all, method="auto")
    ref, steps = reference_time(5, spec.s, t_all, spec.D, timed_steps=500 if quick else 2_000,
                                bulk=False)
    g = f"all modes, {spec_name}: D={n_all} eigenvalues, K=5, t={t_all:g}"
    out += [
        (g, f"warm, {used} ({nfev_rk} RHS evaluations, "
            f"{1e6 * rk / max(nfev_rk, 1):.0f} µs each)", rk, "", None),
        (g, f"published scheme: Euler dt=1/D, numpy RHS, {steps:.1e} steps (extrapolated)",
         ref, f"published / warm {used}", ref / rk),
    ]
    spec = spiked_covariance(D_SPIKED, SPIKES, 0.05)
    base = None
    Ks = (1, 2, 5) if quick else (1, 2, 3, 5, 7, 10)
    for K in Ks:
        log(f"K scaling K={K}")
        with tempfile.TemporaryDirectory() as cache:
            cold, _, _, _ = curve_in_subprocess(K, cache, t_max=1.0)
        warm, nfev, used = warm_run(dict(K=K, activation="erf"), spec, T_CURVE, method="auto")
        base = base or warm
        g = f"scaling with K ({curve})"
        out += [(g, f"K={K}: cold start (fresh process, empty odesolve cache, t=1)", cold, "", None),
                (g, f"K={K}: warm {used}, {nfev} RHS evaluations, "
                    f"{1e6 * warm / max(nfev, 1):.0f} µs per evaluation", warm,
                 "vs K=1 (warm)", warm / base)]
    base = None
    rng_modes = (16, 256) if quick else (16, 64, 256, 1024, 4096)
    for n in rng_modes:
        log(f"modes scaling n={n}")
        warm, nfev, used = warm_run(dict(K=3, activation="erf"), real_like_spectrum(n), 1e3,
                                    method="auto")
        base = base or warm
        out.append(("scaling with tracked modes (erf, K=3, t=1e3, synthetic spectrum)",
                    f"{n} modes: warm {used}, {nfev} RHS evaluations, "
                    f"{1e6 * warm / max(nfev, 1):.0f} µs per evaluation", warm,
                    f"vs {rng_modes[0]} modes", warm / base))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    print(format_table(rows(args.quick, log=lambda m: print(f"  [{m}]", file=sys.stderr))))


if __name__ == "__main__":
    main()
