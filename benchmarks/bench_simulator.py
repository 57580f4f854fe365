"""Benchmark of the SGD simulator; prints tables (run: python -m benchmarks.bench_simulator).

Throughput in SGD steps per second (one step = one fresh Gaussian input and one update),
erf activation, untied vanilla SGD, two spikes plus bulk, everything on one core
(BLAS limited to one thread; the compiled loop is serial, the inputs are drawn on a
second thread):

  implementations, D = 1000, K = 5 —
    simulations.simulate: the compiled online loop, inputs drawn in chunks (recording at
        the start and the end only, 10 test samples);
    numpy loop: the same update written here with numpy, one sample at a time, inputs
        drawn in the same chunks (checked to reproduce simulate's weights);
    torch loop: the same update with torch tensors (float64, CPU), one sample at a time
        (row skipped when torch is not installed);
    torch autograd loop: how a PyTorch user (and the published reference code) trains:
        the loss of one sample, ``backward()`` and ``torch.optim.SGD`` with the encoder and
        decoder rates of the spec as two parameter groups (skipped without torch);
    drawing only: just rng.standard_normal of the same chunks times √ρ, i.e. the ceiling
        any implementation drawing its inputs this way can reach;
  then the scaling of simulate with D (250 … 8000, K = 5) and with K (1 … 10, D = 1000).

Each row runs for about a fixed wall time after a warm-up (kernel compiled or loaded
from the cache beforehand), so the numbers are throughputs, not start-up costs.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.special import erf
from threadpoolctl import threadpool_limits


SPIKES = [2.0, 1.0]
BULK = 0.2
LR = 1.0
SCALE = 0.1
INV_SQRT2 = 1.0 / np.sqrt(2.0)


def _spectrum(D):
    from odesolve import spiked_covariance
    return spiked_covariance(D, SPIKES, BULK)


def _chunk_rows(D):
    from simulations.online import CHUNK_VALUES
    return max(1, min(4096, CHUNK_VALUES // D))


def _rate(run, seconds, first=2000):
    """Steps per second of ``run(n_steps)`` (which returns its own wall time), measured
    over about ``seconds`` after a calibration run of ``first`` steps."""
    wall = run(first)
    steps = max(first, int(first * seconds / max(wall, 1e-9)))
    return steps / run(steps), steps


# --------------------------------------------------------------------------- #
# The implementations
# --------------------------------------------------------------------------- #
def simulate_runner(D, K):
    from odesolve import Autoencoder
    from simulations import simulate
    spec, model = _spectrum(D), Autoencoder(K=K, activation="erf")
    simulate(model, spec, LR, 10 / D, times=[0.0], n_test=10)          # compile / load

    def run(n_steps):
        res = simulate(model, spec, LR, n_steps / D, seed=0, times=[0.0, n_steps / D],
                       n_test=10)
        return res.wall_time

    return run


def numpy_sgd(D, K, n_steps, seed=0):
    """Plain numpy online SGD (untied, erf), one sample at a time.

    The same stream as ``simulate(seed)``: initial weights first, then the inputs in
    chunks of ``_chunk_rows(D)``; returns ``(W, V, seconds of the loop)``.
    """
    sqrt_rho = np.sqrt(_spectrum(D).all_eigenvalues)
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, SCALE, (K, D))
    V = rng.normal(0.0, SCALE, (K, D))
    rows, a, inv_sqrt_d = _chunk_rows(D), LR / D, 1.0 / np.sqrt(D)
    c_gp = np.sqrt(2 / np.pi)
    buffer = np.empty((rows, D))
    start = time.perf_counter()
    done = 0
    while done < n_steps:
        n = min(rows, n_steps - done)
        X = rng.standard_normal(out=buffer[:n])
        X *= sqrt_rho
        for x in X:
            lam = (W @ x) * inv_sqrt_d
            g = erf(lam * INV_SQRT2)
            e = x - g @ V
            c = (V @ e) * (c_gp / D) * np.exp(-0.5 * lam * lam)
            W += np.outer(c * (a * inv_sqrt_d), x)
            V += np.outer(g * a, e)
        done += n
    return W, V, time.perf_counter() - start


def numpy_runner(D, K):
    return lambda n_steps: numpy_sgd(D, K, n_steps)[2]


def _torch(D):
    """``(torch, √ρ as a tensor, chunk rows)`` on one thread, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch, torch.from_numpy(np.sqrt(_spectrum(D).all_eigenvalues)), _chunk_rows(D)


