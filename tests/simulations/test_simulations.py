"""Tests of the finite-D SGD simulator (package ``simulations``).

What is checked, and against what:

* one step (:func:`simulations.sgd_step`, the compiled kernel of :func:`simulate`) against
  central finite differences of the per-sample loss ``ℓ = ‖x − x̂‖²/(2D)`` with the rates
  of the spec (encoder and bias ``η/D``, decoder ``η``), for every variant of the rule;
  Sanger's rule against its Hebbian formula;
* the online loop of :func:`simulate` against a plain numpy replay of the same inputs
  (chunk and recording boundaries included);
* physics: the linear autoencoder reaches PCA; the simulated erf error lies on the
  ODE curve started from each seed's own initial state, and the discrepancy shrinks with D;
* reproducibility, the shared initial-weight convention with ``State.random``, errors,
  the data sets and their loaders (on tiny files written here in the real formats).
"""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
from scipy.special import erf

from odesolve import Autoencoder, State, given_spectrum, integrate, spiked_covariance
from odesolve.errors import DivergenceError
from simulations import Dataset, sgd_step, simulate, simulate_seeds, train_finite
from odesolve.spec import images as datasets
from simulations.online import TEST_STREAM

SQRT2 = np.sqrt(2.0)
ACTIVATIONS = {
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "erf": (lambda x: erf(x / SQRT2), lambda x: np.sqrt(2 / np.pi) * np.exp(-x**2 / 2)),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x)**2),
}


# --------------------------------------------------------------------------- #
# Independent numpy reference: loss, finite differences, one SGD step
# --------------------------------------------------------------------------- #
def reconstruction_loss(x, W, V, m, g, upto=None):
    """``‖x − Σ_{l<upto} v_l g(λ_l)‖²/(2D)`` (all units if ``upto`` is None)."""
    D = x.shape[0]
    lam = W @ x / np.sqrt(D) + m
    k = W.shape[0] if upto is None else upto
    e = x - g(lam[:k]) @ V[:k]
    return e @ e / (2 * D)


