"""Every benchmark table in one command: theory, simulator (if present), sweeps.

Run: ``python benchmarks/run_all.py [--quick]``.  Each benchmark runs in its own process
(``bench_theory.py``, ``bench_simulator.py`` when the ``simulations`` package and that
script exist, ``bench_sweep.py``), so that cold-start timings are honest and one failing
benchmark does not hide the others; the tables are printed in turn under a header
describing the machine.  Ratios inside a table are always measured in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{cpu}, {cores} cores available{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def simulator_available() -> bool:
    code = "import simulations; assert hasattr(simulations, 'simulate')"
    return subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True).returncode == 0


def _env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def run_benchmark(script: str, quick: bool) -> tuple[int, str, float]:
    cmd = [sys.executable, str(HERE / script)] + (["--quick"] if quick else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = proc.stdout.rstrip()
    if proc.returncode != 0:
        out += f"\n[{script} FAILED with exit code {proc.returncode}]\n" + proc.stderr[-3000:]
    return proc.returncode, out, wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes in every benchmark")
    args = parser.parse_args(argv)
    print(f"odesolve benchmarks, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {machine()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    scripts = [("theory", "bench_theory.py")]
    if (HERE / "bench_simulator.py").exists() and simulator_available():
        scripts.append(("simulator", "bench_simulator.py"))
    else:
        print("\n(simulator benchmark skipped: simulations package or "
              "benchmarks/bench_simulator.py not available)")
    scripts.append(("sweeps", "bench_sweep.py"))
    status = 0
    for title, script in scripts:
        print(f"\n=== {title} ({script}) ===", flush=True)
        rc, out, wall = run_benchmark(script, args.quick)
        print(out)
        print(f"[{script}: {wall:.0f} s]", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