def torch_runner(D, K):
    """The same loop with torch tensors, or None when torch is not installed."""
    if (found := _torch(D)) is None:
        return None
    torch, sqrt_rho, rows = found
    a, inv_sqrt_d = LR / D, 1.0 / np.sqrt(D)
    c_gp = np.sqrt(2 / np.pi)

    def run(n_steps):
        gen = torch.Generator().manual_seed(0)
        W = torch.randn(K, D, generator=gen, dtype=torch.float64) * SCALE
        V = torch.randn(K, D, generator=gen, dtype=torch.float64) * SCALE
        start = time.perf_counter()
        with torch.no_grad():
            done = 0
            while done < n_steps:
                n = min(rows, n_steps - done)
                X = torch.randn(n, D, generator=gen, dtype=torch.float64) * sqrt_rho
                for x in X:
                    lam = (W @ x) * inv_sqrt_d
                    g = torch.special.erf(lam * INV_SQRT2)
                    e = x - g @ V
                    c = (V @ e) * (c_gp / D) * torch.exp(-0.5 * lam * lam)
                    W += torch.outer(c * (a * inv_sqrt_d), x)
                    V += torch.outer(g * a, e)
                done += n
        return time.perf_counter() - start

    return run


def torch_autograd_runner(D, K):
    """Per-sample loss, ``backward()`` and ``optim.SGD``, or None without torch."""
    if (found := _torch(D)) is None:
        return None
    torch, sqrt_rho, rows = found

    def run(n_steps):
        gen = torch.Generator().manual_seed(0)
        W = (torch.randn(K, D, generator=gen, dtype=torch.float64) * SCALE).requires_grad_()
        V = (torch.randn(K, D, generator=gen, dtype=torch.float64) * SCALE).requires_grad_()
        # ℓ = ‖x − x̂‖²/(2D): encoder step η/D·∇_W ℓ, decoder step η·∇_V ℓ (the spec's rates)
        optimiser = torch.optim.SGD([{"params": [W], "lr": LR / D}, {"params": [V], "lr": LR}])
        start = time.perf_counter()
        done = 0
        while done < n_steps:
            n = min(rows, n_steps - done)
            X = torch.randn(n, D, generator=gen, dtype=torch.float64) * sqrt_rho
            for x in X:
                optimiser.zero_grad()
                g = torch.special.erf((W @ x) / np.sqrt(D) * INV_SQRT2)
                loss = ((x - g @ V) ** 2).sum() / (2 * D)
                loss.backward()
                optimiser.step()
            done += n
        return time.perf_counter() - start

    return run


def draw_runner(D):
    """Only the inputs: ``rng.standard_normal`` into the same chunks, times √ρ."""
    sqrt_rho = np.sqrt(_spectrum(D).all_eigenvalues)
    rows = _chunk_rows(D)
    buffer = np.empty((rows, D))

    def run(n_steps):
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        done = 0
        while done < n_steps:
            n = min(rows, n_steps - done)
            rng.standard_normal(out=buffer[:n])
            buffer[:n] *= sqrt_rho
            done += n
        return time.perf_counter() - start

    return run


