"""The published reference scheme, re-implemented for the benchmark only.

Plain Python/numpy right-hand side of the spec's untied erf equations, typed in by hand
from the closed forms (not generated), integrated with fixed Euler steps dt = 1/D.  The
known defects of the published code (spec) are not reproduced.  For erf,
g(x) = erf(x/√2), with λ ~ N(0, Q):

    E[g'_k]        = √(2/π) / √(1+Q_kk)
    E[g'_k g'_l]   = (2/π) / √((1+Q_kk)(1+Q_ll) − Q_kl²)
    E[g_k g_l]     = (2/π) arcsin(Q_kl / √((1+Q_kk)(1+Q_ll)))
    E[u_k g''_k]   = R_kk E[g'''_k] = −R_kk √(2/π) / (1+Q_kk)^{3/2}
    E[g''_k g_m]   = −Q_km/(1+Q_kk) · E[g'_k g'_m]   (Gaussian integration by parts)

Because it is independent of the derivation, ``tests/derive/test_rhs_monte_carlo.py`` also uses it
as a check of the generated equations.
"""
from __future__ import annotations

import numpy as np


def erf_untied_rhs(A, B, s, QB, T0B, lr):
    """(dA, dB, dT0B) of the spec's equations, bulk in the D → ∞ closure."""
    Q = (A * s) @ A.T + QB
    R = (B * s) @ A.T
    T0 = B @ B.T + T0B
    d = 1.0 + np.diag(Q)
    Eg1 = np.sqrt(2 / np.pi) / np.sqrt(d)
    Eg1g1 = (2 / np.pi) / np.sqrt(np.outer(d, d) - Q**2)
    I2 = (2 / np.pi) * np.arcsin(Q / np.sqrt(np.outer(d, d)))
    Eug2 = -np.diag(R) * np.sqrt(2 / np.pi) / d**1.5
    Eg2g = -(Q / d[:, None]) * Eg1g1
    E = -T0 * Eg1g1 + np.diag(Eug2 - np.sum(T0 * Eg2g, axis=1))
    dA = lr * s * (Eg1[:, None] * B + E @ A)
    dB = lr * (s * Eg1[:, None] * A - I2 @ B)
    dT0B = -lr * (I2 @ T0B + T0B @ I2)
    return dA, dB, dT0B


def euler_reference(A, B, s, QB, T0B, lr, t_max, D, n_steps=None):
    """Euler steps of 1/D up to t_max (or only ``n_steps`` of them, for timing)."""
    dt = 1.0 / D
    steps = int(round(t_max * D)) if n_steps is None else n_steps
    for _ in range(steps):
        dA, dB, dT0B = erf_untied_rhs(A, B, s, QB, T0B, lr)
        A, B, T0B = A + dt * dA, B + dt * dB, T0B + dt * dT0B
    return A, B, T0B
