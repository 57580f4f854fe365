"""CVODE (BDF with matrix-free GMRES, odesolve.integrator.cvode): the method ``auto`` takes
for large states.  Its curves and plateau exits against tight DOP853, every way of asking
for output times, the protocols and the wide (BLAS) right-hand side, and its failures:
runaway, Ctrl-C, and what its C library prints."""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, DivergenceError, State, integrate, spiked_covariance
from odesolve.codegen import compile_model
from odesolve.protocols import Protocol, power_law


def _state(K=6, spikes=6, D=1000, tied=False, scale=0.1):
    spec = spiked_covariance(D=D, spikes=[1.5 * 0.7**k for k in range(spikes)], bulk=0.05)
    return State.random(Autoencoder(K=K, activation="erf", tied=tied), spec, scale, seed=0)


@pytest.mark.parametrize("tied", [False, True])
def test_cvode_follows_tight_dop853_and_finds_the_plateau_exits(tied):
    """K = 6 through six plateaus to t = 300: the curve to the accuracy rtol = 1e-9 sets,
    every learning time found (CVODE's own root finding) and equal to DOP853's."""
    state = _state(tied=tied)
    ref = integrate(state, 1.0, 300.0, method="DOP853", rtol=1e-12, atol=1e-14)
    got = integrate(state, 1.0, 300.0, method="CVODE", rtol=1e-9, atol=1e-11)
    assert got.method == "CVODE" and got.nfev > 0
    np.testing.assert_allclose(got.error, ref.error, rtol=1e-6)
    np.testing.assert_allclose(got.Q, ref.Q, rtol=0, atol=1e-6)
    found = np.isfinite(ref.learning_times)
    assert found.sum() >= 3
    np.testing.assert_array_equal(np.isfinite(got.learning_times), found)
    np.testing.assert_allclose(got.learning_times[found], ref.learning_times[found], rtol=1e-6)


@pytest.mark.parametrize("K, tied, n", [(1, False, 1), (3, True, 2), (5, False, 4)])
def test_the_packed_state_holds_g_once_and_unpacks_to_the_full_state(K, tied, n):
    """CVODE's vector (odesolve.integrator.packing): G's lower triangle only, and back."""
    from odesolve.integrator.packing import pack, packed_size, unpack
    state = _state(K=K, spikes=n, tied=tied)
    y, P = state.to_vector(), state.Y.shape[0]
    packed = np.full(packed_size(y.size, P), np.nan)
    pack(y, packed, state.Y.size, P)
    rows, cols = np.tril_indices(P)
    np.testing.assert_array_equal(packed, np.concatenate([state.Y.ravel(), state.G[rows, cols],
                                                          state.m]))
    back = np.full(y.size, np.nan)
    unpack(packed, back, state.Y.size, P)
    np.testing.assert_array_equal(back, y)


def test_cvode_records_a_symmetric_g_that_matches_lsoda():
    """The G of every record is the full symmetric matrix, as LSODA's."""
    state = _state(K=3, spikes=2)
    got = integrate(state, 1.0, 50.0, method="CVODE", rtol=1e-10, atol=1e-12)
    ref = integrate(state, 1.0, 50.0, method="LSODA", rtol=1e-10, atol=1e-12)
    G = np.stack([got.state(i).G for i in range(len(got.t))])
    np.testing.assert_array_equal(G, np.swapaxes(G, 1, 2))
    np.testing.assert_allclose(G, np.stack([ref.state(i).G for i in range(len(ref.t))]),
                               rtol=0, atol=1e-8)


def test_cvode_error_shrinks_with_the_tolerance():
    state = _state(K=3, spikes=3)
    ref = integrate(state, 1.0, 200.0, method="DOP853", rtol=1e-12, atol=1e-14)
    # atol with rtol: at the default atol the absolute part caps the accuracy from
    # rtol ≈ 1e-7 on (errors 6.2e-6, 4.6e-6, 1.0e-6 at rtol 1e-5, 1e-6, 1e-7)
    errors = [np.max(np.abs(integrate(state, 1.0, 200.0, method="CVODE", rtol=r,
                                      atol=1e-3 * r).error - ref.error))
              for r in (1e-5, 1e-7, 1e-9)]
    assert errors[0] > 10 * errors[1] > 100 * errors[2]


