"""The engine reproduces the trajectories of the engine it replaced (issue 9) to 1e-8.

``tests/data/regression`` holds what the previous engine (per-K sympy expressions,
straight-line generated code; odesolve before the "Theory engine v2" commit) computed,
with the exact inputs of every case in ``manifest.json``:

* every example configuration (theory only, its first seed), integrated with DOP853 at
  rtol = 1e-11, atol = 1e-13 (tight, so that both engines give the ODE solution to
  ~1e-10 and a 1e-8 comparison tests the equations, not the step-size control);
* every model variant of the test suite (activation × tied × rule × bias, K = 1, 2, 3):
  the right-hand side at three random states for both bulk treatments (exact: no solver
  involved), and a trajectory to t = 60.

The generator (run once against the previous engine) is ``make_regression.py.txt``
beside the data.  The right-hand sides of every variant are compared with the generated
source run as plain Python (``ODESOLVE_JIT=0``; ``tests/codegen/test_compile.py`` checks
that compiled and interpreted modules agree), because numba's compilation of some fifty
families would be nearly all of the time.  Trajectories are compared, compiled, for
every example and for every erf variant (each tying × rule × bias combination); the
other activations' trajectories differ from those only through the averages, which the
right-hand-side comparison pins.  A few families run in the fast suite, the rest are slow.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from odesolve import Autoencoder, State, given_spectrum, integrate
from odesolve.codegen import compile_model
from odesolve.integrator import rhs_function
from odesolve.spec.spectra import Spectrum

DATA = Path(__file__).resolve().parents[1] / "data" / "regression"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
CASES = MANIFEST["cases"]
#: Families of the fast subset: the ones the rest of the fast suite compiles anyway.
FAST = {"variant_erf_untied_sgd_none_K2", "variant_erf_untied_sgd_none_K3",
        "example_sequential_pcs"}


def _case(name):
    c = CASES[name]
    data = np.load(DATA / f"{name}.npz")
    m = c["model"]
    activation = m["activation"] if m["activation"] in ("linear", "erf", "relu", "sign",
                                                        "tanh") else m["activation_expr"]
    model = Autoencoder(K=m["K"], activation=activation, tied=m["tied"], rule=m["rule"],
                        bias=m["bias"])
    if c["n_bulk"]:
        spec = Spectrum(c["D"], data["eigenvalues"], c["bulk_eigenvalue"], c["n_bulk"])
    else:
        spec = given_spectrum(data["eigenvalues"])
    state = State(model, spec, data["Y0"], data["G0"], data["m0"])
    return c, data, model, state


def _marks(name):
    return [] if name in FAST else [pytest.mark.slow]


RHS_CASES = [pytest.param(n, marks=_marks(n), id=n) for n in CASES if n.startswith("variant_")]
TRAJECTORY_CASES = [pytest.param(n, marks=_marks(n), id=n) for n in CASES
                    if n.startswith(("example_", "variant_erf_")) or n in FAST]


@pytest.mark.parametrize("name", RHS_CASES)
def test_rhs_reproduces_previous_engine(name):
    c, data, model, state = _case(name)
    compiled = compile_model(model, jit=name in FAST)
    for y, limit, finite in zip(data["rhs_states"], data["rhs_limit"], data["rhs_finite"]):
        st = state.with_vector(y)
        for bulk, expected in (("limit", limit), ("finite", finite)):
            got = rhs_function(compiled, st, c["rhs_lr"], bulk)(0.0, y)
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", TRAJECTORY_CASES)
def test_trajectory_reproduces_previous_engine(name):
    c, data, model, state = _case(name)
    traj = integrate(state, c["lr"], (0.0, c["t_max"]), method=MANIFEST["method"],
                     t_eval=data["t"], rtol=MANIFEST["rtol"], atol=MANIFEST["atol"],
                     bulk=c["bulk"])
    assert traj.mode == c["mode"]
    for key in ("error", "Q", "R", "T0", "m"):
        np.testing.assert_allclose(getattr(traj, key), data[key], rtol=0, atol=1e-8,
                                   err_msg=key)
    np.testing.assert_allclose(traj.learning_times, data["learning_times"], rtol=1e-8)
