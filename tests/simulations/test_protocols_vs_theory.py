"""Training protocols: the integrated theory against online SGD at D = 1000 (slow).

For each protocol (schedule, per-layer rates, weight decay, mini-batches) and for erf and
ReLU, four seeds are simulated and each is compared with the theory integrated from its
own initial weights.  The simulated error is the exact error of the simulated weights
(:func:`odesolve.generalisation_error` of their order parameters), so the only differences
are SGD's fluctuations and its O(1/D) bias.  The mean difference must stay within three
standard errors of its seed spread plus 2·10⁻³ (≈ 2/D: the finite-D bias); the theory of
plain SGD (the protocol dropped) must fall outside that band somewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, State, generalisation_error, integrate, spiked_covariance
from odesolve.protocols import Protocol, power_law
from simulations import simulate

SPEC = spiked_covariance(D=1000, spikes=[2.0, 1.0], bulk=0.05)
SEEDS = range(4)
FLOOR = 2e-3

PROTOCOLS = {
    "schedule": (1.0, Protocol(schedule=power_law(3.0, 1.0))),
    "rates": (1.0, Protocol(encoder_rate=1.5, decoder_rate=0.25)),
    "decay": (1.0, Protocol(encoder_decay=0.2, decoder_decay=0.3)),
    "batch": (2.0, Protocol(batch_size=4)),
}


def _band(differences):
    """3 standard errors of the seed spread of SGD around its theory, plus the floor."""
    d = np.asarray(differences)
    return 3 * d.std(0, ddof=1) / np.sqrt(len(d)) + FLOOR


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["erf", "relu"])
@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_protocol_theory_matches_sgd_at_d1000(activation, name):
    lr, protocol = PROTOCOLS[name]
    model = Autoencoder(K=2, activation=activation)
    right, wrong = [], []
    for seed in SEEDS:
        sim = simulate(model, SPEC, lr, 40.0, seed=seed, n_times=12, n_test=10, protocol=protocol)
        exact = np.array([generalisation_error(model, sim.order_parameters(i))
                          for i in range(len(sim.t))])
        state = State.random(model, SPEC, 0.1, seed=seed)
        theory = integrate(state, lr, (0.0, sim.t[-1]), t_eval=sim.t, protocol=protocol)
        plain = integrate(state, lr, (0.0, sim.t[-1]), t_eval=sim.t)
        right.append(exact - theory.error)
        wrong.append(exact - plain.error)
    band = _band(right)
    ok = np.abs(np.mean(right, 0)) <= band
    assert np.all(ok), f"theory off at t = {sim.t[~ok]}: {np.mean(right, 0)[~ok]} > {band[~ok]}"
    assert np.any(np.abs(np.mean(wrong, 0)) > band), "the protocol made no visible difference"