def test_cvode_output_times_of_every_kind():
    """An output grid that starts after t0, a single time, and t0 alone."""
    state = _state(K=2, spikes=2, D=500)
    full = integrate(state, 1.0, (1.0, 50.0), method="CVODE", t_eval=[1.0, 10.0, 30.0, 50.0],
                     rtol=1e-10, atol=1e-12)
    later = integrate(state, 1.0, (1.0, 50.0), method="CVODE", t_eval=[10.0, 30.0, 50.0],
                      rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(later.error, full.error[1:], rtol=1e-8)
    one = integrate(state, 1.0, (1.0, 50.0), method="CVODE", t_eval=[50.0], rtol=1e-10,
                    atol=1e-12)
    np.testing.assert_allclose(one.error, full.error[-1:], rtol=1e-8)
    start = integrate(state, 1.0, (1.0, 50.0), method="CVODE", t_eval=[1.0])
    assert start.error[0] == full.error[0]


def test_cvode_with_a_schedule_rates_and_decay_matches_dop853():
    """The protocol's time-dependent rate (the right-hand side outside the compiled
    guard) gives the curve DOP853 gives."""
    state = _state(K=3, spikes=3, D=500)
    protocol = Protocol(schedule=power_law(tau=10.0, beta=0.5), decoder_rate=0.5,
                        encoder_decay=0.01)
    ref = integrate(state, 1.0, 100.0, method="DOP853", protocol=protocol, rtol=1e-11,
                    atol=1e-13)
    got = integrate(state, 1.0, 100.0, method="CVODE", protocol=protocol, rtol=1e-9,
                    atol=1e-11)
    np.testing.assert_allclose(got.error, ref.error, rtol=1e-6)


@pytest.mark.slow
def test_cvode_on_the_wide_right_hand_side(monkeypatch):
    """K = 64 untied (P = 128 rows) on the BLAS right-hand side, to t = 20, against RK45
    on the compiled loops."""
    from odesolve.integrator import flow
    state = _state(K=64, spikes=3, D=1000)
    ref = integrate(state, 1.0, 20.0, method="RK45", rtol=1e-10, atol=1e-12, n_points=20)
    monkeypatch.setattr(flow, "BLAS_MIN_UNITS", 64)
    assert flow._FlowArguments(compile_model(state.model), state, 1.0, "limit", None,
                               False).wide
    got = integrate(state, 1.0, 20.0, n_points=20)
    assert got.method == "CVODE"
    np.testing.assert_allclose(got.error, ref.error, rtol=1e-5)


def test_ctrl_c_stops_cvode(monkeypatch):
    """KeyboardInterrupt raised in a callback (the pace notice, due from the start, runs
    in every right-hand side) leaves the C solver and reaches the caller."""
    from odesolve.integrator import solve

    class Interrupt:
        due = 0.0

        def __init__(self, *args, **kwargs):
            self.calls = 0

        def __call__(self, t):
            self.calls += 1
            if self.calls == 50:
                raise KeyboardInterrupt

    monkeypatch.setattr(solve, "PaceNotice", Interrupt)
    with pytest.raises(KeyboardInterrupt):
        integrate(_state(K=2, spikes=2, D=500), 1.0, 1e3, method="CVODE")


@pytest.mark.filterwarnings("ignore::odesolve.RegimeWarning")
def test_cvode_failure_message_is_one_exception_and_nothing_on_stdout(capfd):
    """SUNDIALS' own error text (printed by the wrapper) goes into the exception."""
    state = _state(K=2, spikes=2, D=500)
    with pytest.raises(DivergenceError, match="floating-point times are .* apart") as info:
        integrate(state, 1.0, (1e14, 1e14 + 10.0), method="CVODE")
    out, err = capfd.readouterr()
    assert out == "" and "WARNING" not in err
    assert "min step" in str(info.value)


def test_cvode_output_at_t0_only_from_t0_zero():
    """t_eval = [0] with t0 = 0 was a RuntimeError from SUNDIALS (a step floor of
    4·spacing(0) refused); the initial state is the record, as for every method."""
    state = _state(K=2, spikes=2, D=500)
    traj = integrate(state, 1.0, 50.0, method="CVODE", t_eval=[0.0])
    assert traj.t.tolist() == [0.0] and traj.error[0] == integrate(
        state, 1.0, 50.0, method="LSODA", t_eval=[0.0]).error[0]


@pytest.mark.parametrize("activation, factor", [("relu", 1e6), ("x**3", 1e4)])
def test_cvode_follows_a_violent_start(activation, factor):
    """Huge initial weights: the decoder collapses on a time scale of ~1/E[g²] (1e-24
    for x³ at ×1e4).  The step floor came from the final time (4·spacing(50) = 2.8e-14),
    so the first step failed, and the runaway check fired on CVODE's trial vectors, not
    on its solution.  Now the run goes through and, after the transient, agrees with a
    run split at t = 1e-6 (where the second piece starts with fresh step sizes; within
    the transient a record interpolated inside one long step is not resolved, as with
    any implicit method)."""
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=3, activation=activation), spec, 0.1, seed=0)
    state = state.with_vector(state.to_vector() * factor)
    whole = integrate(state, 1.0, 50.0, method="CVODE", t_eval=[0.0, 1e-6, 25.0, 50.0],
                      rtol=1e-9)
    first = integrate(state, 1.0, 1e-6, method="CVODE", t_eval=[0.0, 1e-6], rtol=1e-9)
    second = integrate(first.states[-1], 1.0, (1e-6, 50.0), method="CVODE",
                       t_eval=[1e-6, 25.0, 50.0], rtol=1e-9)
    assert np.all(np.isfinite(whole.error)) and whole.error[-1] < 1.0 < whole.error[0]
    np.testing.assert_allclose(whole.error[2:], second.error[1:], rtol=1e-5)


