"""Benchmark of the theory engine; prints one table (run: python benchmarks/bench_theory.py).

Rows: erf, K = 2 and 5, five spikes, t from 0 to 10⁴ —
  cold: derivation + code generation + numba compilation + integration (LSODA), in a fresh
        process with an empty cache folder (includes Python start-up and imports);
  warm: integration time of the same curve in a new process whose generated module is
        cached on disk (includes loading the cached machine code at the first call), with
        LSODA and with the default RK45 (the long-time erf regime is stiff: RK45 needs
        ~100× more right-hand-side evaluations there);
  reference: the published scheme (Euler, dt = 1/D at D = 1000, plain numpy RHS written
        for this benchmark, `reference_scheme.py`), timed over a slice of its 10⁷ steps and
        extrapolated (labelled so);
then the all-modes case (D = 1024 eigenvalues, K = 5, t = 10³) and the scaling of the warm
cost (LSODA, repeated in one process after a first call) with K (1…10) and with the
number of tracked modes.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPIKES = [2.0, 1.5, 1.0, 0.7, 0.5]

_ONE_CURVE = """
import time, sys
t0 = time.perf_counter()
from odesolve import Autoencoder, State, integrate, spiked_covariance
spec = spiked_covariance(D=1000, spikes={spikes}, bulk=0.05)
state = State.random(Autoencoder(K={K}, activation="erf"), spec, seed=0)
traj = integrate(state, 1.0, {t_max}, method="{method}")
print(time.perf_counter() - t0, traj.wall_time, traj.error[-1])
"""


def curve_in_subprocess(K, cache, t_max=1e4, method="LSODA"):
    """(total seconds incl. imports, integration seconds, final error) in a new process."""
    env = dict(os.environ, ODESOLVE_CACHE=str(cache))
    code = _ONE_CURVE.format(spikes=SPIKES, K=K, t_max=t_max, method=method)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return tuple(map(float, out))


def reference_time(K, t_max=1e4, D=1000, timed_steps=20_000):
    sys.path.insert(0, str(HERE))
    from reference_scheme import euler_reference
    rng = np.random.default_rng(0)
    s = np.array(SPIKES)
    A = rng.normal(0, 0.1, (K, len(s)))
    B = rng.normal(0, 0.1 / np.sqrt(D), (K, len(s)))
    QB, T0B = 0.05 * 0.01 * np.eye(K), 0.01 * np.eye(K)
    start = time.perf_counter()
    euler_reference(A, B, s, QB, T0B, 1.0, t_max, D, n_steps=timed_steps)
    per_step = (time.perf_counter() - start) / timed_steps
    return per_step * t_max * D


def warm_time(model_kwargs, spec, t_max, repeats=3, method="LSODA"):
    from odesolve import Autoencoder, State, integrate
    state = State.random(Autoencoder(**model_kwargs), spec, seed=0)
    integrate(state, 1.0, t_max, method=method)       # compile / load
    best = min(_timed(lambda: integrate(state, 1.0, t_max, method=method))
               for _ in range(repeats))
    return best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller scaling sweeps")
    args = parser.parse_args(argv)
    from odesolve import given_spectrum, spiked_covariance

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"\n{'case':<32}{'cold [s]':>10}{'warm LSODA [s]':>16}{'warm RK45 [s]':>15}"
          f"{'reference [s]':>16}{'ref/warm LSODA':>16}{'ref/warm RK45':>15}")
    with tempfile.TemporaryDirectory() as cache:
        for K in (2, 5):
            cold_total, _, err = curve_in_subprocess(K, cache)
            _, warm_lsoda, _ = curve_in_subprocess(K, cache)
            _, warm_rk45, _ = curve_in_subprocess(K, cache, method="RK45")
            ref = reference_time(K)
            print(f"{'erf K=%d, 5 spikes, t=1e4' % K:<32}{cold_total:>10.2f}{warm_lsoda:>16.3f}"
                  f"{warm_rk45:>15.2f}{ref:>13.0f} (x){ref / warm_lsoda:>16.0f}"
                  f"{ref / warm_rk45:>15.0f}")
    print("(x) extrapolated from 20 000 timed Euler steps of the 10^7 the scheme needs")

    rng = np.random.default_rng(0)
    eigenvalues = np.sort(rng.exponential(1.0, 1024) ** 2)[::-1]
    spec = given_spectrum(eigenvalues * 1024 / eigenvalues.sum())
    t_all = warm_time(dict(K=5, activation="erf"), spec, 1e3, repeats=1)
    t_all_rk = warm_time(dict(K=5, activation="erf"), spec, 1e3, repeats=1, method="RK45")
    print(f"\nall modes, D = 1024 eigenvalues, K = 5, t = 1e3: {t_all:.2f} s (warm, LSODA), "
          f"{t_all_rk:.2f} s (warm, RK45)")

    print(f"\n{'K':>4}{'warm LSODA [s], 5 spikes, t=1e4':>34}")
    for K in ((1, 2, 5) if args.quick else (1, 2, 3, 5, 7, 10)):
        spec = spiked_covariance(1000, SPIKES, 0.05)
        print(f"{K:>4}{warm_time(dict(K=K, activation='erf'), spec, 1e4, repeats=1):>34.3f}")
    print(f"\n{'tracked modes':>14}{'warm LSODA [s], K=3, t=1e3':>30}")
    for n in ((16, 256) if args.quick else (16, 64, 256, 1024, 4096)):
        eigen = np.sort(rng.exponential(1.0, n) ** 2)[::-1]
        spec = given_spectrum(eigen * n / eigen.sum())
        print(f"{n:>14}{warm_time(dict(K=3, activation='erf'), spec, 1e3, repeats=1):>30.3f}")


if __name__ == "__main__":
    main()
