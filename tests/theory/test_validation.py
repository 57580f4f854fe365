"""Smoke test of the validation scripts: each ``main(quick=True)`` runs at tiny size, returns
its markdown section with the expected tables, and its numbers are sane (the checks below
are the ones that hold at these sizes; the full runs are ``python validation/make_report.py``,
whose numbers are in ``validation/REPORT.md``)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # minutes on 2 cores; not in the fast subset

EXPECTED = {
    "rhs_monte_carlo": ["## Right-hand side vs Monte Carlo",
                        "| variant | K | state | entries | exact entries | max abs z | rms z |",
                        "Largest |z| over all"],
    "euler_parity": ["## Euler parity mode vs adaptive solvers",
                     "| case | D | t_max | RK45 | DOP853 | LSODA | Euler dt=1/D |",
                     "observed order", "**Parity with the published scheme.**"],
    "learning_times": ["## Learning-time law",
                       "| s | init | D | c(0) | measured t_1 | predicted t_1 | ratio |",
                       "| step k | s_k | runs | slope × μ_k | ± SE | delay × μ_k |",
                       "### Scaling of the second step with s_2"],
    "finite_size": ["## Finite-size scaling: theory vs SGD simulation",
                    "| model | D | seeds | ε_ODE(t_max) | max abs(mean d) | in SE |",
                    "| model | p of max abs(mean) |"],
}


def _has_simulator() -> bool:
    try:
        import simulations
    except ImportError:
        return False
    return hasattr(simulations, "simulate")


def _check_numbers(name, results):
    if name == "rhs_monte_carlo":
        assert not results["failures"], results["failures"]
        assert results["worst"] < 5.0                      # max |z| over 36 entries
        rms = [row[6] for row in results["rows"]]
        assert all(0.4 < r < 1.8 for r in rms), rms        # z-scores of unit size
    elif name == "euler_parity":
        assert results["worst_adaptive"] < 1e-4
        assert results["worst_richardson"] < 1e-4
        assert all(0.9 < float(row[9]) < 1.1 for row in results["rows"])   # first order
        assert all(row[-2] < 1e-12 and row[-1] < 1e-12 for row in results["parity"])
    elif name == "learning_times":
        assert all(abs(r - 1.0) < 0.05 for r in results["single_ratios"])  # first step: the law
        assert -1.6 < results["s2_exponent"] < -0.6                         # ~ 1/s_2
    elif name == "finite_size":
        res = results["results"]
        small, large = (res["linear, K=2", D]["finite"] for D in results["config"]["Ds"])
        assert large["max_rms"] < small["max_rms"]          # discrepancy shrinks with D
        assert large["traj_rms"] < small["traj_rms"]
        assert small["max_mean"] < 0.2 and large["max_mean"] < 0.1


@pytest.mark.parametrize("name", list(EXPECTED))
def test_validation_script_quick(name, tmp_path):
    if name == "finite_size" and not _has_simulator():
        pytest.skip("the simulations package is not available")
    module = importlib.import_module(f"validation.{name}")
    kwargs = ({"figure": tmp_path / "fs.png", "data": tmp_path / "fs.npz"}
              if name == "finite_size" else {})
    text = module.main(quick=True, **kwargs)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: missing {expected!r} in\n{text}"
    assert "FAILED" not in text and "DIFFER" not in text and "ABOVE" not in text
    assert "nan" not in text.lower().split()
    _check_numbers(name, module.RESULTS)
    if name == "finite_size":
        assert (tmp_path / "fs.png").stat().st_size > 1000
        with np.load(tmp_path / "fs.npz") as raw:
            assert raw["linear_D400_sgd"].shape == (4, len(raw["linear_D400_t"]))


def test_make_report_writes_the_file_atomically(tmp_path):
    from validation import make_report
    out = tmp_path / "REPORT.md"
    assert make_report.main(["--quick", "--only", "euler_parity", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# odesolve validation report (quick smoke run)")
    assert "## Euler parity mode vs adaptive solvers" in text
    assert "*Not run yet (`--only finite_size`).*" in text
    assert (tmp_path / "sections.quick" / "euler_parity.md").exists()
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*/.*.tmp"))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_a_zero_encoder_row_is_a_clear_error_where_its_averages_divide_by_zero(activation):
    """λ_k ~ N(0, 0) for a zero row: the quadratures standardise by √Q_kk and ReLU's closed
    forms divide by it (a ZeroDivisionError from numba before, from integrate, and from
    rhs_function until later); erf's are smooth there."""
    from odesolve import Autoencoder, State, compile_model, integrate, spiked_covariance
    from odesolve.integrator import rhs_function
    spec = spiked_covariance(100, [1.5, 1.0], 0.05)
    W = np.random.default_rng(0).normal(size=(2, 100))
    W[1] = 0.0
    V = np.random.default_rng(1).normal(size=(2, 100))
    for act, fails in ((activation, True), ("erf", False)):
        state = State.from_weights(Autoencoder(K=2, activation=act), spec, W, V)
        if fails:
            with pytest.raises(ValueError, match=r"units \[1\] have zero pre-activation variance"):
                integrate(state, 0.5, 1.0)
            f = rhs_function(compile_model(state.model), state, 0.5)
            with pytest.raises(ValueError, match=r"units \[1\] have zero pre-activation variance"):
                f(0.0, state.to_vector())
        else:
            assert np.isfinite(integrate(state, 0.5, 1.0).error[-1])
