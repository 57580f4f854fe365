"""Monte-Carlo oracle for Gaussian averages of expressions with Dirac deltas.

A delta factor δ^(n)(λ − r) is replaced by the n-th derivative of a N(0, ε²) density
(the conditional expectation of δ^(n)(λ + εξ − r) over ξ) and regular factors are
evaluated at λ + εξ.  This is an unbiased estimate of the same average with the variance
raised to q + ε², which is where the theory is to be evaluated (the returned
``shifted`` parameters).
"""
from __future__ import annotations

import math

import numpy as np
import sympy
from numpy.polynomial.hermite_e import hermeval

from ..spec.activations import X

__all__ = ["smoothed", "mc_average_1", "mc_average_2", "EPS"]

#: Smoothing width of delta factors.
EPS = 0.5


def smoothed(expr, eps: float = EPS):
    """Per-sample unbiased estimator of (expr * N(0, eps²))(λ): ``(value(λ, ξ), has_delta)``."""
    regular, deltas = sympy.Integer(0), []
    for term in sympy.Add.make_args(sympy.expand(expr)):
        found = [f for f in sympy.Mul.make_args(term) if isinstance(f, sympy.DiracDelta)]
        if not found:
            regular += term
            continue
        a = term / found[0]
        if a.has(X):
            raise ValueError(f"expects constant delta coefficients (normalize first): {term}")
        n = int(found[0].args[1]) if len(found[0].args) > 1 else 0
        deltas.append((float(a), n, float(-found[0].args[0].subs(X, 0))))
    fn = sympy.lambdify(X, regular, modules=["scipy", "numpy"])

    def value(lam, xi):
        out = np.broadcast_to(fn(lam + eps * xi), lam.shape).astype(float)
        for a, n, r in deltas:  # d^n/du^n of the N(0, eps^2) density: (-1)^n He_n(u/eps) phi/eps^n
            u = (lam - r) / eps
            out = out + a * (-1) ** n * hermeval(u, [0] * n + [1]) * np.exp(-u * u / 2) / (
                math.sqrt(2 * math.pi) * eps ** (n + 1))
        return out

    return value, bool(deltas)


def mc_average_2(f, h, p, rng, n: int, eps: float = EPS):
    """Estimate of E[f(λ1) h(λ2)] at p = (q1, q2, c, m1, m2): ``(mean, stderr, shifted p)``."""
    q1, q2, c, m1, m2 = p
    fv, f_delta = smoothed(f, eps)
    hv, h_delta = smoothed(h, eps)
    z1, z2, xi1, xi2 = rng.standard_normal((4, n))
    lam1 = m1 + math.sqrt(q1) * z1
    lam2 = m2 + c / math.sqrt(q1) * z1 + math.sqrt(q2 - c * c / q1) * z2
    s = fv(lam1, xi1 if f_delta else 0 * xi1) * hv(lam2, xi2 if h_delta else 0 * xi2)
    shifted = (q1 + eps**2 * f_delta, q2 + eps**2 * h_delta, c, m1, m2)
    return s.mean(), s.std() / math.sqrt(n), shifted


def mc_average_1(f, q, m, rng, n: int, eps: float = EPS):
    """Estimate of E[f(λ)], λ ~ N(m, q): ``(mean, stderr, shifted q)``."""
    fv, has_delta = smoothed(f, eps)
    lam = m + math.sqrt(q) * rng.standard_normal(n)
    s = fv(lam, rng.standard_normal(n) if has_delta else 0 * lam)
    return s.mean(), s.std() / math.sqrt(n), q + eps**2 * has_delta
