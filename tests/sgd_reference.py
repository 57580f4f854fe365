"""Independent, vectorised reference for one online-SGD step (tests only).

Written directly from the update rules of the spec, without the derivation machinery,
so that the derived equations can be checked against it.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

SQRT2 = np.sqrt(2.0)


def activation_and_derivative(name: str):
    """g and its almost-everywhere derivative, as numpy functions."""
    if name == "linear":
        return (lambda x: x), (lambda x: np.ones_like(x))
    if name == "erf":
        return (lambda x: erf(x / SQRT2)), (lambda x: np.sqrt(2 / np.pi) * np.exp(-x**2 / 2))
    if name == "relu":
        return (lambda x: np.maximum(x, 0.0)), (lambda x: (x > 0).astype(float))
    if name == "sign":
        return np.sign, (lambda x: np.zeros_like(x))
    if name == "tanh":
        return np.tanh, (lambda x: 1 - np.tanh(x)**2)
    raise KeyError(name)


def sgd_increments(X, W, V, m, lr, g, gp, *, tied=False, rule="sgd", train_bias=False):
    """Per-sample increments (dW, dV, dm) of one SGD step for each row of X.

    X: (n, D) inputs; W, V: (K, D); returns arrays (n, K, D), (n, K, D), (n, K).
    For tied weights V is √D W and dV is √D dW.
    """
    n, D = X.shape
    K = W.shape[0]
    lam = X @ W.T / np.sqrt(D) + m
    G, Gp = g(lam), gp(lam)
    dW = np.empty((n, K, D))
    dV = np.empty((n, K, D))
    dm = np.zeros((n, K))
    for k in range(K):
        units = range(K) if rule == "sgd" else range(k + 1)
        err = X - sum(G[:, [l]] * V[l] for l in units)          # x − x̂ (possibly truncated)
        signal = err @ V[k] / D * Gp[:, k]                     # (x − x̂)·v_k/D · g'(λ_k)
        encoder = signal[:, None] * X / np.sqrt(D)
        decoder = err * G[:, [k]]
        if tied:
            hebb = decoder / np.sqrt(D)
            dW[:, k] = lr / D * (hebb if rule == "sanger" else encoder + hebb)
            dV[:, k] = np.sqrt(D) * dW[:, k]
        else:
            dW[:, k] = lr / D * encoder
            dV[:, k] = lr / D * decoder
        if train_bias:
            dm[:, k] = lr / D * signal
    return dW, dV, dm
