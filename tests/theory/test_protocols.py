"""Training protocols in the theory: schedules, per-layer rates, weight decay, mini-batches,
and states built from order parameters (see docs/theory.md §8).

Each protocol term is checked where dropping it shows: the RHS against the Monte-Carlo
average of one step of an independent SGD implementation (rates and decay), the
integrated schedule against the exact time change ``θ(t) = ∫η``, and the linear
autoencoder's converged error and weight norms under decay against their closed forms.
"""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, State, integrate, spiked_covariance
from odesolve.protocols import Protocol, constant, exponential, piecewise, power_law
from odesolve.testing.sgd_oracle import compiled_drift, monte_carlo_drift, random_state
from simulations.step import sgd_step

SPEC = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)


# --------------------------------------------------------------------------- #
# Schedules and protocols as data
# --------------------------------------------------------------------------- #
def test_schedule_values():
    t = np.array([0.0, 5.0, 10.0, 30.0])
    np.testing.assert_allclose(constant()(t), 1.0)
    np.testing.assert_allclose(piecewise([5.0, 20.0], [1.0, 0.5, 0.2])(t), [1.0, 0.5, 0.5, 0.2])
    np.testing.assert_allclose(power_law(10.0, 2.0)(t), (1 + t / 10.0) ** -2.0)
    np.testing.assert_allclose(exponential(10.0)(t), np.exp(-t / 10.0))
    user = Protocol(schedule=lambda s: 2.0 if s < 1 else 0.5).schedule
    np.testing.assert_allclose(user(np.array([0.5, 3.0])), [2.0, 0.5])
    assert user.kind == "callable" and user(0.0) == 2.0


@pytest.mark.parametrize("make,match", [
    (lambda: piecewise([5.0, 2.0], [1.0, 1.0, 1.0]), "strictly increasing"),
    (lambda: piecewise([5.0], [1.0]), "needs 2 factors"),
    (lambda: piecewise([], [1.0]), "at least one change time"),
    (lambda: power_law(0.0, 1.0), "tau must be finite and > 0"),
    (lambda: exponential(float("nan")), "must be finite"),
    (lambda: Protocol(encoder_rate=0.0), "encoder rate must be finite and > 0"),
    (lambda: Protocol(decoder_decay=-1.0), "decoder decay must be finite and >= 0"),
    (lambda: Protocol(batch_size=0), "batch size must be an integer >= 1"),
    (lambda: Protocol(schedule=lambda t: -1.0).schedule(1.0), "factors must be finite and >= 0"),
])
def test_bad_protocols_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("times, factors, error, match", [
    (1.0, [1, 1], ValueError, "change times must be a 1-d list of numbers"),
    ([1.0], 2.0, ValueError, "factors must be a 1-d list of numbers"),
    ("1", [1, 1], TypeError, "change times must be numbers"),
    ([[1.0, 2.0]], [1, 1], ValueError, "1-d list"),
    ([1.0, float("nan")], [1, 1, 1], ValueError, "must be finite"),
])
def test_a_piecewise_schedule_of_scalars_is_a_clear_error(times, factors, error, match):
    """It was "'float' object is not iterable"."""
    with pytest.raises(error, match=match):
        piecewise(times, factors)


def test_protocol_type_errors():
    with pytest.raises(TypeError, match="schedule must be"):
        Protocol(schedule=3.0)
    with pytest.raises(TypeError, match="expected a real number"):
        Protocol(schedule=lambda t: "fast").schedule(0.0)
    with pytest.raises(TypeError, match="protocol must be"):
        integrate(State.random(Autoencoder(K=1, activation="linear"), SPEC), 1.0, 1.0,
                  protocol={"batch_size": 2})


def test_tied_weights_take_one_rate_and_one_decay():
    tied = Autoencoder(K=2, activation="erf", tied=True)
    state = State.random(tied, SPEC)
    with pytest.raises(ValueError, match="tied weights have one vector"):
        integrate(state, 1.0, 1.0, protocol=Protocol(decoder_rate=2.0))
    with pytest.raises(ValueError, match="euler"):
        integrate(State.random(Autoencoder(K=2, activation="erf"), SPEC), 1.0, 1.0,
                  method="euler", protocol=Protocol(schedule=exponential(3.0)))


