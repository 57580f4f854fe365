"""Benchmark of theory engine v2 against the previous engine (issue 9).

Run: ``python -m benchmarks.bench_engine [--baseline PATH] [--quick]``.  ``PATH`` is a
checkout of the engine issue 9 measured (default ``/tmp/baseline``): commit f83e8f7, the
parent of 7e6c209, which replaced its per-K sympy expressions by this engine (later
commits, e.g. f336722, already run this engine).  Its rows are measured in the same
run, in subprocesses that import it instead of this tree.  Rows (erf, K spikes s_k = 1.5·0.7^k, bulk 0.05, D = 1000,
init 0.1, seed 0, unless stated):

* cold start, K = 2, 8, 24, 64: a fresh process with an empty cache folder: imports,
  derivation, code generation, compilation and the first integration to t = 10³ (a new
  family on an installed package: the flow kernels shared by every family,
  odesolve/codegen/kernels.py, come from numba's cache);
* first run after installing, K = 2: the same with numba's cache empty too
  (``NUMBA_CACHE_DIR`` a fresh folder), so the kernels compile as well;
* warm K = 24 to t = 10³ (integration only, cache on disk; median of 5 per process);
* K = 100, 5 spikes + bulk, to t = 10⁴ (warm), with the default method (CVODE at this
  size, odesolve.integrator.cvode); the baseline column is RK45 in this engine (the
  default at this size before CVODE), in the same run;
* all modes, D = 1024 (spiked spectrum, every mode tracked), K = 32, to t = 10³ (warm),
  the same comparison;
* warm K = 2 curve to t = 10⁴ (median of 21);
* warm K = 3 tanh, 3 spikes, to t = 10² (no closed-form pair averages: each is a compiled
  2-D quadrature);
* a batch of 1,000 curves (K = 3, seeds 0…999, t = 10³): ``integrate_batch`` against a
  loop of ``integrate`` (the loop timed over 50 curves and scaled).  ``integrate_batch``
  integrates its members one by one since the stacked system lost this row (39.3 s
  against 28.3 s, 2026-11-30, commit d278eda; odesolve/batch.py): the row now checks that
  the batch call costs what the loop costs.

The warm rows alternate the two columns' processes for :data:`ROUNDS` rounds and report
the median of their medians, with the range in the notes: on a machine shared with other
work the load drifts within minutes (the same warm K = 24 curve took 0.10–0.16 s in
consecutive processes on 2026-12-01), and rounds side by side see the same drift.  The
machine load (1-minute load average before and after) is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from odesolve.testing.tables import md_table, machine

ROOT = Path(__file__).resolve().parents[1]
#: rounds of the warm rows, each one process per column
ROUNDS = 3

#: One measurement, run as ``python -c`` in a fresh process; prints a JSON dict.
_CASE = textwrap.dedent("""
    import json, time, sys
    start = time.perf_counter()
    import numpy as np
    from odesolve import Autoencoder, State, integrate, spiked_covariance
    try:
        from odesolve import compile_model
    except ImportError:
        from odesolve.codegen import compile_model
    K, n_spikes, D, t_max, all_modes, repeat, warmup, method, activation = {args}
    spikes = [1.5 * 0.7 ** k for k in range(n_spikes)]
    spec = spiked_covariance(D, spikes, 0.05)
    if all_modes:
        spec = spec.all_modes()
    model = Autoencoder(K=K, activation=activation)
    state = State.random(model, spec, 0.1, seed=0)
    if warmup:
        compile_model(model)
        integrate(state, 1.0, min(t_max, 1.0), method=method)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        traj = integrate(state, 1.0, t_max, method=method)
        times.append(time.perf_counter() - t0)
    print(json.dumps({{"first": time.perf_counter() - start, "median": sorted(times)[len(times) // 2],
                      "method": traj.method, "nfev": int(traj.nfev),
                      "error": float(traj.error[-1])}}))
""")


def _run(source_root, args, cache, timeout=3000, numba_cache=None):
    env = {**os.environ, "PYTHONPATH": str(source_root), "ODESOLVE_CACHE": str(cache),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    out = subprocess.run([sys.executable, "-c", _CASE.format(args=args)], env=env,
                         capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    if out.returncode:
        return {"failed": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _batch(n_batch=1000, n_loop=50):
    from odesolve import Autoencoder, State, integrate, spiked_covariance
    from odesolve import integrate_batch
    spec = spiked_covariance(1000, [1.5, 1.05, 0.735], 0.05)
    model = Autoencoder(K=3, activation="erf")
    states = [State.random(model, spec, 0.1, seed=s) for s in range(n_batch)]
    integrate(states[0], 1.0, 1.0)                      # compile outside the timings
    t0 = time.perf_counter()
    integrate_batch(states, 1.0, 1e3)
    batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for st in states[:n_loop]:
        integrate(st, 1.0, 1e3)
    loop = (time.perf_counter() - t0) * n_batch / n_loop
    return batch, loop


def _summary(runs, key):
    """One column's result over its processes: a failure if any failed, else the last
    process's result with ``key`` the median over processes (and their range)."""
    failed = [r for r in runs if "failed" in r]
    if failed:
        return failed[0]
    times = sorted(r[key] for r in runs)
    out = dict(runs[-1], **{key: times[len(times) // 2]})
    if len(times) > 1:
        out["spread"] = f"{len(times)} processes {times[0]:.3g}–{times[-1]:.3g} s"
    return out


def rows(baseline: Path, quick: bool = False):
    """``(case, new seconds, previous seconds, ratio previous/new, note)`` rows."""
    out = []

    def both(label, args, cold, timeout=3000, with_baseline=True, method="auto", against=None,
             activation="erf", empty_numba_cache=False):
        """A row: this tree at ``args`` + (method, activation) against the previous engine
        (or, with ``against``, this tree with that method) at the same arguments."""
        old_root = ROOT if against else (baseline if with_baseline else None)
        columns = [(name, root, args + (m, activation)) for name, root, m in
                   (("new", ROOT, method), ("old", old_root, against or "auto")) if root]
        runs = {name: [] for name, _, _ in columns}
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as folder:
            caches = {name: Path(folder, name) for name in runs}
            if not cold:          # fill each cache in a first process, time the next ones
                for name, root, case in columns:
                    _run(root, case[:3] + (1.0, case[4], 1) + case[6:], caches[name], timeout)
            for _ in range(1 if cold else ROUNDS):
                for name, root, case in columns:
                    if runs[name] and "failed" in runs[name][-1]:
                        continue
                    try:
                        runs[name].append(_run(root, case, caches[name], timeout,
                                               caches[name] / "numba" if empty_numba_cache
                                               else None))
                    except subprocess.TimeoutExpired:
                        runs[name].append({"failed": f"over {timeout} s"})
        key = "first" if cold else "median"
        res = {name: _summary(runs[name], key) if name in runs else
               {"failed": "not run (see note)"} for name in ("new", "old")}
        new, old = res["new"].get(key), res["old"].get(key)
        ratio = f"{old / new:.1f}×" if new and old else "—"
        note = "; ".join(f"{n}: {r['failed']}" if "failed" in r else
                         f"{n}: {r['method']}, {r['nfev']} evals, ε = {r['error']:.5f}"
                         + (f", {r['spread']}" if "spread" in r else "")
                         for n, r in res.items())
        out.append((label, new, old, ratio, note))
        print(out[-1], flush=True)

    for K in ((2, 8) if quick else (2, 8, 24, 64)):
        both(f"cold start K = {K} (to t = 10³)", (K, K, 1000, 1e3, False, 1, False), True,
             with_baseline=K <= 24)
    both("first run after installing, K = 2 (numba's cache empty too)",
         (2, 2, 1000, 1e3, False, 1, False), True, empty_numba_cache=True)
    both("warm K = 24 to t = 10³", (24, 24, 1000, 1e3, False, 5, True), False)
    # the previous engine's code took minutes to compile these two; the baseline column
    # is RK45 in this engine, the default for states of this size until CVODE
    both("K = 100, 5 spikes + bulk, to t = 10⁴: auto = CVODE (baseline: RK45, this engine)",
         (100, 5, 1000, 1e4, False, 1, True), False, against="RK45")
    both("all modes D = 1024, K = 32, to t = 10³: auto = CVODE (baseline: RK45, this engine)",
         (32, 5, 1024, 1e3, True, 1, True), False, against="RK45")
    # 5 ms curves on a shared machine: the median of 21 (5 once gave twice the time)
    both("warm K = 2 curve to t = 10⁴", (2, 2, 1000, 1e4, False, 21, True), False)
    both("warm K = 3 tanh (averages by quadrature), 3 spikes, to t = 10²",
         (3, 3, 1000, 1e2, False, 1, True), False, with_baseline=False, activation="tanh")
    batch, loop = _batch(200 if quick else 1000, 20 if quick else 50)
    out.append(("batch of 1,000 curves K = 3 to t = 10³ (integrate_batch vs loop)", batch,
                loop, f"{loop / batch:.1f}×", "loop: integrate per curve (timed on a subset)"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=Path("/tmp/baseline"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    table = rows(args.baseline, args.quick)
    load_after = os.getloadavg()[0]
    print(f"\nMachine: {machine()}; 1-min load average {load_before:.1f} before, "
          f"{load_after:.1f} after (2 cores shared with other jobs inflate every time)\n")
    print(md_table(["case", "new engine (s)", "previous engine or method (s)", "ratio", "notes"],
                   [(case, "—" if new is None else new, "—" if old is None else old, ratio, note)
                    for case, new, old, ratio, note in table]))


if __name__ == "__main__":
    main()