def check_numpy_matches_simulate(D=1000, K=5, n_steps=300):
    """Largest relative difference of the final weights of the numpy loop and simulate."""
    from odesolve import Autoencoder
    from simulations import simulate
    res = simulate(Autoencoder(K=K, activation="erf"), _spectrum(D), LR, n_steps / D, seed=0,
                   times=[0.0], n_test=10)
    W, V, _ = numpy_sgd(D, K, n_steps)
    return max(np.abs(W - res.W).max() / np.abs(res.W).max(),
               np.abs(V - res.V).max() / np.abs(res.V).max())


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #
def main(argv=None):
    """Print the tables; return their rows as a list of dicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="shorter timings and fewer sizes in the scaling tables")
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else 3.0
    loops_seconds = 0.5 if args.quick else 2.0
    rows = []
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {np.__version__}; BLAS limited to 1 thread")
    with threadpool_limits(limits=1):
        D, K = 1000, 5
        mismatch = check_numpy_matches_simulate(D, K)
        print(f"\nerf, untied, D = {D}, K = {K}, spikes {SPIKES}, bulk {BULK}, η = {LR} "
              f"(numpy loop reproduces simulate to {mismatch:.1e} relative)")
        print(f"{'implementation':<28}{'steps/s':>12}{'µs/step':>10}{'simulate / this':>17}"
              f"{'steps timed':>13}")
        runners = [("simulations.simulate", simulate_runner(D, K)),
                   ("numpy per-sample loop", numpy_runner(D, K)),
                   ("torch per-sample loop", torch_runner(D, K)),
                   ("torch autograd + optim.SGD", torch_autograd_runner(D, K)),
                   ("drawing inputs only", draw_runner(D))]
        base = None
        for name, runner in runners:
            if runner is None:
                print(f"{name:<28}{'(torch not installed: skipped)':>52}")
                continue
            rate, steps = _rate(runner, seconds if name.startswith(("sim", "draw"))
                                else loops_seconds)
            base = rate if base is None else base
            rows.append(dict(table="implementations", case=name, D=D, K=K, steps_per_s=rate,
                             ratio=base / rate, steps=steps))
            print(f"{name:<28}{rate:>12,.0f}{1e6 / rate:>10.2f}{base / rate:>17.2f}{steps:>13,}")
        draw = rows[-1]["steps_per_s"]
        print(f"(drawing the inputs takes {base / draw:.0%} of simulate's time per step)")

        dims = (250, 1000, 4000) if args.quick else (250, 500, 1000, 2000, 4000, 8000)
        print(f"\nsimulate, erf, K = 5: scaling with D\n{'D':>6}{'steps/s':>12}{'µs/step':>10}"
              f"{'ns/(step·K·D)':>15}{'draw only':>12}{'draw share':>12}")
        for D in dims:
            rate, steps = _rate(simulate_runner(D, 5), seconds)
            draw, _ = _rate(draw_runner(D), seconds / 3)
            rows.append(dict(table="scaling D", case="simulate", D=D, K=5, steps_per_s=rate,
                             draw_steps_per_s=draw, steps=steps))
            print(f"{D:>6}{rate:>12,.0f}{1e6 / rate:>10.2f}{1e9 / (rate * 5 * D):>15.3f}"
                  f"{draw:>12,.0f}{rate / draw:>12.0%}")

        ks = (1, 5, 10) if args.quick else (1, 2, 5, 10)
        print(f"\nsimulate, erf, D = 1000: scaling with K\n{'K':>6}{'steps/s':>12}"
              f"{'µs/step':>10}{'ns/(step·K·D)':>15}")
        for K in ks:
            rate, steps = _rate(simulate_runner(1000, K), seconds)
            rows.append(dict(table="scaling K", case="simulate", D=1000, K=K,
                             steps_per_s=rate, steps=steps))
            print(f"{K:>6}{rate:>12,.0f}{1e6 / rate:>10.2f}{1e9 / (rate * K * 1000):>15.3f}")
    return rows


if __name__ == "__main__":
    main()