# --------------------------------------------------------------------------- #
# Rates and decay: RHS against one SGD step (Monte Carlo), simulator step exact
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("activation,bias", [("erf", "none"), ("relu", "trained")])
def test_rates_and_decay_match_monte_carlo_sgd_step(activation, bias):
    rng = np.random.default_rng(2024)
    model = Autoencoder(K=2, activation=activation, bias=bias)
    spec, W, V, m = random_state(model, rng, 1000)
    protocol = Protocol(encoder_rate=1.7, decoder_rate=0.6, bias_rate=2.5, encoder_decay=0.8,
                        decoder_decay=1.3)
    rates = (1.7, 0.6, 2.5, 0.8, 1.3)
    mean, se = monte_carlo_drift(model, spec, W, V, m, 0.7, rng, 10_000, rates=rates)
    theory = compiled_drift(model, spec, W, V, m, 0.7, protocol)
    z = (mean - theory) / np.where(se > 0, se, np.inf)
    assert np.max(np.abs(z)) < 4.0, f"max |z| = {np.max(np.abs(z)):.2f}"
    # power: the plain equations (each protocol term dropped) are far off
    for dropped in (Protocol(encoder_rate=1.7, decoder_rate=0.6, bias_rate=2.5),
                    Protocol(encoder_decay=0.8, decoder_decay=1.3)):
        wrong = compiled_drift(model, spec, W, V, m, 0.7, dropped)
        assert np.max(np.abs((mean - wrong) / np.where(se > 0, se, np.inf))) > 8.0