def numerical_gradient(f, p, h=1e-6):
    """Central finite differences of the scalar ``f()`` with respect to the array ``p``."""
    grad = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        old = p[idx]
        p[idx] = old + h
        up = f()
        p[idx] = old - h
        down = f()
        p[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def expected_step(x, W, V, m, lr, g, *, tie=0.0, truncated=False, train_bias=False):
    """``(ΔW, ΔV, Δm)`` from finite differences of the loss(es), at the spec's rates.

    Untied: ``ΔW = −(η/D)∇_W ℓ``, ``ΔV = −η∇_V ℓ``, ``Δm = −(η/D)∂ℓ/∂m``.  Tied
    (``V = tie·W``): ``ΔW = −(η/D)∇_W ℓ(W, tie·W)``.  Truncated: the row of unit k is
    the gradient of ``ℓ_k`` (reconstruction by units 1..k) in unit k's parameters only.
    """
    D, K = x.shape[0], W.shape[0]
    W, V, m = W.copy(), V.copy(), m.copy()
    dW, dV, dm = np.zeros_like(W), np.zeros_like(V), np.zeros_like(m)
    for k in range(K):
        upto = k + 1 if truncated else None
        if tie:
            def loss():
                return reconstruction_loss(x, W, tie * W, m, g, upto)
        else:
            def loss():
                return reconstruction_loss(x, W, V, m, g, upto)
        rows = [k] if truncated else list(range(K))
        gW = numerical_gradient(loss, W)
        dW[rows] = -(lr / D) * gW[rows]
        if not tie:
            gV = numerical_gradient(loss, V)
            dV[rows] = -lr * gV[rows]
        if train_bias:
            gm = numerical_gradient(loss, m)
            dm[rows] = -(lr / D) * gm[rows]
        if not truncated:
            break
    return dW, dV, dm


def numpy_sgd_step(x, W, V, m, lr, g, gp):
    """Vanilla untied online SGD step, written from the spec (analytic gradient), in place."""
    D = x.shape[0]
    lam = W @ x / np.sqrt(D) + m
    gl = g(lam)
    e = x - gl @ V
    c = (V @ e) / D * gp(lam)
    W += (lr / D) * np.outer(c, x) / np.sqrt(D)
    V += (lr / D) * np.outer(gl, e)
    return e @ e / (2 * D)


def _random_problem(K, D, seed, *, relu_margin=False):
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal(D)
        W = rng.standard_normal((K, D))
        V = rng.standard_normal((K, D))
        m = rng.uniform(-0.5, 0.5, K)
        lam = W @ x / np.sqrt(D) + m
        if not relu_margin or np.min(np.abs(lam)) > 0.05:   # away from ReLU's kink
            return x, W, V, m


# --------------------------------------------------------------------------- #
# One step vs finite differences
# --------------------------------------------------------------------------- #
CASES = [("linear", "none"), ("erf", "none"), ("erf", "trained"), ("relu", "trained"),
         ("relu", "fixed"), ("tanh", "none")]


@pytest.mark.parametrize("rule", ["sgd", "truncated"])
@pytest.mark.parametrize("tied", [None, "sqrtD", "unit"])
@pytest.mark.parametrize("activation,bias", CASES)
def test_sgd_step_is_the_gradient_of_the_loss(activation, bias, tied, rule):
    K, D, lr = 3, 7, 0.7
    g, _ = ACTIVATIONS[activation]
    model = Autoencoder(K=K, activation=activation, tied=tied is not None, bias=bias, rule=rule)
    x, W, V, m = _random_problem(K, D, seed=11, relu_margin=activation == "relu")
    if bias == "none":
        m = np.zeros(K)
    tie = 0.0 if tied is None else (np.sqrt(D) if tied == "sqrtD" else 1.0)
    if tie:
        V = tie * W
    kwargs = {} if tied is None else {"tied_normalisation": tied}
    W1, V1, m1 = sgd_step(model, x, W, V, m, lr, **kwargs)
    dW, dV, dm = expected_step(x, W, V, m, lr, g, tie=tie, truncated=rule == "truncated",
                               train_bias=bias == "trained")
    scale = np.abs(dW).max()
    assert scale > 1e-3                                  # the check is not vacuous
    np.testing.assert_allclose(W1 - W, dW, rtol=1e-6, atol=1e-8 * scale)
    if tie:
        np.testing.assert_allclose(V1, tie * W1, rtol=1e-14)
    else:
        np.testing.assert_allclose(V1 - V, dV, rtol=1e-6, atol=1e-8 * np.abs(dV).max())
    if bias == "trained":
        assert np.abs(dm).max() > 1e-4
        np.testing.assert_allclose(m1 - m, dm, rtol=1e-6, atol=1e-10)
    else:
        np.testing.assert_array_equal(m1, m)            # no bias, or a fixed one: never moves
    # the inputs are not modified
    assert not np.shares_memory(W1, W)


@pytest.mark.parametrize("tied", ["sqrtD", "unit"])
@pytest.mark.parametrize("activation", ["linear", "erf"])
def test_sanger_is_the_hebbian_term_with_truncated_error(activation, tied):
    K, D, lr = 3, 7, 0.7
    g, _ = ACTIVATIONS[activation]
    model = Autoencoder(K=K, activation=activation, tied=True, rule="sanger")
    x, W, _, _ = _random_problem(K, D, seed=5)
    c = np.sqrt(D) if tied == "sqrtD" else 1.0
    W1, V1, m1 = sgd_step(model, x, W, None, np.zeros(K), lr, tied_normalisation=tied)
    lam = W @ x / np.sqrt(D)
    y = g(lam)
    expected = np.empty_like(W)
    for k in range(K):
        e_k = x - c * (y[:k + 1] @ W[:k + 1])           # error of the first k+1 units
        expected[k] = (lr / D) * (c / D) * y[k] * e_k   # Hebbian: output × truncated error
    # (linear, c = 1: Sanger's generalised Hebbian algorithm Δw_k = α y_k (x − Σ_{l≤k} y_l w_l)
    # with outputs y = λ = Wx/√D and α = η/D²)
    np.testing.assert_allclose(W1 - W, expected, rtol=1e-12, atol=1e-15)
    # Sanger = truncated SGD without the back-propagated encoder term
    Wt, _, _ = sgd_step(Autoencoder(K=K, activation=activation, tied=True, rule="truncated"),
                        x, W, None, np.zeros(K), lr, tied_normalisation=tied)
    gp = ACTIVATIONS[activation][1](lam)
    encoder = np.array([(lr / D) * c * ((x - c * (y[:k + 1] @ W[:k + 1])) @ W[k]) / D * gp[k]
                        * x / np.sqrt(D) for k in range(K)])
    np.testing.assert_allclose(Wt - W1, encoder, rtol=1e-10, atol=1e-15)


def test_sign_activation_learns_only_the_decoder():
    K, D, lr = 2, 6, 0.5
    x, W, V, _ = _random_problem(K, D, seed=3)
    W1, V1, _ = sgd_step(Autoencoder(K=K, activation="sign"), x, W, V, np.zeros(K), lr)
    np.testing.assert_array_equal(W1, W)
    e = x - np.sign(W @ x) @ V
    np.testing.assert_allclose(V1 - V, (lr / D) * np.outer(np.sign(W @ x), e), rtol=1e-12)


def test_sgd_step_docstring_value_and_bad_input():
    model = Autoencoder(K=1, activation="linear")
    W, V, m = sgd_step(model, [2.0, 0.0], [[1.0, 0.0]], [[0.0, 0.0]], [0.0], lr=1.0)
    np.testing.assert_allclose(V, [[np.sqrt(2), 0.0]])
    with pytest.raises(ValueError, match="one input of shape"):
        sgd_step(model, [[2.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]], [0.0], lr=1.0)
    with pytest.raises(ValueError, match=r"tied weights need V"):
        sgd_step(Autoencoder(K=1, activation="linear", tied=True), [2.0, 0.0, 1.0],
                 [[1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], [0.0], lr=1.0)


# --------------------------------------------------------------------------- #
# The online loop = successive steps on the documented input stream
# --------------------------------------------------------------------------- #
def test_simulate_replays_as_plain_sgd_across_chunks():
    """simulate == a numpy loop over ``√ρ ⊙ z`` drawn after the initial weights.

    D = 300 makes chunks of 1747 inputs, so 6000 steps cross three chunk boundaries, and
    the recording times fall inside chunks: no input may be skipped or used twice.
    """
    D, K, lr, seed = 300, 2, 1.0, 4
    spec = spiked_covariance(D, [2.0, 1.0], 0.2)
    model = Autoencoder(K=K, activation="erf")
    times = np.array([0.0, 1.0, 5.0, 5.83, 11.65, 17.5, 20.0])
    res = simulate(model, spec, lr, 20.0, seed, times=times, n_test=50)
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, 0.1, (K, D))
    V = rng.normal(0.0, 0.1, (K, D))
    np.testing.assert_array_equal(res.W0, W)
    np.testing.assert_array_equal(res.V0, V)
    X = rng.standard_normal((20 * D, D)) * np.sqrt(spec.all_eigenvalues)
    g, gp = ACTIVATIONS["erf"]
    m = np.zeros(K)
    steps = np.round(times * D).astype(int)
    np.testing.assert_array_equal(res.steps, steps)
    rho = spec.all_eigenvalues
    for r, (start, stop) in enumerate(zip(np.r_[0, steps[:-1]], steps)):
        for j in range(start, stop):
            numpy_sgd_step(X[j], W, V, m, lr, g, gp)
        np.testing.assert_allclose(res.Q[r], (W * rho) @ W.T / D, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(res.R[r], (V * rho) @ W.T / D**1.5, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(res.T0[r], V @ V.T / D, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(res.W, W, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(res.V, V, rtol=1e-8, atol=1e-12)
    # the Monte-Carlo error is measured on the held-out stream default_rng((seed, TEST_STREAM))
    X_test = spec.sample(50, np.random.default_rng((seed, TEST_STREAM)))
    err = np.mean(np.sum((X_test - g(X_test @ W.T / np.sqrt(D)) @ V)**2, axis=1)) / (2 * D)
    assert res.test_error[-1] == pytest.approx(err, rel=1e-9)
    assert res.t[-1] == 20.0 and res.passes is None


# --------------------------------------------------------------------------- #
# Physics
# --------------------------------------------------------------------------- #
def test_linear_autoencoder_reaches_the_pca_error():
    D, K = 200, 3
    spec = spiked_covariance(D, [2.0, 1.0, 0.5], 0.1)
    res = simulate(Autoencoder(K=K, activation="linear"), spec, 1.0, 60.0, seed=0,
                   times=[0.0, 20.0, 40.0, 60.0], n_test=2000, scale=0.03)
    pca = spec.pca_error(K)
    error = res.theory_error()
    assert error[0] == pytest.approx(spec.initial_error, rel=1e-3)
    # reached, and stays there: within 2% of ε_PCA(3) (ε_PCA(2) is 5× larger); the small
    # excess is the frozen bulk part of the encoder plus SGD noise, both → 0 slowly
    np.testing.assert_array_less(np.abs(error[1:] / pca - 1), 0.02)
    assert abs(res.test_error[-1] / pca - 1) < 0.05
    # the decoder spans the top-3 eigenvectors (coordinates 0..2 of the eigenbasis)
    basis, _ = np.linalg.qr(res.V.T)
    assert np.sum(basis[:K] ** 2) / K > 0.995


def test_theory_error_matches_the_monte_carlo_test_error():
    D, n_test = 200, 4000
    spec = spiked_covariance(D, [2.0, 1.0], 0.3)
    model = Autoencoder(K=2, activation="erf")
    res = simulate(model, spec, 1.0, 8.0, seed=2, times=[0.0, 8.0], n_test=n_test)
    exact = res.theory_error()
    g = ACTIVATIONS["erf"][0]
    X = spec.sample(20000, np.random.default_rng(99))
    for i, (W, V) in enumerate([(res.W0, res.V0), (res.W, res.V)]):
        losses = np.sum((X - g(X @ W.T / np.sqrt(D)) @ V)**2, axis=1) / (2 * D)
        sigma = losses.std() / np.sqrt(n_test)          # noise of the test error
        assert abs(res.test_error[i] - exact[i]) < 4 * sigma
        assert abs(losses.mean() - exact[i]) < 4 * losses.std() / np.sqrt(len(X))
    assert exact[-1] < 0.5 * exact[0]                   # the run learnt something


# --- ODE agreement (erf, K = 2, two spikes) --------------------------------- #
ODE_T_MAX = 20.0
ODE_TIMES = np.linspace(0.0, ODE_T_MAX, 81)
ODE_SEEDS = {250: range(32), 1000: range(8)}


@pytest.fixture(scope="module")
def sim_vs_ode():
    """Per D: (population error of SGD, ODE from each seed's own initial state, results)."""
    model = Autoencoder(K=2, activation="erf")
    out = {}
    for D, seeds in ODE_SEEDS.items():
        spec = spiked_covariance(D, [2.0, 1.0], 0.2)
        runs = simulate_seeds(model, spec, 1.0, ODE_T_MAX, seeds, times=ODE_TIMES, n_test=10)
        sims = np.array([r.theory_error() for r in runs])
        odes = np.array([integrate(r.state(0), 1.0, (0.0, ODE_T_MAX), t_eval=ODE_TIMES,
                                   bulk="finite").error for r in runs])
        out[D] = sims, odes, runs
    return out


@pytest.mark.slow
def test_sgd_lies_on_the_ode_curve_at_large_d(sim_vs_ode):
    sims, odes, runs = sim_vs_ode[1000]
    spec = runs[0].spectrum
    # by t_max the first component is learnt (error far below ε_PCA(1)) in every run
    assert np.all(sims[:, -1] < 0.5 * spec.pca_error(1))
    assert np.all(odes[:, -1] < 0.5 * spec.pca_error(1))
    np.testing.assert_allclose(sims[:, 0], odes[:, 0], rtol=1e-9)
    residual = np.abs(sims - odes)[:, 1:]
    spread = sims.std(axis=0, ddof=1)[1:]               # seed-to-seed spread of SGD
    # at every time, the typical distance of a run from its own ODE curve is well inside
    # the spread between runs (measured ≈ 0.2–0.3 of it; an ODE at η ± 10% gives 1.1–3)
    ratio = np.median(residual, axis=0) / spread
    assert ratio.max() < 0.5, f"max median |SGD − ODE| / spread = {ratio.max():.3f}"
    # over the whole curve a typical run stays within 0.05 of its ODE curve (ε(0) = 1.6;
    # measured ≈ 0.03 for several seed sets; an ODE at η ± 10% is ≈ 0.1 away)
    assert np.median(residual.max(axis=1)) < 0.05


def test_sgd_ode_discrepancy_shrinks_with_d(sim_vs_ode):
    worst = {D: np.median(np.abs(sims - odes).max(axis=1))
             for D, (sims, odes, _) in sim_vs_ode.items()}
    # fluctuations of SGD around the mean flow scale like 1/√D: expect a factor ≈ 2
    # (medians over seeds: a rare run that takes another path past the saddle, which
    # happens at every D, must not decide the comparison)
    assert worst[1000] < 0.7 * worst[250], worst


def test_integrate_restarts_from_a_simulated_state(sim_vs_ode):
    sims, odes, runs = sim_vs_ode[1000]
    res = runs[0]
    i = 40                                              # t = 10
    traj = integrate(res.state(i), 1.0, (res.t[i], ODE_T_MAX), t_eval=res.t[i:])
    assert traj.t[0] == pytest.approx(res.t[i])
    assert traj.error[0] == pytest.approx(sims[0, i], rel=1e-9)
    # restarted later, the ODE is at least as close to this run at t_max as from t = 0
    assert abs(traj.error[-1] - sims[0, -1]) <= abs(odes[0, -1] - sims[0, -1]) + 1e-3
    assert abs(traj.error[-1] - sims[0, -1]) < 0.01


# --------------------------------------------------------------------------- #
# Reproducibility and the shared initial state
# --------------------------------------------------------------------------- #
def _small_run(seed=0, **kwargs):
    spec = kwargs.pop("spec", spiked_covariance(60, [2.0, 1.0], 0.2))
    model = kwargs.pop("model", Autoencoder(K=2, activation="erf"))
    kwargs.setdefault("n_times", 12)
    kwargs.setdefault("n_test", 100)
    return simulate(model, spec, 1.0, 10.0, seed, **kwargs)


def test_same_seed_is_bit_identical_and_seeds_differ():
    a, b, c = _small_run(1), _small_run(1), _small_run(2)
    for name in ("test_error", "Q", "R", "T", "T0", "A", "B", "bulk_gram", "W", "V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert not np.allclose(a.W0, c.W0)
    assert not np.allclose(a.Q[-1], c.Q[-1], rtol=1e-3)


def test_n_test_does_not_change_the_training_trajectory():
    a, b = _small_run(3, n_test=10), _small_run(3, n_test=1000)
    for name in ("Q", "R", "T0", "W", "V"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.test_error[-1] != b.test_error[-1]


def test_eigenbasis_choice_agrees_up_to_rounding():
    D = 40
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    eigenvalues = np.r_[2.0 * D, 1.0 * D, np.full(D - 2, 0.2)]
    spec = given_spectrum(eigenvalues, basis)
    a = _small_run(5, spec=spec, eigenbasis=True)
    b = _small_run(5, spec=spec, eigenbasis=False)
    assert a.Q[-1][0, 0] > 10 * a.Q[0][0, 0]           # the weights did move
    for name in ("Q", "R", "T", "T0", "A", "B", "test_error", "W", "V"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-8, atol=1e-11,
                                   err_msg=name)
    # ... whereas the inputs of the two runs really were in different bases
    assert not np.allclose(basis, np.eye(D))


@pytest.mark.parametrize("kind", ["untied", "tied", "relu-bias"])
def test_state_random_is_the_simulated_initial_state(kind):
    spec = spiked_covariance(80, [2.0, 1.0], 0.2)
    model, bias = {
        "untied": (Autoencoder(K=3, activation="erf"), 0.0),
        "tied": (Autoencoder(K=2, activation="erf", tied=True), 0.0),
        "relu-bias": (Autoencoder(K=2, activation="relu", bias="trained"), 0.3),
    }[kind]
    res = simulate(model, spec, 0.5, 2.0, seed=7, scale=0.2, bias=bias, n_times=5, n_test=50)
    state = State.random(model, spec, scale=0.2, seed=7, bias=bias)
    start = res.state(0)
    np.testing.assert_array_equal(start.Y, state.Y)
    np.testing.assert_allclose(start.G, state.G, rtol=1e-12)
    np.testing.assert_array_equal(start.m, state.m)
    ops, exact = res.order_parameters(0), state.order_parameters()
    for name in ("Q", "R", "T", "T0"):
        np.testing.assert_allclose(getattr(ops, name), getattr(exact, name), rtol=1e-12,
                                   atol=1e-15, err_msg=name)
    if model.has_bias:
        np.testing.assert_array_equal(start.m, [0.3, 0.3])
    # the ODE from either is the same curve
    t1 = integrate(start, 0.5, 2.0, n_points=5).error
    t2 = integrate(state, 0.5, 2.0, n_points=5).error
    np.testing.assert_allclose(t1, t2, rtol=1e-12)
    # and res.state(i) is exact for the weights at record i
    assert res.theory_error()[-1] == pytest.approx(
        integrate(res.state(-1), 0.5, (res.t[-1], res.t[-1] + 1e-3), n_points=2).error[0],
        rel=1e-9)


def test_unit_tied_runs_start_from_unit_weights_and_have_no_theory_state():
    model = Autoencoder(K=1, activation="erf", tied=True)
    res = _small_run(0, model=model, tied_normalisation="unit", scale=0.3)
    np.testing.assert_allclose(res.V, res.W)
    # the shared vector w = v is i.i.d. N(0, scale²): the decoder of the shared convention
    rng = np.random.default_rng(0)
    rng.normal(0.0, 0.3, (1, 60))
    np.testing.assert_array_equal(res.W0, rng.normal(0.0, 0.3, (1, 60)))
    np.testing.assert_array_equal(res.V0, res.W0)
    sqrt_d = _small_run(0, model=model, scale=0.3)      # v = √D w: the same decoder
    np.testing.assert_allclose(sqrt_d.V0, res.V0, rtol=1e-15)
    with pytest.raises(ValueError, match="tied_normalisation"):
        res.state(0)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
def test_huge_learning_rate_raises_divergence_with_its_step():
    spec = spiked_covariance(50, [2.0, 1.0], 0.2)
    model = Autoencoder(K=2, activation="linear")
    with pytest.raises(DivergenceError) as info:
        simulate(model, spec, 200.0, 10.0, seed=0, n_times=5, n_test=10)
    err = info.value
    assert isinstance(err.step, int) and 1 <= err.step <= 500
    assert err.time == pytest.approx(err.step / 50) and err.lr == 200.0
    assert f"SGD step {err.step}" in str(err) and "learning rate 200" in str(err)
    # the run up to the step before is fine: the step is where it blew up
    if err.step > 1:
        res = simulate(model, spec, 200.0, (err.step - 1) / 50, seed=0, times=[0.0],
                       n_test=10)
        assert np.isfinite(res.test_error).all()


def test_bad_inputs_raise_clear_value_errors():
    spec = spiked_covariance(20, [2.0], 0.2)
    model = Autoencoder(K=2, activation="erf")

    def run(**kw):
        args = dict(model=model, spectrum=spec, lr=1.0, t_max=1.0, seed=0, n_test=10)
        args.update(kw)
        return simulate(**args)

    with pytest.raises(ValueError, match="need K < D"):
        run(model=Autoencoder(K=20, activation="erf"))
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="learning rate must be finite and > 0"):
            run(lr=lr)
    for lr in (True, "1"):
        with pytest.raises(TypeError, match="learning rate must be a real number"):
            run(lr=lr)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        run(seed=-1)
    for seed in (1.5, "a", True):
        with pytest.raises(TypeError, match="seed must be an integer"):
            run(seed=seed)
    for t_max in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="t_max must be finite and > 0"):
            run(t_max=t_max)
    with pytest.raises(ValueError, match="less than one step"):
        run(t_max=0.01)
    for times in ([0.5, 0.2], [0.0, 2.0], [-0.1, 0.5]):
        with pytest.raises(ValueError, match="times must be increasing and within"):
            run(times=times)
    for times in ([], [[0.0, 1.0]], [0.0, float("nan")]):
        with pytest.raises(ValueError, match="times must be a non-empty 1-d list"):
            run(times=times)
    with pytest.raises(ValueError, match="n_times must be an integer >= 2"):
        run(n_times=1)
    with pytest.raises(ValueError, match="n_test must be an integer >= 1"):
        run(n_test=0)
    W, V = np.zeros((2, 20)), np.zeros((2, 20))
    with pytest.raises(ValueError, match=r"W must have shape \(2, 20\), got \(2, 19\)"):
        run(weights=(np.zeros((2, 19)), V, None))
    with pytest.raises(ValueError, match=r"V must have shape \(2, 20\), got \(3, 20\)"):
        run(weights=(W, np.zeros((3, 20)), None))
    with pytest.raises(ValueError, match="untied models need a decoder V"):
        run(weights=(W, None, None))
    with pytest.raises(ValueError, match=r"weights must be a tuple \(W, V, m\)"):
        run(weights=W)
    with pytest.raises(ValueError, match="contain NaN or inf"):
        run(weights=(np.full((2, 20), np.nan), V, None))
    with pytest.raises(ValueError, match="the model has no bias"):
        run(weights=(W, V, [1.0, 0.0]))
    with pytest.raises(ValueError, match=r"m must have shape \(2,\)"):
        run(model=Autoencoder(K=2, activation="relu", bias="trained"), weights=(W, V, [1.0]))
    with pytest.raises(ValueError, match="unknown tied_normalisation"):
        run(model=Autoencoder(K=2, activation="erf", tied=True), tied_normalisation="half")
    with pytest.raises(ValueError, match="applies to tied models only"):
        run(tied_normalisation="unit")
    with pytest.raises(ValueError, match="data have D = 5 but the spectrum has D = 20"):
        run(data=np.random.default_rng(0).standard_normal((30, 5)))
    with pytest.raises(TypeError, match="spectrum must be an odesolve Spectrum"):
        run(spectrum=np.eye(20))
    # ignored without a word before: a bias for a model without one, complex weights
    with pytest.raises(ValueError, match="initial bias = 0.5 given, but the model has no bias"):
        run(bias=0.5)
    with pytest.raises(TypeError, match="W must be real numbers, got complex values"):
        run(weights=(W + 1j, V, None))
    with pytest.raises(TypeError, match="V must be real numbers"):
        run(weights=(W, V + 0j, None))
    with pytest.raises(TypeError, match="m must be real numbers"):
        run(model=Autoencoder(K=2, activation="relu", bias="trained"),
            weights=(W, V, [1j, 0.0]))
    # given weights are used as they are
    W0 = np.random.default_rng(1).normal(0, 0.1, (2, 20))
    res = run(weights=(W0, 2 * W0, None), times=[0.0])
    np.testing.assert_array_equal(res.W0, W0)
    np.testing.assert_array_equal(res.V0, 2 * W0)


# --------------------------------------------------------------------------- #
# Data sets
# --------------------------------------------------------------------------- #
def _assert_preprocessed(data: Dataset):
    """Every pixel centred, overall standard deviation 1 (tr Ω / D = 1)."""
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-12)
    assert np.mean(data.X**2) == pytest.approx(1.0, rel=1e-12)
    assert np.trace(data.X.T @ data.X) / data.n / data.D == pytest.approx(1.0, rel=1e-12)


def test_offline_datasets_are_centred_and_rescaled():
    d = datasets.digits()
    assert (d.n, d.D, d.image_shape, d.name) == (1797, 64, (8, 8), "digits")
    _assert_preprocessed(d)
    from sklearn.datasets import load_digits
    raw = load_digits().images.reshape(1797, -1)
    raw = raw - raw.mean(axis=0)
    np.testing.assert_allclose(d.X, raw / np.sqrt(np.mean(raw**2)), rtol=1e-12, atol=1e-12)
    small = datasets.digits(size=4)
    assert small.D == 16 and small.image_shape == (4, 4)
    _assert_preprocessed(small)

    p = datasets.photo_patches(size=8, n_patches=400)
    assert (p.n, p.D, p.image_shape) == (400, 64, (8, 8))
    _assert_preprocessed(p)
    np.testing.assert_array_equal(p.X, datasets.photo_patches(size=8, n_patches=400).X)
    other = datasets.photo_patches(size=8, n_patches=400, rng=np.random.default_rng(1))
    assert not np.allclose(other.X, p.X)
    # natural images: strongly correlated pixels, a few dominant eigenvalues
    ev = np.sort(np.linalg.eigvalsh(p.X.T @ p.X / p.n))[::-1]
    assert ev[0] / p.D > 0.3
    with pytest.raises(ValueError, match="patch size"):
        datasets.photo_patches(size=1000)

    train, test = d.split(300, np.random.default_rng(0))
    assert (train.n, test.n) == (1497, 300)
    rows = {r.tobytes() for r in d.X}
    assert {r.tobytes() for r in train.X} | {r.tobytes() for r in test.X} <= rows
    with pytest.raises(ValueError, match="n_test"):
        d.split(1797, np.random.default_rng(0))


def _py2_cifar_pickle(data: np.ndarray, labels) -> bytes:
    """A CIFAR-10 batch pickled the way the distributed files are (Python 2, protocol 2).

    Written opcode by opcode: byte strings as BINSTRING (Python 2 ``str``), the array
    through ``numpy.core.multiarray._reconstruct`` and its raw bytes.
    """
    def string(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else \
            (b"T" + struct.pack("<i", len(b)) + b)

    def binint(i: int) -> bytes:
        return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)

    n, width = data.shape
    dtype = (b"cnumpy\ndtype\n" + string(b"u1") + binint(0) + binint(1) + b"\x87R"
             + b"(" + binint(3) + string(b"|") + b"NNN" + binint(-1) + binint(-1) + binint(0)
             + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + binint(0)
             + b"\x85" + string(b"b") + b"\x87R"
             + b"(" + binint(1) + binint(n) + binint(width) + b"\x86" + dtype + b"\x89"
             + string(data.astype(np.uint8).tobytes()) + b"tb")
    items = (string(b"batch_label") + string(b"training batch 1 of 5")
             + string(b"labels") + b"](" + b"".join(binint(int(v)) for v in labels) + b"e"
             + string(b"data") + array
             + string(b"filenames") + b"](" + b"".join(string(b"img%d.png" % i)
                                                        for i in range(n)) + b"e")
    return b"\x80\x02}(" + items + b"u."


def test_load_cifar10_reads_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    n = 6
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)   # R, G, B planes
    raw = planes.reshape(n, 3072)
    blob = _py2_cifar_pickle(raw, rng.integers(0, 10, n))
    loaded = pickle.loads(blob, encoding="bytes")                  # well-formed pickle
    np.testing.assert_array_equal(loaded[b"data"], raw)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(blob)
    (folder / "test_batch").write_bytes(blob)                       # not a training batch

    gray = datasets.load_cifar10(folder / "data_batch_1")
    lum = 0.2125 * planes[:, 0] + 0.7154 * planes[:, 1] + 0.0721 * planes[:, 2]
    expected = Dataset.from_images(lum, "x")
    assert (gray.n, gray.D, gray.image_shape, gray.name) == (n, 1024, (32, 32), "cifar10-gray")
    np.testing.assert_allclose(gray.X, expected.X, rtol=1e-12, atol=1e-12)
    _assert_preprocessed(gray)

    colour = datasets.load_cifar10(folder / "data_batch_1", grayscale=False)
    assert colour.D == 3072 and colour.image_shape == (3, 32, 32)
    np.testing.assert_allclose(colour.X, Dataset.from_images(planes, "x").X, rtol=1e-12,
                               atol=1e-12)
    # a folder: every data_batch_* file, in order
    (folder / "data_batch_2").write_bytes(_py2_cifar_pickle(raw[::-1], range(n)))
    both = datasets.load_cifar10(folder)
    assert both.n == 2 * n
    np.testing.assert_allclose(both.X, Dataset.from_images(np.concatenate([lum, lum[::-1]]),
                                                           "x").X, rtol=1e-12, atol=1e-12)
    small = datasets.load_cifar10(folder / "data_batch_1", size=8)
    assert small.D == 64 and small.image_shape == (8, 8)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_load_cifar10_reads_batches_pickled_by_python3(tmp_path, protocol):
    raw = np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": raw, b"labels": [1, 2, 3]}, protocol=protocol))
    data = datasets.load_cifar10(path, grayscale=False)
    np.testing.assert_allclose(data.X, Dataset.from_images(raw, "x").X, rtol=1e-12)


def test_load_cifar10_rejects_bad_files(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return os.system, ("echo pwned",)

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        datasets.load_cifar10(path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8)}, protocol=2))
    with pytest.raises(ValueError, match=r"no \(n, 3072\) 'data' array"):
        datasets.load_cifar10(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no CIFAR-10 batch files"):
        datasets.load_cifar10(tmp_path / "empty")
    with pytest.raises(ValueError, match="no such file"):
        datasets.load_cifar10(tmp_path / "missing")


def _idx3(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return b"\x00\x00\x08\x03" + struct.pack(">III", n, rows, cols) + images.tobytes()


@pytest.mark.parametrize("gzipped", [True, False])
def test_load_fashion_mnist_reads_idx_files(tmp_path, gzipped):
    images = np.random.default_rng(2).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    name = "train-images-idx3-ubyte" + (".gz" if gzipped else "")
    blob = _idx3(images)
    (tmp_path / name).write_bytes(gzip.compress(blob) if gzipped else blob)
    expected = Dataset.from_images(images, "x").X
    for path in (tmp_path / name, tmp_path):
        data = datasets.load_fashion_mnist(path)
        assert (data.n, data.D, data.image_shape, data.name) == (5, 784, (28, 28),
                                                                 "fashion_mnist")
        np.testing.assert_allclose(data.X, expected, rtol=1e-12, atol=1e-12)
        _assert_preprocessed(data)
    assert datasets.load_fashion_mnist(tmp_path / name, size=7).D == 49


def test_load_fashion_mnist_rejects_bad_files(tmp_path):
    images = np.zeros((2, 4, 4), np.uint8)
    bad = tmp_path / "a"
    bad.write_bytes(b"\x00\x00\x08\x01" + _idx3(images)[4:])        # idx1, not idx3
    with pytest.raises(ValueError, match="not an idx3-ubyte image file"):
        datasets.load_fashion_mnist(bad)
    bad.write_bytes(_idx3(images)[:-3])                              # truncated
    with pytest.raises(ValueError, match="header announces"):
        datasets.load_fashion_mnist(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no train-images-idx3-ubyte"):
        datasets.load_fashion_mnist(tmp_path / "empty")


# --------------------------------------------------------------------------- #
# Finite data: repeated passes
# --------------------------------------------------------------------------- #
def test_train_finite_reduces_the_training_error():
    data = datasets.digits()
    K = 4
    res = train_finite(Autoencoder(K=K, activation="linear"), data, lr=2.0, epochs=4,
                       batch_size=1, seed=0)
    assert res.epoch.tolist() == [0, 1, 2, 3, 4]
    assert (res.n_train, res.n_test) == (1438, 359)
    assert np.all(np.diff(res.train_error) < 0)
    # the linear autoencoder heads for the rank-4 PCA error of the training set
    train, _ = data.split(359, np.random.default_rng((0, TEST_STREAM)))
    ev = np.sort(np.linalg.eigvalsh(train.X.T @ train.X / train.n))[::-1]
    pca = (ev.sum() - ev[:K].sum()) / (2 * data.D)
    assert res.train_error[0] == pytest.approx(ev.sum() / (2 * data.D), rel=0.05)
    assert res.train_error[-1] < pca + 0.1 * (res.train_error[0] - pca)
    assert res.train_error[-1] >= pca - 1e-9
    assert res.test_error[-1] < res.test_error[0]


def test_train_finite_full_batch_is_one_gradient_step():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5))
    K, D, lr = 2, 5, 0.8
    W, V = rng.normal(0, 0.5, (K, D)), rng.normal(0, 0.5, (K, D))
    model = Autoencoder(K=K, activation="erf")
    res = train_finite(model, X, lr, epochs=1, batch_size=100, seed=3, n_test=2,
                       weights=(W, V, None))
    train, _ = Dataset(X).split(2, np.random.default_rng((3, TEST_STREAM)))
    g = ACTIVATIONS["erf"][0]
    Wc, Vc, m = W.copy(), V.copy(), np.zeros(K)

    def mean_loss():
        return np.mean([reconstruction_loss(x, Wc, Vc, m, g) for x in train.X])

    gW, gV = numerical_gradient(mean_loss, Wc), numerical_gradient(mean_loss, Vc)
    np.testing.assert_allclose(res.W - W, -(lr / D) * gW, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res.V - V, -lr * gV, rtol=1e-6, atol=1e-10)
    assert res.train_error[0] == pytest.approx(mean_loss(), rel=1e-12)


def test_online_training_on_a_dataset_reports_passes():
    data = datasets.digits()
    spec = data.spectrum()
    model = Autoencoder(K=4, activation="linear")
    n_train = data.n - 300
    t_max = 2.5 * n_train / data.D
    res = simulate(model, spec, 2.0, t_max, seed=0, data=data, n_test=300, n_times=8)
    assert res.passes == pytest.approx(2.5, rel=1e-3) and res.passes > 1
    assert res.test_error[-1] < 0.6 * res.test_error[0]
    # measured in the eigenbasis of the data: the error approaches the rank-4 PCA error
    assert res.theory_error()[-1] < spec.pca_error(3)
    short = simulate(model, spec, 0.5, 0.5 * n_train / data.D, seed=0, data=data,
                     n_test=300, n_times=3)
    assert short.passes == pytest.approx(0.5, rel=1e-3)
    # training in the pixel basis instead of the data's eigenbasis: the same run
    pixels = simulate(model, spec, 0.5, 0.5 * n_train / data.D, seed=0, data=data,
                      n_test=300, n_times=3, eigenbasis=False)
    for name in ("Q", "R", "T0", "test_error", "W", "V"):
        np.testing.assert_allclose(getattr(pixels, name), getattr(short, name), rtol=1e-8,
                                   atol=1e-11, err_msg=name)
    with pytest.raises(ValueError, match="n_test"):
        simulate(model, spec, 0.5, 1.0, seed=0, data=data, n_test=data.n)


def test_huge_simulation_is_refused_before_allocating():
    """K = 10000 at D = 20000 ended in numpy's MemoryError after many seconds; the estimate
    of the command line (a state of the model: weights, bulk Gram matrix) refuses it now."""
    import time
    spec = spiked_covariance(D=20000, spikes=[2.0, 1.0, 0.5], bulk=0.05)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"K = 10000 units in D = 20000 .* GiB of memory"):
        simulate(Autoencoder(K=10000), spec, lr=1.0, t_max=1.0, n_times=2)
    assert time.perf_counter() - start < 1.0