def _huge_cubic_start():
    """x³, K = 2, the overlaps of a default start times 10⁴ (initial ε = 5.5·10²³): the
    decoder's overlaps collapse to ~2·10⁻⁸ while the encoder's stay ~700, under the
    default atol of 10⁻⁹ scaled on the initial state."""
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0], bulk=0.05)
    state = State.random(Autoencoder(K=2, activation="x**3"), spec, 0.1, seed=0)
    return state.with_vector(state.to_vector() * 1e4)


def test_a_default_atol_that_does_not_resolve_the_error_is_scaled_down():
    """On the huge start the default atol gave ε(100) = 305 (CVODE) and 0.488 (LSODA); the
    runs are now repeated with a smaller atol until two agree, with CVODE after LSODA
    disagreed: ε(100) = 0.5526292520, the value of CVODE at (rtol, atol) = (10⁻⁷, 10⁻¹⁸),
    (10⁻⁹, 10⁻²⁰), (10⁻¹¹, 10⁻²²) and (10⁻¹², 10⁻²²) to 10 digits (scratch measurement of
    2026-12-01, CVODE on the packed state; (10⁻¹⁰, 10⁻²⁰) was 1.0·10⁻⁷ off)."""
    import warnings
    state = _huge_cubic_start()
    reference = integrate(state, 1.0, 100.0, method="CVODE", rtol=1e-11, atol=1e-22)
    assert abs(reference.error[-1] - 0.5526292520) < 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("auto", "CVODE"):
            traj = integrate(state, 1.0, 100.0, method=method)
            assert traj.method == "CVODE"
            np.testing.assert_allclose(traj.error[-1], reference.error[-1], rtol=1e-5)


def test_an_error_that_does_not_converge_as_atol_falls_is_a_warning():
    """LSODA asked for by name on the huge start: its runs at atol scaled down 10⁷× and
    more do not agree (LSODA did not converge on this start at any tolerance)."""
    from odesolve import ToleranceWarning
    with pytest.warns(ToleranceWarning, match="LSODA's error does not converge as atol falls"):
        integrate(_huge_cubic_start(), 1.0, 100.0, method="LSODA")


