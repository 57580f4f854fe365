"""Data, state, generated code and integrator: consistency and error handling."""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import (Autoencoder, DivergenceError, OrderParameters, State, compile_model,
                      covariance_spectrum, generalisation_error, given_spectrum, integrate,
                      sinusoidal_spiked_covariance, spiked_covariance)
from odesolve.spec.spectra import sinusoidal_inputs
from odesolve.integrator import rhs_function
from odesolve.testing.reference_rhs import reference_rhs

from odesolve.testing.sgd_oracle import activation_and_derivative


@pytest.mark.parametrize("activation,tied,rule,bias", [
    ("erf", False, "sgd", "none"), ("erf", True, "truncated", "none"),
    ("relu", False, "sgd", "trained"), ("linear", True, "sanger", "none"),
])
@pytest.mark.slow
def test_generated_rhs_equals_reference(activation, tied, rule, bias):
    model = Autoencoder(K=3, activation=activation, tied=tied, rule=rule, bias=bias)
    spec = spiked_covariance(D=400, spikes=[1.5, 0.8, 0.3], bulk=0.2)
    state = State.random(model, spec, scale=0.4, seed=3, bias=0.2 if model.has_bias else 0.0)
    for bulk in ("limit", "finite"):
        generated = rhs_function(compile_model(model), state, 0.8, bulk)(0.0, state.to_vector())
        np.testing.assert_allclose(generated, reference_rhs(state, 0.8, bulk), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "erf", "relu", "sign"])
def test_error_formula_matches_monte_carlo_loss(activation):
    """ε from order parameters equals the sample average of ‖x − x̂‖²/(2D)."""
    rng = np.random.default_rng(1)
    D, K = 300, 2
    spec = spiked_covariance(D, spikes=[1.0, 0.5], bulk=0.4)
    W = rng.normal(0, 0.7, (K, D))
    V = rng.normal(0, 0.7, (K, D))
    V[:, :2] *= np.sqrt(D)
    g, _ = activation_and_derivative(activation)
    X = spec.sample(100_000, rng)
    recon = g(X @ W.T / np.sqrt(D)) @ V
    losses = ((X - recon) ** 2).sum(1) / (2 * D)
    predicted = generalisation_error(Autoencoder(K, activation),
                                     OrderParameters.from_weights(spec, W, V))
    assert abs(losses.mean() - predicted) < 4 * losses.std() / np.sqrt(len(losses))


def test_bulk_closure_is_exact_at_finite_D():
    """The bulk Gram matrix carries all bulk modes exactly ("finite" bulk)."""
    model = Autoencoder(K=2, activation="erf")
    spec = spiked_covariance(D=120, spikes=[1.5, 0.7], bulk=0.3)
    rng = np.random.default_rng(0)
    W, V = rng.normal(0, 0.1, (2, 120)), rng.normal(0, 0.1, (2, 120))
    closure = integrate(State.from_weights(model, spec, W, V), 1.0, 60.0, bulk="finite",
                        n_points=30, rtol=1e-10, atol=1e-12)
    every_mode = integrate(State.from_weights(model, spec.all_modes(), W, V), 1.0, 60.0,
                           n_points=30, rtol=1e-10, atol=1e-12)
    assert closure.mode == "closure-finite" and every_mode.mode == "all-modes"
    np.testing.assert_allclose(closure.error, every_mode.error, rtol=1e-7)
    np.testing.assert_allclose(closure.Q, every_mode.Q, atol=1e-8)


def test_only_lr_times_t_matters():
    model = Autoencoder(K=2, activation="erf")
    spec = spiked_covariance(D=500, spikes=[2.0, 1.0], bulk=0.05)
    state = State.random(model, spec, seed=1)
    times = np.geomspace(0.01, 100, 40)
    fast = integrate(state, 1.0, 100.0, t_eval=times, rtol=1e-10, atol=1e-12)
    slow = integrate(state, 0.25, 400.0, t_eval=4 * times, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.error, slow.error, rtol=1e-6)


