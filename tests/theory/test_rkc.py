"""The Runge–Kutta–Chebyshev solver: its scheme, its order, its use on stiff flows."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from odesolve import Autoencoder, State, integrate, spiked_covariance
from odesolve.integrator.rkc import MAX_STAGES, RKC, chebyshev_coefficients, stages_for


def _amplification(s, z):
    """R_s(z): one s-stage step of the solver's own stage loop on y' = z y with h = 1,
    from y = 1 (z an array: one independent equation per entry)."""
    y0 = np.ones_like(z)
    solver = RKC(lambda t, y: z * y, 0.0, y0, 1.0, first_step=1.0)
    return solver._stages(0.0, y0, z * y0, 1.0, s)


@pytest.mark.parametrize("s", [2, 3, 7, 40, MAX_STAGES])
def test_stability_interval_and_second_order(s):
    _, _, _, _, c, beta = chebyshev_coefficients(s)
    # stable on [−β, 0]; β is a lower bound of the true interval (6.18 against 5.23
    # for s = 3, within 1 % from s = 4 on), which ends before 1.2 β
    z = -np.linspace(0.0, beta, 20001)
    assert np.max(np.abs(_amplification(s, z))) <= 1.0 + 1e-9
    assert abs(_amplification(s, np.array([-1.2 * beta]))[0]) > 1.0
    # second order: R(z) = e^z + O(z³), and the final stage is at t + h
    for z0 in (1e-2, 2e-2):
        assert abs(_amplification(s, np.array([-z0]))[0] - np.exp(-z0)) < 0.5 * z0**3
    assert c[-1] == pytest.approx(1.0, abs=1e-12)
    # the interval grows like s² (≈ 0.65 s² for large s); the stage rule covers it
    assert beta > 0.6 * s**2 if s >= 7 else beta > 1.9
    assert stages_for(beta) >= s


def test_stage_times_are_the_stages_consistency_conditions():
    """For y' = 1 from y(0) = 0 every stage Y_j equals c_j h: the solver evaluates F at
    (t + c_j h, Y_j), so each call sees y = t."""
    s, h = 9, 0.3
    calls = []

    def one(t, y):
        calls.append((t, y[0]))
        return np.ones_like(y)

    solver = RKC(one, 0.0, np.zeros(1), 1.0, first_step=h)
    calls.clear()
    y = solver._stages(0.0, np.zeros(1), np.ones(1), h, s)
    times, values = np.array(calls).T
    assert len(calls) == s - 1
    np.testing.assert_allclose(times, chebyshev_coefficients(s)[4][1:s] * h, rtol=1e-12)
    np.testing.assert_allclose(values, times, rtol=1e-12, atol=1e-15)
    assert y[0] == pytest.approx(h, rel=1e-12)


def test_global_error_is_second_order_in_the_step():
    """Fixed steps (the step bound is the step, tolerances never bind) on y' = −y² + cos t:
    halving the step divides the error at t = 4 by 4."""
    def fun(t, y):
        return -y**2 + np.cos(t)

    reference = solve_ivp(fun, (0, 4), [1.0], method="DOP853", rtol=1e-13, atol=1e-14).y[0, -1]
    errors = []
    for h in (0.02, 0.01, 0.005):
        solver = RKC(fun, 0.0, np.array([1.0]), 4.0, rtol=1e3, atol=1e3, first_step=h, max_step=h)
        while solver.status == "running":
            solver.step()
        errors.append(abs(solver.y[0] - reference))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), ratios


def test_stiff_linear_flow_few_calls_and_accurate():
    """Slow modes (rates 0.01–0.1) beside fast ones (10³–10⁴), as in a late learning
    curve: once the fast transient has gone, RK45 is held to steps of ~3·10⁻⁴ by
    stability, while RKC's steps follow the slow modes (exact solution e^{−λt})."""
    lam = np.concatenate([np.logspace(-2, -1, 10), np.logspace(3, 4, 30)])
    y0 = np.ones_like(lam)
    exact = np.exp(-lam * 2.0)
    rkc = solve_ivp(lambda t, y: -lam * y, (0, 2), y0, method=RKC, rtol=1e-6, atol=1e-9)
    rk45 = solve_ivp(lambda t, y: -lam * y, (0, 2), y0, method="RK45", rtol=1e-6, atol=1e-9)
    assert rkc.status == 0
    assert np.max(np.abs(rkc.y[:, -1] - exact)) < 1e-5
    assert rkc.nfev * 10 < rk45.nfev