def test_reruns_survive_a_failing_lsoda_and_a_loose_rtol():
    """Found by an attack: on the cubic start × 3·10⁴ LSODA returned a negative error
    (−1.3·10³), and its rerun at atol 10⁻²⁷ (the shrink factor had no floor) stopped with
    a DivergenceError that blamed the flow; now a negative error counts as unresolved,
    the factor is at least 10⁻⁸ and "auto" goes on with CVODE.  At rtol = 10⁻³ two runs
    cannot agree to 10⁻⁴: agreement is now to max(10⁻⁴, 100 rtol), and the start × 100
    ends without a warning and within 10⁻³ of a tight run."""
    import warnings
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0], bulk=0.05)
    start = State.random(Autoencoder(K=2, activation="x**3"), spec, 0.1, seed=0)
    huge = start.with_vector(start.to_vector() * 3e4)
    reference = integrate(huge, 1.0, 100.0, method="CVODE", rtol=1e-10, atol=1e-20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj = integrate(huge, 1.0, 100.0)
        assert traj.method == "CVODE"
        np.testing.assert_allclose(traj.error[-1], reference.error[-1], rtol=1e-6)
        large = start.with_vector(start.to_vector() * 100)
        loose = integrate(large, 1.0, 100.0, rtol=1e-3)
    tight = integrate(large, 1.0, 100.0, method="CVODE", rtol=1e-10, atol=1e-20)
    np.testing.assert_allclose(loose.error[1:], tight.error[1:], rtol=1e-3)


@pytest.mark.parametrize("K, factor", [(2, 3e4), (3, 1e4)])
def test_a_first_run_that_runs_away_on_a_huge_start_is_taken_again_by_cvode(K, factor):
    """Found checking other inputs of the kind: x³ (seed 1) started × 3·10⁴ at K = 2 made
    LSODA run away, and × 10⁴ at K = 3 made LSODA and CVODE at the default atol run away
    (DivergenceError); CVODE at a 10⁸× smaller atol follows both to the reference."""
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0, 0.6], bulk=0.05)
    start = State.random(Autoencoder(K=K, activation="x**3"), spec, 0.1, seed=1)
    huge = start.with_vector(start.to_vector() * factor)
    traj = integrate(huge, 1.0, 50.0)
    reference = integrate(huge, 1.0, 50.0, method="CVODE", rtol=1e-10, atol=1e-22)
    assert traj.method == "CVODE"
    np.testing.assert_allclose(traj.error[-1], reference.error[-1], rtol=1e-5)


def test_the_tolerance_probe_separates_resolved_runs_from_unresolved_ones(monkeypatch):
    """atol_sensitivity: below 10⁻⁷ of the error on an ordinary run (the largest of 41
    measured, docs/theory.md § 10, was 7·10⁻⁸), above 0.1 on the huge start; and an
    ordinary run is not repeated."""
    from odesolve.integrator import solve
    from odesolve.integrator.flow import _error_function
    from odesolve.integrator.grid import atol_sensitivity, default_atol
    from odesolve.codegen import compile_model
    for state, t in ((_state(K=3, spikes=3, D=500), 1e3), (_huge_cubic_start(), 100.0)):
        traj = integrate(state, 1.0, t, method="CVODE", atol=float(np.min(default_atol(state))))
        ys = np.array([s.to_vector() for s in traj.states])
        worst, _ = atol_sensitivity(_error_function(compile_model(state.model), state), ys,
                                    default_atol(state), state.spectrum.initial_error)
        assert worst < 1e-7 if t == 1e3 else worst > 0.1
    runs, original = [], solve._cvode

    def counted(*args):
        runs.append(1)
        return original(*args)

    monkeypatch.setattr(solve, "_cvode", counted)
    integrate(_state(K=3, spikes=3, D=500), 1.0, 1e3, method="CVODE")
    assert len(runs) == 1