@pytest.mark.parametrize("tied", [False, True])
def test_simulator_step_applies_rates_and_decay(tied):
    """The compiled simulator step equals the independent reference increments."""
    from odesolve.testing.sgd_oracle import activation_and_derivative, sgd_increments
    rng = np.random.default_rng(5)
    model = Autoencoder(K=2, activation="erf", tied=tied)
    spec, W, V, m = random_state(model, rng, 200)
    x = spec.sample(1, rng)
    rates = (1.7, 1.7, 1.0, 0.8, 0.8) if tied else (1.7, 0.6, 1.0, 0.8, 1.3)
    protocol = Protocol(encoder_rate=rates[0], decoder_rate=rates[1], encoder_decay=rates[3],
                        decoder_decay=rates[4])
    W1, V1, _ = sgd_step(model, x[0], W, None if tied else V, m, 0.9, protocol=protocol)
    dW, dV, _ = sgd_increments(x, W, V, m, 0.9, *activation_and_derivative("erf"), tied=tied,
                               rates=rates)
    np.testing.assert_allclose(W1, W + dW[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(V1, V + dV[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- #
# Schedules: explicit η(t) equals the time change θ(t) = ∫η
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("schedule,theta", [
    (power_law(5.0, 1.0), lambda t: 5.0 * np.log1p(t / 5.0)),
    (power_law(4.0, 0.5), lambda t: 8.0 * (np.sqrt(1 + t / 4.0) - 1)),
    (exponential(20.0), lambda t: 20.0 * (1 - np.exp(-t / 20.0))),
    (piecewise([3.0, 10.0], [1.0, 0.3, 0.1]),
     lambda t: np.minimum(t, 3) + 0.3 * np.clip(t - 3, 0, 7) + 0.1 * np.clip(t - 10, 0, None)),
    (lambda t: 1.0 / (1.0 + t), np.log1p),
])
def test_schedule_is_the_time_change(schedule, theta):
    model = Autoencoder(K=2, activation="erf")
    state = State.random(model, SPEC, 0.1, seed=1)
    t = np.linspace(0.0, 40.0, 21)
    scheduled = integrate(state, 1.5, 40.0, t_eval=t, protocol=Protocol(schedule=schedule))
    plain = integrate(state, 1.5, (0.0, theta(t[-1])), t_eval=theta(t))
    np.testing.assert_allclose(scheduled.error, plain.error, rtol=0, atol=2e-6)
    assert np.max(np.abs(scheduled.error - integrate(state, 1.5, 40.0, t_eval=t).error)) > 0.01


def test_batch_divides_the_drift_rate():
    """A step averages B samples: in samples-time the drift is that of rate η/B."""
    model = Autoencoder(K=2, activation="erf")
    state = State.random(model, SPEC, 0.1, seed=2)
    batched = integrate(state, 2.0, 30.0, n_points=15, protocol=Protocol(batch_size=4))
    slow = integrate(state, 0.5, 30.0, n_points=15)
    np.testing.assert_allclose(batched.error, slow.error, rtol=1e-12)


# --------------------------------------------------------------------------- #
# Weight decay: the linear autoencoder's fixed point in closed form
# --------------------------------------------------------------------------- #
def test_linear_autoencoder_with_weight_decay_converges_to_closed_form():
    """Stationary points of ε + κ_w|W|²/2 + κ_v|V|²/(2D): unit k on spike s_k has
    p = a_k b_k = 1 − κ/s_k (κ = √(κ_w κ_v)), κ_w a_k² = κ_v b_k² = s_k p(1 − p), and
    ε = ε_PCA(K) + Σ_k κ²/(2 s_k) (docs/theory.md §8)."""
    spikes, kw, kv = np.array([2.0, 1.0]), 0.3, 0.2
    spec = spiked_covariance(D=1000, spikes=list(spikes), bulk=0.05)
    model = Autoencoder(K=2, activation="linear")
    protocol = Protocol(encoder_decay=kw, decoder_decay=kv, encoder_rate=1.5, decoder_rate=0.7)
    traj = integrate(State.random(model, spec, 0.1, seed=0), 1.0, 400.0, n_points=20,
                     protocol=protocol)
    kappa2 = kw * kv
    predicted = spec.pca_error(2) + np.sum(kappa2 / (2 * spikes))
    assert traj.error[-1] == pytest.approx(predicted, abs=1e-9)
    assert traj.error[-1] - spec.pca_error(2) > 0.02      # the decay term is visible
    # norms per spike, summed over units (the decay keeps the hidden-space rotation
    # symmetry W → OW, V → OV, so units may mix spikes; these sums are invariant)
    p = 1 - np.sqrt(kappa2) / spikes
    np.testing.assert_allclose(np.sum(traj.A[-1] ** 2, axis=0), spikes * p * (1 - p) / kw,
                               rtol=1e-6)
    np.testing.assert_allclose(np.sum(traj.B[-1] ** 2, axis=0), spikes * p * (1 - p) / kv,
                               rtol=1e-6)
    # the bulk decays away (limit closure): Q^B and T0^B → 0
    assert np.max(np.abs(traj.state().G)) < 1e-6


def test_decay_above_the_spike_switches_the_unit_off():
    """κ = √(κ_w κ_v) ≥ s: the only stationary point is a = b = 0, ε = E0."""
    spec = spiked_covariance(D=1000, spikes=[0.7, 0.5], bulk=0.05)
    model = Autoencoder(K=2, activation="linear")
    traj = integrate(State.random(model, spec, 0.1, seed=0), 1.0, 300.0, n_points=10,
                     protocol=Protocol(encoder_decay=0.8, decoder_decay=0.8))
    assert traj.error[-1] == pytest.approx(spec.initial_error, abs=1e-8)


# --------------------------------------------------------------------------- #
# States from order parameters
# --------------------------------------------------------------------------- #
def _bulk_aggregates(state):
    K, s_b = state.model.K, state.spectrum.bulk / state.spectrum.D
    G = state.G
    return dict(Q_bulk=s_b * G[:K, :K], R_bulk=s_b * G[K:, :K], T0_bulk=G[K:, K:])


def test_state_from_order_parameters_round_trip():
    model = Autoencoder(K=2, activation="erf")
    state = State.random(model, SPEC, 0.3, seed=4)
    again = State.from_order_parameters(model, SPEC, state.A, state.B, **_bulk_aggregates(state))
    np.testing.assert_allclose(again.to_vector(), state.to_vector(), rtol=1e-12, atol=1e-14)
    for name in "QRT":
        np.testing.assert_allclose(getattr(again.order_parameters(), name),
                                   getattr(state.order_parameters(), name), rtol=1e-12)
    tied = Autoencoder(K=2, activation="erf", tied=True)
    st = State.random(tied, SPEC, 0.3, seed=4)
    s_b = SPEC.bulk / SPEC.D
    back = State.from_order_parameters(tied, SPEC, st.A, Q_bulk=s_b * st.G)
    np.testing.assert_allclose(back.G, st.G, rtol=1e-12)


def test_state_from_order_parameters_refuses_inconsistent_input():
    model = Autoencoder(K=2, activation="erf")
    A, B = np.zeros((2, 2)), np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"A must have shape \(2, 2\)"):
        State.from_order_parameters(model, SPEC, np.zeros((2, 3)), B)
    with pytest.raises(ValueError, match="decoder overlaps B"):
        State.from_order_parameters(model, SPEC, A)
    with pytest.raises(ValueError, match="not have them|no weights have them"):
        State.from_order_parameters(model, SPEC, A, B, Q_bulk=np.diag([0.01, -0.01]))
    with pytest.raises(ValueError, match="no weights have them"):  # |R|² > s_b Q T0
        State.from_order_parameters(model, SPEC, A, B, Q_bulk=0.01 * np.eye(2),
                                    R_bulk=0.01 * np.eye(2), T0_bulk=0.01 * np.eye(2))
    with pytest.raises(ValueError, match="Q_bulk must be symmetric"):
        State.from_order_parameters(model, SPEC, A, B, Q_bulk=[[0.01, 0.001], [0.0, 0.01]])
    with pytest.raises(ValueError, match="NaN"):
        State.from_order_parameters(model, SPEC, A, B, T0_bulk=[[np.nan, 0], [0, 1]])
    with pytest.raises(ValueError, match="no bulk modes"):
        from odesolve import given_spectrum
        spec = given_spectrum([3.0, 2.0, 1.0, 0.5])
        State.from_order_parameters(model, spec, np.zeros((2, 4)), np.zeros((2, 4)),
                                    T0_bulk=np.eye(2))
    with pytest.raises(ValueError, match="B = A"):
        State.from_order_parameters(Autoencoder(K=2, activation="erf", tied=True), SPEC, A, B)
    with pytest.raises(ValueError, match="has no bias"):
        State.from_order_parameters(model, SPEC, A, B, m=[0.1, 0.0])


def test_euler_applies_rates_decay_and_batch():
    """The fixed-step scheme takes the same flow multipliers as the adaptive solvers."""
    model = Autoencoder(K=2, activation="erf")
    state = State.random(model, SPEC, 0.1, seed=3)
    protocol = Protocol(encoder_rate=1.4, decoder_rate=0.6, encoder_decay=0.1,
                        decoder_decay=0.2, batch_size=2)
    t = [0.0, 5.0, 20.0]
    euler = integrate(state, 1.5, 20.0, t_eval=t, method="euler", dt=2e-3, protocol=protocol)
    lsoda = integrate(state, 1.5, 20.0, t_eval=t, protocol=protocol)
    np.testing.assert_allclose(euler.error, lsoda.error, rtol=2e-3)
    assert np.max(np.abs(lsoda.error - integrate(state, 1.5, 20.0, t_eval=t).error)) > 0.05


@pytest.mark.parametrize("protocol", [Protocol(schedule=lambda t: 1e300),
                                      Protocol(schedule=lambda t: 1e150),
                                      Protocol(decoder_decay=1e50)],
                         ids=["rate 1e300", "rate 1e150", "decay 1e50"])
@pytest.mark.parametrize("method", ["LSODA", "CVODE"])
def test_a_solver_failure_reports_a_time_of_the_run(protocol, method, recwarn, capfd):
    """LSODA and CVODE give up on these: the report names a time within the run (it was
    a denormal such as 6.9e-310 from odeint's unset record, or an OverflowError of η²),
    and no numpy or odeint warning leaks, nor SUNDIALS' text on stdout or stderr."""
    from odesolve import DivergenceError
    state = State.random(Autoencoder(K=2), spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05),
                         seed=0)
    with pytest.raises(DivergenceError) as info:
        integrate(state, 1.0, 50.0, protocol=protocol, method=method)
    out, err = capfd.readouterr()
    assert out == "" and "WARNING" not in err and "Error" not in err
    # the solver may really have got stuck at t ~ 1e-29 (decay 1e50 sets steps of 1e-50)
    assert info.value.time == 0.0 or np.finfo(float).tiny < info.value.time <= 50.0
    assert not [w for w in recwarn if "odeint" in str(w.message).lower()
                or issubclass(w.category, RuntimeWarning)]
