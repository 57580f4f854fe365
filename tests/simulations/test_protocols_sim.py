"""The simulator's protocols step by step: per-step rate at the step's time, mini-batch means,
rates and decay, against the independent reference increments."""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, spiked_covariance
from odesolve.protocols import Protocol, exponential, piecewise
from odesolve.state import initial_weights
from odesolve.testing.sgd_oracle import activation_and_derivative, sgd_increments
from simulations import simulate


@pytest.mark.parametrize("batch", [1, 3])
def test_steps_follow_the_schedule_and_average_the_batch(batch):
    D, steps, lr = 40, 4, 0.9
    spec = spiked_covariance(D, [2.0, 1.0], 0.3)
    model = Autoencoder(K=2, activation="erf")
    protocol = Protocol(schedule=exponential(0.05), encoder_rate=1.3, decoder_rate=0.7,
                        encoder_decay=0.4, decoder_decay=0.9, batch_size=batch)
    n = steps * batch
    run = simulate(model, spec, lr, n / D, seed=3, times=[0.0, n / D], n_test=5,
                   protocol=protocol)
    # replay: the seed draws the initial weights, then the inputs, in this order
    rng = np.random.default_rng(3)
    W, V, m = initial_weights(model, D, 0.1, rng)
    X = rng.standard_normal((n, D)) * np.sqrt(spec.all_eigenvalues)
    g, gp = activation_and_derivative("erf")
    for step in range(steps):
        rows = X[step * batch:(step + 1) * batch]
        eta = lr * np.exp(-(step * batch / D) / 0.05)      # rate at the step's start
        dW, dV, _ = sgd_increments(rows, W, V, m, eta, g, gp, rates=(1.3, 0.7, 1.0, 0.4, 0.9))
        W, V = W + dW.mean(0), V + dV.mean(0)
    np.testing.assert_allclose(run.W, W, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(run.V, V, rtol=1e-11, atol=1e-13)
    assert run.protocol is protocol


def test_batches_round_the_run_to_whole_steps():
    spec = spiked_covariance(50, [2.0], 0.3)
    model = Autoencoder(K=1, activation="linear")
    run = simulate(model, spec, 1.0, 1.0, times=[0.0, 0.5, 1.0], n_test=5,
                   protocol=Protocol(batch_size=4))
    np.testing.assert_array_equal(run.steps, [0, 24, 48])   # multiples of B, ≤ t_max·D
    with pytest.raises(ValueError, match="less than one batch"):
        simulate(model, spec, 1.0, 0.04, protocol=Protocol(batch_size=4))
    with pytest.raises(ValueError, match="tied weights have one vector"):
        simulate(Autoencoder(K=1, activation="linear", tied=True), spec, 1.0, 1.0,
                 protocol=Protocol(encoder_decay=0.1))
    with pytest.raises(TypeError, match="protocol must be"):
        simulate(model, spec, 1.0, 1.0, protocol="sgd")


def test_piecewise_schedule_with_a_pause_freezes_the_weights():
    spec = spiked_covariance(50, [2.0], 0.3)
    model = Autoencoder(K=1, activation="erf")
    run = simulate(model, spec, 1.0, 3.0, times=[0.0, 1.0, 2.0, 3.0], n_test=5,
                   protocol=Protocol(schedule=piecewise([1.0, 2.0], [1.0, 0.0, 1.0])))
    np.testing.assert_array_equal(run.A[1], run.A[2])
    assert not np.array_equal(run.A[2], run.A[3])
