"""Every benchmark in one command, one table: theory, simulator, sweeps.

Run: ``python -m benchmarks.run_all`` (full; writes ``benchmarks/RESULTS.md``) or
``python -m benchmarks.run_all --quick`` (smaller sizes; prints only, unless ``--out``).

Rows come from ``bench_theory.rows``, from the rows that ``bench_simulator.main(argv)``
returns (its printed output is kept verbatim) and from ``bench_sweep.rows``.
Every ratio in the table is between two timings of this same run.  A benchmark that fails
is reported in the output (and the exit status is 1) without hiding the others.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import os
import sys
import time
import traceback
from pathlib import Path

# One BLAS thread unless the caller chose otherwise: scipy's LSODA calls BLAS on vectors of a
# few hundred entries, and multi-threaded OpenBLAS then spends most of its time spinning,
# badly so on a loaded machine (the theory table measures the difference).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent

from odesolve.testing.tables import format_table, machine_lines


def machine() -> list[str]:
    """Lines describing the machine, the software versions, the load and the BLAS threads."""
    return machine_lines() + ["BLAS threads: " + ", ".join(
        f"{v}={os.environ.get(v, 'unset')}" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                     "MKL_NUM_THREADS"))]


def _simulator_rows(quick):
    """(rows, verbatim text) of the simulator benchmark: ``bench_simulator.main(argv)``
    prints tables and returns its rows (dicts with ``table, case, D, K, steps_per_s, …``),
    converted here to rows of the common table."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ret = importlib.import_module("benchmarks.bench_simulator").main(["--quick"] if quick else [])
    return _convert_simulator_rows(ret), buf.getvalue().rstrip()


def _convert_simulator_rows(ret):
    rows, first = [], {}
    for r in ret:
        rate = float(r["steps_per_s"])
        table = r.get("table", "")
        measured = f"{rate:,.0f} steps/s ({1e6 / rate:.2f} µs/step)"
        case = f"{r['case']}, D={r['D']}, K={r['K']}"
        if "draw_steps_per_s" in r:
            rows.append((f"simulator: {table}", case + f", {1e9 / (rate * r['K'] * r['D']):.2f} "
                         "ns per step·K·D", measured, "drawing inputs / whole step",
                         rate / float(r["draw_steps_per_s"])))
        elif "ratio" in r:
            rows.append((f"simulator: {table}", case, measured,
                         "time per step: this / simulations.simulate", float(r["ratio"])))
        else:
            base = first.setdefault(table, rate)
            rows.append((f"simulator: {table}", case + f", {1e9 / (rate * r['K'] * r['D']):.2f} "
                         "ns per step·K·D", measured, "time per step vs first row",
                         base / rate))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes in every benchmark")
    parser.add_argument("--out", default=None,
                        help="markdown file (default: benchmarks/RESULTS.md for full runs)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else (None if args.quick else HERE / "RESULTS.md")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    load_start = os.getloadavg()
    header = machine()
    print(f"odesolve benchmarks{' (quick)' if args.quick else ''}, {started}")
    print("\n".join(header))
    print(f"load average at start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_start)}",
          flush=True)

    def log(msg):
        print(f"  [{msg}]", file=sys.stderr, flush=True)

    table, notes, verbatim, status, timing = [], [], [], 0, []
    benches = [("theory", lambda: (importlib.import_module("benchmarks.bench_theory").rows(args.quick, log),
                                   "")),
               ("simulator", lambda: _simulator_rows(args.quick))]
    benches.append(("sweeps", lambda: (importlib.import_module("benchmarks.bench_sweep").rows(args.quick,
                                                                                     log), "")))
    for name, run in benches:
        log(f"benchmark: {name}")
        start = time.perf_counter()
        try:
            rows, text = run()
            table += rows
            if text:
                verbatim.append((name, text))
        except Exception:                               # noqa: BLE001 - reported below
            status = 1
            notes.append(f"**{name} benchmark FAILED**:\n\n```\n{traceback.format_exc()}```")
        timing.append(f"{name} {time.perf_counter() - start:.0f} s")
    load_end = os.getloadavg()
    body = format_table(table)
    lines = [f"# odesolve benchmarks{' (quick sizes)' if args.quick else ''}", "",
             f"Measured by `python -m benchmarks.run_all{' --quick' if args.quick else ''}` on "
             f"{started}.", ""]
    lines += [f"* {h}" for h in header]
    lines += [f"* Load average (1, 5, 15 min) at start: "
              f"{', '.join(f'{x:.2f}' for x in load_start)}; at end: "
              f"{', '.join(f'{x:.2f}' for x in load_end)} (the cores are shared with other "
              "jobs: absolute times are indicative, ratios within a row group were measured "
              "minutes apart in the same run)",
              f"* Wall time per benchmark: {', '.join(timing)}", "",
              "*time*: wall-clock seconds; *ratio* = the quotient named in the last column "
              "(e.g. *published / warm LSODA*: how many times longer the published fixed-step "
              "scheme takes than this package for the same curve).", "", body, ""]
    for name, text in verbatim:
        lines += [f"Printed output of the {name} benchmark (`bench_{name}.py`; its rows are in "
                  "the table above):", "", "```", text, "```", ""]
    lines += [n + "\n" for n in notes]
    markdown = "\n".join(lines)
    print()
    print(body)
    for n in notes:
        print("\n" + n)
    if out is not None:
        out.write_text(markdown)
        print(f"\nwrote {out}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
