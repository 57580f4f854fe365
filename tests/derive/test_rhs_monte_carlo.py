"""The derived right-hand side against the Monte-Carlo average of one SGD step.

At a random state with O(1) order parameters, D = 1000, the drift D·E[Δy]/1 of every
tracked overlap, of the bulk Gram matrix and of the biases, estimated from many
independent SGD steps of the reference implementation in :mod:`odesolve.testing.sgd_oracle`, must agree
with the compiled right-hand side (bulk="finite", i.e. exact at this D) within 4
standard errors.  Dropping any term of the equations moves some entry by many standard
errors (see ``test_dropping_a_term_is_detected``).
"""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, State, spiked_covariance
from odesolve.codegen import compile_model
from odesolve.integrator import rhs_function
from odesolve.testing.published_scheme import erf_untied_rhs
from odesolve.testing.sgd_oracle import CASES, compiled_drift, monte_carlo_drift, random_state

pytestmark = pytest.mark.slow  # minutes on 2 cores; not in the fast subset

D = 1000
N_SAMPLES = 40_000


@pytest.mark.parametrize("activation,tied,rule,bias", CASES)
def test_rhs_matches_monte_carlo_sgd_step(activation, tied, rule, bias):
    rng = np.random.default_rng(12345)
    model = Autoencoder(K=2, activation=activation, tied=tied, rule=rule, bias=bias)
    spec, W, V, m = random_state(model, rng, D)
    lr = 0.7
    mean, se = monte_carlo_drift(model, spec, W, V, m, lr, rng, N_SAMPLES)
    theory = compiled_drift(model, spec, W, V, m, lr)
    exact = se < 1e-12          # e.g. the sign encoder never moves, fixed biases
    np.testing.assert_allclose(theory[exact], mean[exact], atol=1e-10)
    z = (mean[~exact] - theory[~exact]) / se[~exact]
    assert np.max(np.abs(z)) < 4.0, f"max |z| = {np.max(np.abs(z)):.2f}, z = {np.round(z, 2)}"


def test_dropping_a_term_is_detected():
    """Power check: the comparison above resolves each term of the equations."""
    rng = np.random.default_rng(7)
    model = Autoencoder(K=2, activation="erf")
    spec, W, V, m = random_state(model, rng, D)
    V[1] += 0.8 * V[0]          # correlated decoders: cross terms of order one
    W[1] += 0.5 * W[0]
    mean, se = monte_carlo_drift(model, spec, W, V, m, 1.0, rng, N_SAMPLES)
    compiled = compile_model(model)
    state = State.from_weights(model, spec, W, V, m)
    ops = state.order_parameters()
    S = np.zeros((4, 4))
    N = np.zeros((4, 4))
    compiled.module.coefficients(ops.Q, ops.R, ops.T0, ops.m, S, N, np.zeros(2))
    for which, (i, j) in [("S", (0, 0)), ("S", (0, 1)), ("S", (0, 2)), ("S", (2, 0)),
                          ("N", (2, 2)), ("N", (2, 3))]:
        S2, N2 = S.copy(), N.copy()
        (S2 if which == "S" else N2)[i, j] = 0.0
        dY = (S2 @ state.Y) * spec.s + N2 @ state.Y
        M = spec.bulk / D * S2 + N2
        dG = M @ state.G + (M @ state.G).T
        mutated = np.concatenate([dY.ravel(), dG.ravel(), np.zeros(2)])
        z = (mean - mutated) / np.where(se > 0, se, np.inf)
        assert np.max(np.abs(z)) > 6.0, f"dropping {which}{(i, j)} went unnoticed"


def test_generated_erf_equations_equal_hand_written_closed_forms():
    """The derivation reproduces the spec's untied erf equations typed in by hand."""
    rng = np.random.default_rng(3)
    K, D = 3, 500
    spec = spiked_covariance(D, spikes=[1.5, 0.9, 0.4, 0.2], bulk=0.2)
    model = Autoencoder(K=K, activation="erf")
    A, B = rng.normal(0, 0.7, (K, 4)), rng.normal(0, 0.7, (K, 4))
    QB, T0B = np.diag(rng.uniform(0.01, 0.1, K)), np.diag(rng.uniform(0.1, 0.5, K))
    G = np.zeros((2 * K, 2 * K))
    G[:K, :K] = QB / (spec.bulk / D)
    G[K:, K:] = T0B
    state = State(model, spec, np.vstack([A, B]), G, np.zeros(K))
    dy = rhs_function(compile_model(model), state, 0.9, bulk="limit")(0.0, state.to_vector())
    dA, dB, dT0B = erf_untied_rhs(A, B, spec.s, QB, T0B, 0.9)
    dY = dy[:2 * K * 4].reshape(2 * K, 4)
    dG = dy[2 * K * 4:2 * K * 4 + 4 * K * K].reshape(2 * K, 2 * K)
    np.testing.assert_allclose(dY[:K], dA, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dY[K:], dB, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dG[K:, K:], dT0B, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dG[:K, :K], 0.0, atol=1e-13)      # bulk encoder frozen


@pytest.mark.parametrize("tied", [False, True])
def test_reduced_coordinates_give_the_same_sgd_step(tied):
    """monte_carlo_drift steps in (tracked modes, span of the weights' bulk parts): the
    increments of the tracked overlaps and of the bulk Gram matrix must be those of the
    step in all D coordinates, sample by sample."""
    from odesolve.testing.sgd_oracle import (activation_and_derivative, reduce_coordinates,
                                             sgd_increments)
    rng = np.random.default_rng(3)
    model = Autoencoder(K=3, activation="erf", tied=tied, rule="truncated" if tied else "sgd")
    spec, W, V, m = random_state(model, rng, 400)
    g, gp = activation_and_derivative("erf")
    M = spec.n_tracked
    X = spec.sample(50, rng)
    Wr, Vr, basis = reduce_coordinates(W, V, M)
    Xr = np.concatenate([X[:, :M], X[:, M:] @ basis], axis=1)
    assert Xr.shape[1] < D // 10
    full = sgd_increments(X, W, V, m, 0.7, g, gp, tied=tied, rule=model.rule)
    reduced = sgd_increments(Xr, Wr, Vr, m, 0.7, g, gp, tied=tied, rule=model.rule,
                             dimension=spec.D)
    for d, dr, Z, Zr in zip(full[:2], reduced[:2], (W, V), (Wr, Vr)):
        np.testing.assert_allclose(dr[:, :, :M], d[:, :, :M], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(dr[:, :, M:] @ Zr[:, M:].T, d[:, :, M:] @ Z[:, M:].T,
                                   rtol=1e-9, atol=1e-14)
