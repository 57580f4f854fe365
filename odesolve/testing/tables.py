"""Markdown tables and the machine description shared by benchmark and validation reports."""
from __future__ import annotations

import importlib
import os
import platform

import numpy as np

__all__ = ["fmt", "md_table", "format_table", "cpu_and_cores", "machine", "machine_lines"]


def fmt(x, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, NaN as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    x = float(x)
    if not np.isfinite(x):
        return "—"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.{max(digits - 1, 0)}e}"
    return f"{x:.{digits}g}"


def md_table(headers, rows) -> str:
    """A GitHub markdown table (cells are formatted with :func:`fmt` unless strings)."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def format_table(table_rows) -> str:
    """Markdown table of benchmark rows ``(group, case, measured, ratio of, ratio)``;
    ``measured`` is seconds (a number) or a string with its unit."""
    lines = ["| group | case | measured (s unless stated) | ratio | ratio of |",
             "|---|---|---|---|---|"]
    for group, case, seconds, what, ratio in table_rows:
        sec = (seconds if isinstance(seconds, str) else
               f"{seconds:.3g}" if seconds is not None else "—")
        rat = f"{ratio:.3g}" if ratio is not None else ""
        lines.append(f"| {group} | {case} | {sec} | {rat} | {what} |")
    return "\n".join(lines)


def cpu_and_cores() -> tuple[str, int]:
    """The CPU model (from /proc/cpuinfo where there is one) and the cores available."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpu, n


def machine() -> str:
    """One line describing the machine (CPU, cores, Python)."""
    cpu, n = cpu_and_cores()
    return f"{cpu}, {n} cores available, Python {platform.python_version()}, {platform.system()}"


def machine_lines() -> list[str]:
    """Lines describing the machine, the software versions and the load."""
    cpu, cores = cpu_and_cores()
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    versions = [f"Python {platform.python_version()}"]
    for name in ("numpy", "scipy", "numba", "sympy", "dask", "distributed"):
        try:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            versions.append(f"{name} (not installed)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [f"CPU: {cpu}, {cores} cores available to this process (os.cpu_count() = "
            f"{os.cpu_count()}){mem}",
            f"OS: {platform.system()} {platform.release()}",
            "Software: " + ", ".join(versions),
            f"Load average (1, 5, 15 min) at the start: {load}"]