def test_euler_parity_with_adaptive_solvers():
    model = Autoencoder(K=2, activation="erf")
    spec = spiked_covariance(D=200, spikes=[2.0, 1.0], bulk=0.05)
    state = State.random(model, spec, seed=2)
    times = np.linspace(0, 30, 31)
    ref = integrate(state, 1.0, 30.0, t_eval=times, method="DOP853", rtol=1e-11, atol=1e-13)
    for method in ("RK45", "LSODA", "CVODE"):
        other = integrate(state, 1.0, 30.0, t_eval=times, method=method, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(other.error, ref.error, rtol=1e-5)
    euler = integrate(state, 1.0, 30.0, t_eval=times, method="euler", dt=1e-3)
    np.testing.assert_allclose(euler.error, ref.error, rtol=1e-3)
    assert np.max(np.abs(euler.error - ref.error) / ref.error) > 1e-8  # Euler really ran


def test_auto_method_picks_lsoda_for_small_states_and_cvode_for_large_ones():
    from odesolve.integrator import AUTO_LSODA_MAX_SIZE
    model = Autoencoder(K=2, activation="erf")
    small = State.random(model, spiked_covariance(D=200, spikes=[2.0, 1.0], bulk=0.05), seed=0)
    eigenvalues = np.linspace(2.0, 0.1, 200)                      # 200 modes tracked: 800 variables
    large = State.random(model, given_spectrum(eigenvalues), seed=0)
    assert small.to_vector().size <= AUTO_LSODA_MAX_SIZE < large.to_vector().size
    assert integrate(small, 1.0, 5.0).method == "LSODA"
    assert integrate(large, 1.0, 5.0).method == "CVODE"
    for state in (small, large):
        ref = integrate(state, 1.0, 5.0, method="DOP853", rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(integrate(state, 1.0, 5.0).error, ref.error, rtol=1e-5)


def test_state_roundtrip_and_order_parameters_from_weights():
    model = Autoencoder(K=3, activation="erf")
    spec = covariance_spectrum(np.cov(np.random.default_rng(0).normal(size=(50, 400))))
    rng = np.random.default_rng(5)
    W, V = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    state = State.from_weights(model, spec, W, V)
    again = state.with_vector(state.to_vector())
    np.testing.assert_array_equal(again.Y, state.Y)
    exact = OrderParameters.from_weights(spec, W, V)
    got = state.order_parameters()
    for name in ("Q", "R", "T", "T0"):
        np.testing.assert_allclose(getattr(got, name), getattr(exact, name), atol=1e-12)


def test_sinusoidal_model_covariance_matches_samples():
    D, M = 200, 3
    spec = sinusoidal_spiked_covariance(D, M)
    X = sinusoidal_inputs(40_000, D, M, np.random.default_rng(0))
    X = X / X.std()
    top = np.sort(np.linalg.eigvalsh(np.cov(X.T)))[::-1][:M]
    np.testing.assert_allclose(top, spec.eigenvalues, rtol=0.05)
    assert spec.n_bulk == D - M


def test_blow_up_is_reported_with_time_and_learning_rate():
    model = Autoencoder(K=2, activation="erf")
    spec = spiked_covariance(D=100, spikes=[2.0, 1.0], bulk=0.05)
    with pytest.raises(DivergenceError, match=r"diverged at t = .* learning rate 5000"):
        integrate(State.random(model, spec, seed=0), 5000.0, 10.0, method="euler", dt=0.01)


@pytest.mark.parametrize("call,match", [
    (lambda: spiked_covariance(10, [1.0, -1.0]), "spikes must be finite and > 0"),
    (lambda: covariance_spectrum([[1.0, 2.0], [2.0, 1.0]]), "not positive semi-definite"),
    (lambda: covariance_spectrum(np.ones((2, 3))), "square"),
    (lambda: given_spectrum([1.0, -0.5, 1.0]), "not positive semi-definite"),
    (lambda: Autoencoder(K=2, activation="softplus_typo"), "unknown activation"),
    (lambda: Autoencoder(K=0), "K must be an integer >= 1"),
    (lambda: Autoencoder(K=2, rule="oja"), "unknown learning rule"),
    (lambda: Autoencoder(K=2, rule="sanger"), "tied weights"),
    # refused at construction, not later by integrate
    (lambda: Autoencoder(K=2, rule="sanger", tied=True, bias=True), "Sanger's rule has no loss"),
    (lambda: Autoencoder(K=2, rule="sanger", tied=True, bias="trained"), "bias update"),
    (lambda: State.random(Autoencoder(K=5), spiked_covariance(5, [1.0])), "need K < D"),
    (lambda: State.from_weights(Autoencoder(K=2), spiked_covariance(10, [1.0]), np.ones((2, 9)),
                                np.ones((2, 9))), "shape"),
    (lambda: State.from_weights(Autoencoder(K=2), spiked_covariance(10, [1.0]),
                                np.full((2, 10), np.nan), np.ones((2, 10))), "NaN"),
    # the NaN is named where it is (the whole list, cut at 200 characters, hid it)
    (lambda: given_spectrum(np.r_[np.ones(60), np.nan]), r"got nan at index 60"),
])
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_complex_eigenvalues_are_refused():
    """Their imaginary part was dropped, with only numpy's ComplexWarning."""
    with pytest.raises(TypeError, match="eigenvalues must be real numbers"):
        given_spectrum(np.r_[np.ones(10), 1j])


_SPEC = spiked_covariance(D=50, spikes=[2.0, 1.0], bulk=0.1)
_W = np.full((2, 50), 0.1)


@pytest.mark.parametrize("call,error,match", [
    # arguments that were ignored without a word
    (lambda: State.random(Autoencoder(K=2), _SPEC, seed=0, bias=0.5), ValueError,
     "initial bias = 0.5 given, but the model has no bias"),
    (lambda: State.from_weights(Autoencoder(K=2), _SPEC, _W, _W, m=[0.1, 0.0]), ValueError,
     "the model has no bias: m must be zero"),
    # complex weights lost their imaginary part with only numpy's ComplexWarning
    (lambda: State.from_weights(Autoencoder(K=2), _SPEC, _W + 1j, _W), TypeError,
     "W must be real numbers, got complex values"),
    (lambda: State.from_weights(Autoencoder(K=2, tied=True), _SPEC, _W + 0j), TypeError,
     "W must be real numbers"),
    (lambda: State.from_weights(Autoencoder(K=2), _SPEC, _W, _W - 1j), TypeError,
     "V must be real numbers"),
    (lambda: State.from_weights(Autoencoder(K=2, bias="fixed"), _SPEC, _W, _W, m=[1j, 0]),
     TypeError, "biases m must be real numbers"),
    (lambda: OrderParameters.from_weights(_SPEC, _W, _W, m=np.zeros(2) + 1j), TypeError,
     "biases m must be real numbers"),
    (lambda: OrderParameters.from_weights(_SPEC, _W, _W, m=np.zeros(3)), ValueError,
     r"biases m must have shape \(2,\)"),
    # a missing or wrong spectrum or model was an AttributeError from inside
    (lambda: State.random(Autoencoder(K=2), None, seed=0), TypeError,
     "spectrum must be an odesolve Spectrum .*got NoneType"),
    (lambda: State.random(Autoencoder(K=2), [2.0, 1.0], seed=0), TypeError,
     "spectrum must be an odesolve Spectrum .*got list"),
    (lambda: State.from_weights(Autoencoder(K=2), None, _W, _W), TypeError,
     "spectrum must be an odesolve Spectrum"),
    (lambda: State.from_order_parameters(Autoencoder(K=2), "spiked", np.zeros((2, 2))),
     TypeError, "spectrum must be an odesolve Spectrum"),
    (lambda: State.random("erf", _SPEC, seed=0), TypeError,
     "model must be an odesolve Autoencoder .*got str"),
    (lambda: OrderParameters.from_weights(None, _W, _W), TypeError,
     "spectrum must be an odesolve Spectrum"),
])
def test_state_arguments_are_checked_not_ignored(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_huge_state_is_refused_before_allocating():
    """K = 10000 at D = 20000 ended in numpy's MemoryError after many seconds (the command
    line refused it up front): the same estimate now refuses it at once."""
    import time
    spec = spiked_covariance(D=20000, spikes=[2.0, 1.0, 0.5], bulk=0.05)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"state of K = 10000 units in D = 20000 .* GiB of "
                                         r"memory, more than"):
        State.random(Autoencoder(K=10000), spec, seed=0)
    with pytest.raises(ValueError, match="GiB of memory"):
        State.from_order_parameters(Autoencoder(K=10000), spec, np.zeros((10000, 3)),
                                    np.zeros((10000, 3)))
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("lr", [-1.0, 0.0, float("nan"), "fast"])
def test_bad_learning_rate(lr):
    state = State.random(Autoencoder(K=1, activation="linear"), spiked_covariance(20, [1.0]))
    with pytest.raises((ValueError, TypeError), match="learning rate"):
        integrate(state, lr, 10.0)


def test_order_parameters_of_integer_and_float32_overlaps_are_float64():
    """Q, R, T, T0 are summed in float64 whatever the overlaps' dtype (integer overlaps
    raised once the blocks were summed in place)."""
    spec = spiked_covariance(60, [2.0, 1.0], 0.5)
    model = Autoencoder(K=2, activation="erf")
    Y = np.arange(8).reshape(4, 2)
    for dtype in (int, np.float32):
        ops = State(model, spec, Y.astype(dtype), np.eye(4) * 0.5, np.zeros(2)).order_parameters()
        assert all(getattr(ops, k).dtype == np.float64 for k in ("Q", "R", "T", "T0"))
        np.testing.assert_array_equal(ops.T0, [[41.5, 59.0], [59.0, 85.5]])
    with pytest.raises(TypeError, match="Y must be real numbers"):
        State(model, spec, Y + 1j, np.eye(4) * 0.5, np.zeros(2)).order_parameters()