def test_dense_output_and_events_through_solve_ivp():
    """Output between steps and events come from the Hermite interpolant, as accurate as
    the steps themselves.  (The tolerance bounds the error of each step: ~400 steps of
    this second-order method to t = 1.5 at rtol = 1e-8 leave a global error of ~4e-6.)"""
    def half(t, y):
        return y[0] - 0.5
    sol = solve_ivp(lambda t, y: -y, (0, 3), [1.0], method=RKC, rtol=1e-8, atol=1e-12,
                    t_eval=np.linspace(0, 3, 7), events=half, dense_output=True)
    steps = sol.sol.ts
    assert steps.size > 50 and not np.isin(sol.t[1:-1], steps).any()
    np.testing.assert_allclose(sol.y[0], np.exp(-sol.t), rtol=1e-5)
    assert sol.t_events[0][0] == pytest.approx(np.log(2), rel=1e-5)


def test_integrate_with_rkc_follows_the_tight_reference():
    """An erf curve through two plateaus: the same errors and learning times as DOP853 at a
    tight tolerance, to the accuracy the tolerance sets (RKC is second order)."""
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=2, activation="erf"), spec, scale=0.1, seed=0)
    rkc = integrate(state, 1.0, 1000.0, method="RKC", rtol=1e-8)
    tight = integrate(state, 1.0, 1000.0, method="DOP853", rtol=1e-11, atol=1e-13)
    assert rkc.method == "RKC"
    np.testing.assert_allclose(rkc.error, tight.error, rtol=0, atol=2e-6)
    assert np.all(np.isfinite(tight.learning_times))
    np.testing.assert_allclose(rkc.learning_times, tight.learning_times, rtol=1e-4)


def test_rkc_reports_a_runaway_state_like_the_other_methods():
    from odesolve import DivergenceError
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=2, activation="erf"), spec, scale=0.1, seed=0)
    big = state.with_vector(state.to_vector() * 1e9)
    with pytest.raises(DivergenceError):
        integrate(big, 1.0, 10.0, method="RKC")


@pytest.mark.parametrize("variant", [dict(activation="erf"),
                                     dict(activation="erf", rule="truncated"),
                                     dict(activation="relu", bias="trained")])
def test_the_flow_is_stiff_with_a_real_spectrum_late_in_learning(variant):
    """What RKC is for (docs/theory.md §10): at t = 10³ the Jacobian of the flow (finite
    differences) has real eigenvalues, the fastest beyond −10 while others are within 10⁻²
    of 0: a stiffness ratio above 10³ that grows with t (the fastest was −2.9 at t = 32)."""
    from odesolve import compile_model
    from odesolve.integrator.flow import rhs_function
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0, 0.6], bulk=0.05)
    model = Autoencoder(K=3, **variant)
    start = State.random(model, spec, 0.1, seed=0)
    f = rhs_function(compile_model(model), start, 1.0)
    y = integrate(start, 1.0, 1000.0, n_points=2).state(-1).to_vector()
    f0, J = f(0.0, y), np.empty((y.size, y.size))
    for j in range(y.size):
        step = 1e-7 * max(1.0, abs(y[j]))
        shifted = y.copy()
        shifted[j] += step
        J[:, j] = (f(0.0, shifted) - f0) / step
    eigenvalues = np.linalg.eigvals(J)
    fastest = np.max(np.abs(eigenvalues.real))
    assert np.max(np.abs(eigenvalues.imag)) <= 1e-6 * fastest
    assert np.min(eigenvalues.real) < -10.0
    assert np.min(np.abs(eigenvalues)) < 1e-2


@pytest.mark.parametrize("method, t0", [("RKC", 1e13), ("RK45", 1e14), ("CVODE", 1e14)])
def test_a_start_where_floats_are_too_coarse_is_explained(method, t0):
    """It was an AttributeError from inside the solver wrapper (solve_ivp returns its
    times as a list when it stops before the first output), blamed on a runaway flow."""
    from odesolve import DivergenceError
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=2, activation="erf"), spec, scale=0.1, seed=0)
    with pytest.raises(DivergenceError, match="floating-point times are .* apart"):
        integrate(state, 1.0, (t0, t0 + 10.0), method=method)
