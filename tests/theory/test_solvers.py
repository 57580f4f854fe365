"""LSODA through odeint against solve_ivp's methods, and batch integration."""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, State, integrate, spiked_covariance
from odesolve import integrate_batch


def _state(seed=0, K=2):
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    return State.random(Autoencoder(K=K, activation="erf"), spec, scale=0.1, seed=seed)


def test_lsoda_matches_tight_dop853_including_learning_times():
    state = _state()
    fast = integrate(state, 1.0, 300.0, method="LSODA", rtol=1e-10, atol=1e-12)
    tight = integrate(state, 1.0, 300.0, method="DOP853", rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(fast.error, tight.error, rtol=0, atol=1e-8)
    assert np.all(np.isfinite(fast.learning_times))
    np.testing.assert_allclose(fast.learning_times, tight.learning_times, rtol=1e-6)


@pytest.mark.parametrize("method", ["auto", "RK45"])
def test_batch_equals_a_loop_of_integrate(method):
    """Every member, of any size (here K = 2 and 3), is exactly its integrate() run,
    learning times included."""
    states = [_state(seed) for seed in range(3)] + [_state(seed, K=3) for seed in (0, 1)]
    batch = integrate_batch(states, 0.7, 400.0, method=method, rtol=1e-9)
    for st, traj in zip(states, batch):
        alone = integrate(st, 0.7, 400.0, method=method, rtol=1e-9)
        assert traj.method == alone.method
        np.testing.assert_array_equal(traj.error, alone.error)
        np.testing.assert_array_equal(traj.Q, alone.Q)
        assert np.all(np.isfinite(alone.learning_times[:st.model.K]))
        np.testing.assert_array_equal(traj.learning_times, alone.learning_times)


def test_batch_checks_every_member_before_any_work(monkeypatch):
    from odesolve import batch as batch_module
    monkeypatch.setattr(batch_module, "integrate", lambda *a, **k: pytest.fail("work started"))
    spec = spiked_covariance(D=100, spikes=[1.5, 0.6], bulk=0.05).all_modes()
    no_bulk = State.random(Autoencoder(K=2, activation="erf"), spec, scale=0.1, seed=0)
    # the finite-D correction is refused for the second member only (no bulk)
    with pytest.raises(ValueError, match="bulk"):
        integrate_batch([_state(0), no_bulk], 1.0, 10.0, bulk="finite", finite_size=True)


def test_batch_names_the_member_that_runs_away():
    from odesolve import DivergenceError
    states = [_state(seed) for seed in range(3)]
    big = states[1].with_vector(states[1].to_vector() * 1e9)
    with pytest.raises(DivergenceError, match="batch state 1"):
        integrate_batch([states[0], big, states[2]], 1.0, 100.0)


def test_batch_refuses_mixed_families():
    spec = spiked_covariance(D=100, spikes=[1.0], bulk=0.2)
    states = [State.random(Autoencoder(K=1, activation=a), spec) for a in ("erf", "linear")]
    with pytest.raises(ValueError, match="one model family"):
        integrate_batch(states, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one"):
        integrate_batch([], 1.0, 1.0)
    # one State, or no sequence at all ("'State' object is not iterable" before)
    with pytest.raises(TypeError, match=r"for one state, use integrate or pass \[state\]"):
        integrate_batch(states[0], 1.0, 1.0)
    with pytest.raises(TypeError, match="states must be a sequence of odesolve States"):
        integrate_batch(3, 1.0, 1.0)


def test_wide_networks_take_the_same_flow_with_blas(monkeypatch):
    """rhs_function switches to matrix products from BLAS_MIN_UNITS units: same numbers
    as the compiled loops, with a protocol (rates, decay) and the finite-D floor."""
    from odesolve.integrator import flow
    from odesolve.codegen import compile_model
    from odesolve.protocols import Protocol
    spec = spiked_covariance(D=400, spikes=[1.5, 1.0, 0.7, 0.4], bulk=0.1)
    state = State.random(Autoencoder(K=5, activation="erf"), spec, scale=0.4, seed=3)
    compiled, y = compile_model(state.model), state.to_vector()
    protocol = Protocol(encoder_rate=1.3, decoder_rate=0.7, encoder_decay=0.2, decoder_decay=0.1)
    out = {}
    other = State.random(state.model, spec, scale=0.2, seed=4).to_vector()
    for rows in (10**6, 1):
        monkeypatch.setattr(flow, "BLAS_MIN_UNITS", rows)
        f = flow.rhs_function(compiled, state, 0.8, "finite", protocol, finite_size=True)
        out[rows] = f(0.0, y)
        # the work arrays kept between calls carry nothing from one call to the next
        assert not np.allclose(f(0.0, other), out[rows])
        np.testing.assert_array_equal(f(0.0, y), out[rows])
    np.testing.assert_allclose(out[1], out[10**6], rtol=1e-12, atol=1e-15)


def test_a_quadrature_out_of_range_stops_the_ode_with_a_clear_error(monkeypatch):
    """exp(|x|^1.5) has Gaussian averages for every variance, but at a large one the
    integrand of E[g'(λ)] is not negligible at 10 standard deviations: integrate raises
    QuadratureRangeError (shown from integrate, not from inside the solver) rather than
    integrate truncated averages.  At a small variance the same model runs."""
    from odesolve import QuadratureRangeError
    monkeypatch.setenv("ODESOLVE_JIT", "0")       # the plain-Python module: no compile time
    model = Autoencoder(K=1, activation="exp(Abs(x)**1.5)")
    spec = spiked_covariance(D=200, spikes=[1.0], bulk=0.05)
    with pytest.raises(QuadratureRangeError, match="the ODE stopped: .*not negligible at 10 "
                       "standard deviations") as info:
        integrate(State.random(model, spec, 4.0, seed=0), 0.5, (0.0, 1.0), method="RK45")
    assert info.traceback[-1].name == "integrate"
    traj = integrate(State.random(model, spec, 0.2, seed=0), 0.5, (0.0, 0.1), method="RK45",
                     n_points=3)
    assert np.isfinite(traj.error).all()


@pytest.mark.parametrize("method", ["LSODA", "RK45"])
def test_a_slow_pace_is_announced_once(monkeypatch, method):
    """An adaptive solver's cost is set by the flow's stiffness (a spectrum with a top
    eigenvalue of 1e6 ran for more than 10 minutes without a word): the run announces,
    once, the time it has still to go at its pace.  Here the notice's thresholds are
    zero, so any run is 'slow'."""
    import functools
    import warnings

    from odesolve.errors import CostWarning
    from odesolve.integrator import solve

    monkeypatch.setattr(solve, "PaceNotice",
                        functools.partial(solve.PaceNotice, after=0.0, beyond=0.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        integrate(_state(), 1.0, 50.0, method=method)
    notices = [str(w.message) for w in caught if issubclass(w.category, CostWarning)]
    assert len(notices) == 1, notices
    assert notices[0].startswith(f"integrating the ODE with {method} (")
    assert "no progress yet" in notices[0] and "stiff" in notices[0]   # at the first call
    # an explicit method's notice names the methods made for stiff flows
    assert ("CVODE steps over the fast modes" in notices[0]) == (method == "RK45")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)     # default thresholds: silent
        monkeypatch.undo()
        integrate(_state(), 1.0, 50.0, method=method)


def test_lsoda_and_cvode_integrate_what_the_pace_notice_calls_stiff():
    """The notice of a slow explicit run points to CVODE and LSODA: on all modes of a spectrum with
    a top eigenvalue of 1e6, RK45 projected 1.8 days for t = 10³; LSODA takes seconds
    (here to t = 20), and so does CVODE; both agree with RK45 where that one is affordable (t = 0.01)."""
    spec = spiked_covariance(D=100, spikes=[1e6, 1.0], bulk=0.2).all_modes()
    state = State.random(Autoencoder(K=2, activation="erf"), spec, scale=0.1, seed=0)
    for method in ("LSODA", "CVODE"):
        stiff = integrate(state, 1.0, 20.0, method=method)
        assert np.all(np.isfinite(stiff.error)) and stiff.error[-1] < stiff.error[0]
    short = [integrate(state, 1.0, 0.01, method=m, n_points=5, rtol=1e-9)
             for m in ("LSODA", "RK45", "CVODE")]
    np.testing.assert_allclose(short[0].error, short[1].error, rtol=1e-6)
    np.testing.assert_allclose(short[2].error, short[1].error, rtol=1e-6)


@pytest.mark.parametrize("activation,tied,bias", [("erf", False, "none"), ("erf", True, "none"),
                                                  ("relu", False, "trained")])
def test_compiled_jacobian_is_the_derivative_of_the_right_hand_side(activation, tied, bias):
    """rhs_guarded's forward-difference Jacobian (odeint's Dfun, col_deriv layout: row j is
    ∂f/∂y_j) against central differences of the same right-hand side, taken in Python at
    ten times the step; dy is the plain right-hand side whether or not it is asked for."""
    from odesolve import compile_model
    from odesolve._progress import PaceNotice
    from odesolve.integrator.flow import _FlowArguments, _solver_callback, rhs_function
    from odesolve.protocols import as_protocol
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    model = Autoencoder(K=2, activation=activation, tied=tied, bias=bias)
    state = State.random(model, spec, scale=0.5, seed=3)
    compiled = compile_model(model)
    args = _FlowArguments(compiled, state, 0.8, "limit", as_protocol(None), False)
    fun = _solver_callback(compiled, args, None, PaceNotice("a test", 0.0, 1.0))
    f = rhs_function(compiled, state, 0.8)
    y = state.to_vector()
    dy = fun(y, 0.0).copy()
    jac = fun.jacobian(y, 0.0).copy()
    np.testing.assert_array_equal(y, state.to_vector())      # moved and put back exactly
    np.testing.assert_array_equal(fun(y, 0.0), f(0.0, y))
    np.testing.assert_array_equal(dy, f(0.0, y))
    assert jac.shape == (y.size, y.size)
    central = np.empty_like(jac)
    for j in range(y.size):
        h = 1e-6 * max(abs(y[j]), 1e-3 * np.max(np.abs(y)))
        up, down = y.copy(), y.copy()
        up[j] += h
        down[j] -= h
        central[j] = (f(0.0, up) - f(0.0, down)) / (2 * h)
    scale = np.max(np.abs(central))
    assert scale > 0.1
    np.testing.assert_allclose(jac, central, rtol=0, atol=1e-6 * scale)


def test_lsoda_with_the_compiled_jacobian_equals_lsoda_forming_its_own(monkeypatch):
    """odeint with the compiled Jacobian solves the same ODE as odeint forming the
    Jacobian itself (Newton matrices differ, solutions agree to the tolerance); the
    Jacobian's right-hand sides are counted in nfev."""
    from odesolve.integrator import solve as solve_module
    state = _state()
    called = []
    real = solve_module.odeint

    def spy(*a, **kw):
        called.append(kw["Dfun"] is not None)
        return real(*a, **kw)

    monkeypatch.setattr(solve_module, "odeint", spy)
    ours = integrate(state, 1.0, 2000.0, method="LSODA", rtol=1e-10, atol=1e-12)
    assert called and all(called)

    def without_jacobian(*a, **kw):
        kw["Dfun"] = None
        return real(*a, **kw)

    monkeypatch.setattr(solve_module, "odeint", without_jacobian)
    own = integrate(state, 1.0, 2000.0, method="LSODA", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.error, own.error, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.Q, own.Q, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours.learning_times, own.learning_times, rtol=1e-7)
    assert ours.nfev > 0 and own.nfev > 0


def test_state_records_are_made_when_read():
    state = _state()
    traj = integrate(state, 1.0, 50.0, n_points=11)
    records = traj.states
    assert len(records) == 11
    assert records._made == {}
    last = records[-1]
    assert records[10] is last and traj.state() is last
    np.testing.assert_array_equal(last.to_vector(), state.with_vector(
        np.concatenate([traj.A[-1].ravel(), traj.B[-1].ravel(), last.G.ravel(),
                        last.m])).to_vector())
    np.testing.assert_allclose(last.order_parameters().Q, traj.Q[-1], rtol=1e-12)
    assert [r.Y.shape for r in records[2:5]] == [state.Y.shape] * 3
    assert len(list(records)) == 11
    with pytest.raises(IndexError, match="record 11 of a trajectory of 11 records"):
        records[11]
    with pytest.raises(TypeError):
        records[1.5]


def test_plateau_exits_do_not_depend_on_the_records_between_outputs(monkeypatch):
    """LSODA records REFINE times per output interval to start the exits' Newton steps;
    under a memory cap it records the outputs only.  The exits agree to the tolerance,
    and with DOP853's events."""
    from odesolve.integrator import solve as solve_module
    state = _state()
    kwargs = dict(method="LSODA", rtol=1e-10, atol=1e-12, n_points=40)
    refined = integrate(state, 1.0, 400.0, **kwargs)
    monkeypatch.setattr(solve_module, "REFINED_VALUES", 0)
    outputs_only = integrate(state, 1.0, 400.0, **kwargs)
    assert np.all(np.isfinite(refined.learning_times))
    np.testing.assert_allclose(outputs_only.learning_times, refined.learning_times, rtol=1e-8)
    np.testing.assert_allclose(outputs_only.error, refined.error, rtol=0, atol=1e-9)
    events = integrate(state, 1.0, 400.0, method="DOP853", rtol=1e-11, atol=1e-13, n_points=40)
    np.testing.assert_allclose(refined.learning_times, events.learning_times, rtol=1e-7)


@pytest.mark.parametrize("t_span,t_eval", [
    (1000.0, [0.0, 1000.0]),                          # one output interval, exits at 2.4, 11
    (1000.0, [0.0, 1.0, 1.0 + 1e-12, 1.0 + 2e-12, 1000.0]),
    ((1.0, 1000.0), [1.0, 2.0, 1000.0]),
    ((1.0, 1000.0), [5.0, 1000.0]),                   # an exit before the first output time
])
def test_lsoda_finds_plateau_exits_on_any_output_grid(t_span, t_eval):
    """Exits far inside a long output interval, or before the first output time, are
    LSODA's own crossings (Newton steps kept inside a bracket), as DOP853's events find
    them: a clamped Newton search had returned t0, or the first output time."""
    state = _state()
    lsoda = integrate(state, 1.0, t_span, t_eval=t_eval, method="LSODA", rtol=1e-10,
                      atol=1e-12)
    events = integrate(state, 1.0, t_span, t_eval=t_eval, method="DOP853", rtol=1e-11,
                       atol=1e-13)
    assert np.all(np.isfinite(events.learning_times))
    np.testing.assert_allclose(lsoda.learning_times, events.learning_times, rtol=1e-7)


def test_lsoda_finds_an_exit_in_the_collapse_of_a_huge_start():
    """ReLU weights 10⁴ times too large: the first exit comes at t ≈ 1.3e-3, inside the
    first output interval [0, 0.1]; LSODA had reported 7.6e-7."""
    spec = spiked_covariance(D=500, spikes=[1.5, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=2, activation="relu"), spec, scale=0.1, seed=0)
    big = state.with_vector(state.to_vector() * 1e4)
    lsoda = integrate(big, 1.0, 100.0, method="LSODA")
    radau = integrate(big, 1.0, 100.0, method="Radau", rtol=1e-10, atol=1e-12)
    assert 1e-3 < radau.learning_times[0] < 2e-3
    np.testing.assert_allclose(lsoda.learning_times, radau.learning_times, rtol=1e-5)


def test_cubic_hermite_interpolant_of_two_records():
    """The plateau exits start from the cubic with the records' values and derivatives at
    both ends: a cubic is reproduced exactly, and the ends are met."""
    from odesolve.integrator.events import _cubic_hermite
    ta, tb = 2.0, 5.5
    coef = np.array([[0.3, -1.0, 0.25, 0.05], [1.0, 0.0, -2.0, 0.1]])      # c0 + c1 t + ...

    def value(t):
        return coef @ t ** np.arange(4)

    def slope(t):
        return coef[:, 1:] @ (np.arange(1, 4) * t ** np.arange(3))

    p = _cubic_hermite(ta, tb, value(ta), value(tb), slope(ta), slope(tb))
    for t in np.linspace(ta, tb, 7):
        np.testing.assert_allclose(p(t), value(t), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(p(ta), value(ta))
    # an interval of 1e-108 (its cube underflowed: a division by zero warned)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = _cubic_hermite(1e-108, 3e-108, value(0.0), value(1.0), slope(0.0), slope(1.0))
        np.testing.assert_allclose(tiny(3e-108), value(1.0), rtol=1e-14)


@pytest.mark.parametrize("method", ["LSODA", "CVODE", "RK45"])
def test_outputs_as_near_t0_as_allowed_are_integrated(method):
    """The nearest output time allowed (NEAREST after t0) is stepped to by every solver,
    and the state there is the initial one."""
    from odesolve.integrator.grid import NEAREST
    state = State.random(Autoencoder(K=2, activation="erf"),
                         spiked_covariance(500, [2.0, 1.0], 0.5), scale=0.1, seed=2)
    traj = integrate(state, 1.0, (0.0, 50.0), t_eval=[0.0, NEAREST, 1.0, 50.0], method=method)
    np.testing.assert_array_equal(traj.error[1], traj.error[0])
    reference = integrate(state, 1.0, (0.0, 50.0), t_eval=[0.0, 1.0, 50.0], method=method)
    np.testing.assert_allclose(traj.error[2:], reference.error[1:], rtol=1e-5)
