"""Benchmark of activations without closed-form pair averages: fused quadrature (issue 9).

Run: ``python -m benchmarks.bench_quadrature --baseline PATH``.  ``PATH`` is a checkout of
the engine before the fused pair quadratures (commit a6b0aa2: one compiled 2-D quadrature
per average and ordered pair of units); both columns are measured in the same run, in fresh
processes with their own warm cache (:func:`benchmarks.bench_engine._run`).  Rows: K = 3
units, 3 spikes s_k = 1.5·0.7^k, bulk 0.05, D = 1000, init 0.1, seed 0, η = 1, to t = 10²
(warm: compiled beforehand), for activations whose pair averages sympy finds no closed
form for.  Printed: the table and the machine's load before and after.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from odesolve.testing.tables import machine, md_table

from .bench_engine import ROOT, _run

#: (label, activation as the user writes it)
CASES = (("tanh", "tanh"), ("logistic sigmoid", "1/(1 + exp(-x))"), ("SiLU", "x/(1 + exp(-x))"))


def rows(baseline: Path):
    """``(case, this tree (s), baseline (s), ratio, note)`` rows."""
    out = []
    for label, activation in CASES:
        res = {}
        for name, root in (("new", ROOT), ("old", baseline)):
            args = (3, 3, 1000, 1e2, False, 1, True, "auto", activation)
            with tempfile.TemporaryDirectory(prefix="bench-quadrature-") as cache:
                _run(root, args[:3] + (1.0,) + args[4:], cache)        # fill the cache
                res[name] = _run(root, args, cache)
        new, old = res["new"].get("median"), res["old"].get("median")
        note = "; ".join(f"{n}: {r['failed']}" if "failed" in r else
                         f"{n}: {r['method']}, {r['nfev']} evals, ε = {r['error']:.6f}"
                         for n, r in res.items())
        out.append((f"warm K = 3 {label}, to t = 10²", new, old,
                    f"{old / new:.1f}×" if new and old else "—", note))
        print(out[-1], flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="checkout of the engine before the fused quadratures")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    table = rows(args.baseline)
    load_after = os.getloadavg()[0]
    print(f"\nMachine: {machine()}; 1-min load average {load_before:.1f} before, "
          f"{load_after:.1f} after\n")
    print(md_table(["case", "fused (s)", "baseline (s)", "ratio", "notes"], table))


if __name__ == "__main__":
    main()