def test_lsoda_plateau_exit_after_a_violent_start():
    """The first plateau exit between t = 0 and the first record of a huge initial state:
    the Hermite interpolant's derivatives overflowed and brentq raised 'f(a) and f(b) must
    have different signs' from inside integrate; now the records' secant is refined."""
    spec = spiked_covariance(D=500, spikes=[1.5, 1.0, 0.6], bulk=0.05)
    state = State.random(Autoencoder(K=3, activation="x**3"), spec, 0.1, seed=0)
    state = state.with_vector(state.to_vector() * 100)
    traj = integrate(state, 1.0, 50.0)
    assert traj.method == "LSODA" and np.all(np.isfinite(traj.error))
    assert 0.0 < traj.learning_times[0] <= traj.t[1]
    # moving this state by the default atol moves its error by all of itself, but LSODA
    # is right to 10⁻⁷ (its rerun at a smaller atol agrees): CVODE at rtol 10⁻¹¹
    reference = integrate(state, 1.0, 50.0, method="CVODE", rtol=1e-11, atol=1e-22)
    np.testing.assert_allclose(traj.error[-1], reference.error[-1], rtol=1e-5)


def test_cvode_stops_where_the_solution_exceeds_the_norm_limit(monkeypatch):
    """The runaway check is a root of the solution's largest entry (trial vectors may
    exceed it harmlessly); here the limit is lowered so that an ordinary run reaches it."""
    from odesolve.integrator import cvode
    state = _state(K=2, spikes=2, D=500, scale=0.01)      # the decoder grows 10×
    start = np.max(np.abs(state.to_vector()))
    records = integrate(state, 1.0, 1e3, method="LSODA").states
    peak, when = max((np.max(np.abs(s.to_vector())), i) for i, s in enumerate(records))
    assert peak > 2 * start
    limit = (start + peak) / 2
    monkeypatch.setattr(cvode, "NORM_LIMIT", limit)
    with pytest.raises(DivergenceError, match=f"an overlap exceeded {limit:g}") as info:
        integrate(state, 1.0, 1e3, method="CVODE")
    assert 0.0 < info.value.time < 1e3


def test_cvode_in_threads_leaves_other_output_and_stdout_alone(capsys):
    """SUNDIALS' messages are caught per thread: contextlib.redirect_stdout had swallowed
    other threads' prints during a run, and overlapping runs could leave sys.stdout a
    buffer for good."""
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor
    state = _state(K=3, spikes=3, D=500)
    integrate(state, 1.0, 1.0, method="CVODE")
    before = sys.stdout
    running = threading.Thread(target=lambda: integrate(state, 1.0, 1e5, method="CVODE"))
    running.start()
    print("printed during a run")
    running.join()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda t: integrate(state, 1.0, t, method="CVODE"), [1e2, 1e3, 1e4] * 3))
    assert sys.stdout is before
    print("printed after")
    assert capsys.readouterr().out == "printed during a run\nprinted after\n"


def test_cvode_finds_a_plateau_exit_crossed_very_slowly():
    """4,096 tracked modes of a decaying spectrum, K = 3: ε falls through the first level
    at dε/dt ≈ −8·10⁻⁶ (t ≈ 163), so ε − level is zero to rounding at the root and just
    after it, and CVODE stopped with 'root found at and very near t'.  A level's root
    function is now a constant once found; the exit agrees with RK45's."""
    from odesolve import given_spectrum
    eigenvalues = np.sort(np.random.default_rng(0).exponential(1.0, 4096) ** 2)[::-1]
    spec = given_spectrum(eigenvalues * 4096 / eigenvalues.sum())
    state = State.random(Autoencoder(K=3, activation="erf"), spec, seed=0)
    got = integrate(state, 1.0, 300.0)
    assert got.method == "CVODE"
    ref = integrate(state, 1.0, 300.0, method="RK45", rtol=1e-9)
    assert np.isfinite(ref.learning_times[0]) and np.isnan(ref.learning_times[1:]).all()
    np.testing.assert_allclose(got.learning_times[0], ref.learning_times[0], rtol=1e-5)
    assert np.isnan(got.learning_times[1:]).all()
