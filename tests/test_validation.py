"""Smoke test of the validation scripts: each ``main(quick=True)`` runs at tiny size and
returns its markdown section with the expected tables (an error in a script fails here).
The full runs are ``python validation/make_report.py``."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXPECTED = {
    "rhs_monte_carlo": ["## Right-hand side vs Monte Carlo",
                        "| variant | K | state | entries | exact entries | max abs z | rms z |",
                        "Largest |z| over all"],
    "euler_parity": ["## Euler parity mode vs adaptive solvers",
                     "| case | D | t_max | RK45 | DOP853 | LSODA | Euler dt=1/D |",
                     "observed order"],
    "learning_times": ["## Learning-time law",
                       "| s | init | D | c(0) | measured t_1 | predicted t_1 | ratio |",
                       "| step k | s_k | runs | slope × μ_k | ± SE | delay × μ_k |"],
    "finite_size": ["## Finite-size scaling: theory vs SGD simulation",
                    "| model | D | seeds | ε(t_max) | max abs(ODE − SGD mean), finite |",
                    "| model | p of max abs(mean), finite |"],
}


def _has_simulator() -> bool:
    try:
        import simulations
    except ImportError:
        return False
    return hasattr(simulations, "simulate")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_validation_script_quick(name, tmp_path):
    if name == "finite_size" and not _has_simulator():
        pytest.skip("the simulations package is not available")
    module = importlib.import_module(f"validation.{name}")
    kwargs = {"figure": tmp_path / "fs.png"} if name == "finite_size" else {}
    text = module.main(quick=True, **kwargs)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: missing {expected!r} in\n{text}"
    assert "FAILED" not in text and "DIFFER" not in text and "nan" not in text.lower().split()
    if name == "finite_size":
        assert (tmp_path / "fs.png").stat().st_size > 1000


def test_make_report_writes_the_file_atomically(tmp_path):
    from validation import make_report
    out = tmp_path / "REPORT.md"
    assert make_report.main(["--quick", "--only", "euler_parity", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# odesolve validation report (quick smoke run)")
    assert "## Euler parity mode vs adaptive solvers" in text
    assert not list(tmp_path.glob(".*.tmp"))
