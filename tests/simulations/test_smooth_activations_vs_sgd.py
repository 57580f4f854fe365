"""The integrated ODE of activations the previous engine could not derive, against SGD.

Issue 9's corpus added activations whose Gaussian averages have no closed form the old
engine found (sigmoid at K ≥ 2 failed outright; GELU and sin need the structural
derivation).  For each, K = 2 on two spikes, the ODE started from every seed's own
initial weights (``bulk="finite"``, exact at that D) is compared with the exact error of
the simulated weights at D = 400 and 1600 (8 seeds each):

* over the whole curve (ε(0) ≈ 1.6, learning of both spikes included) a typical run stays
  within 0.05 of its ODE at D = 1600 (measured 0.028–0.030);
* after learning (t ≥ 15) the typical distance shrinks with D at least like the
  1/√D of SGD's fluctuations (a factor 0.5 from D = 400 to 1600; measured 0.3).
"""
from __future__ import annotations

import numpy as np
import pytest

from odesolve import Autoencoder, integrate, spiked_covariance
from odesolve.testing.sgd_oracle import CORPUS
from simulations import simulate_seeds

T_MAX = 20.0
TIMES = np.linspace(0.0, T_MAX, 41)
SEEDS = range(8)


def _residuals(name, D):
    model = Autoencoder(K=2, activation=CORPUS[name][0])
    spec = spiked_covariance(D, [2.0, 1.0], 0.2)
    runs = simulate_seeds(model, spec, 1.0, T_MAX, SEEDS, times=TIMES, n_test=10)
    sgd = np.array([r.theory_error() for r in runs])
    ode = np.array([integrate(r.state(0), 1.0, (0.0, T_MAX), t_eval=TIMES,
                              bulk="finite").error for r in runs])
    np.testing.assert_allclose(sgd[:, 0], ode[:, 0], rtol=1e-9)
    gap = np.abs(sgd - ode)
    return np.median(gap.max(axis=1)), np.median(gap[:, TIMES >= 15].mean(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sigmoid", "gelu", "sin"])
def test_ode_follows_sgd_and_the_gap_shrinks_with_d(name):
    whole_400, late_400 = _residuals(name, 400)
    whole_1600, late_1600 = _residuals(name, 1600)
    assert whole_1600 < 0.05, whole_1600
    assert late_1600 < 0.7 * late_400, (late_400, late_1600)
