"""The generalisation error from order parameters: one function for theory and simulator.

``ε = tr Ω/(2D) + E[L(λ, u, T0)]`` with the field-space loss of :mod:`odesolve.derive`;
the average is derived symbolically and compiled with the model's equations.  It is
exact at any D for any weights (the inputs are Gaussian).

>>> import numpy as np
>>> from odesolve import Autoencoder, OrderParameters, spiked_covariance
>>> spec = spiked_covariance(D=100, spikes=[1.0], bulk=0.5)
>>> ops = OrderParameters.from_weights(spec, np.zeros((1, 100)), np.zeros((1, 100)))
>>> generalisation_error(Autoencoder(K=1, activation="erf"), ops) == spec.initial_error
True
"""
from __future__ import annotations

import numpy as np

from .codegen import compile_model
from .model import Autoencoder
from .state import OrderParameters

__all__ = ["generalisation_error"]


def generalisation_error(model: Autoencoder, order_parameters: OrderParameters) -> float:
    """Population error ``E‖x − x̂‖²/(2D)`` of weights with these order parameters."""
    ops = order_parameters
    K = model.K
    for name in ("Q", "R", "T0"):
        shape = np.shape(getattr(ops, name))
        if shape != (K, K):
            raise ValueError(f"{name} must have shape ({K}, {K}), got {shape}")
    excess = compile_model(model).module.error_excess(
        np.ascontiguousarray(ops.Q, dtype=float), np.ascontiguousarray(ops.R, dtype=float),
        np.ascontiguousarray(ops.T0, dtype=float), np.ascontiguousarray(ops.m, dtype=float))
    return float(ops.trace / 2 + excess)
