"""Activation kernels ``K = E[σ(Bx)σ(Bx)ᵀ]`` and ``H = E[xσ(Bx)ᵀ]`` of Gaussian inputs."""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy

from ._common import (NAMED_ACTIVATIONS, _QUADRATURE_CHUNK, _QUADRATURE_ORDER, _RightProduct,
                      _check_covariance, _check_encoder)

# --------------------------------------------------------------------------- kernels
def _unit_correlations(C: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``C_ij / √(v_i v_j)`` with the diagonal set to exactly one (zero variance → 0).
    One rounding: duplicated rows get exactly 1 (arcsin turns 1 − 1e-16 into an error of
    1e-8); ``v`` must be of moderate scale (``_kernel_factors`` sees to it)."""
    scale = np.sqrt(np.outer(v, v))
    rho = np.clip(np.divide(C, scale, out=np.zeros_like(C), where=scale > 0), -1.0, 1.0)
    np.fill_diagonal(rho, np.where(v > 0, 1.0, 0.0))
    return rho


def _named_moments(C: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``K = E[g(λ)g(λ)ᵀ]`` and ``e_i = E[λ_i g(λ_i)]`` for ``λ ~ N(0, C)`` (sign, relu,
    linear: positively homogeneous, so C of unit scale is all they need)."""
    v = np.maximum(np.diag(C), 0.0)          # a row in Σ's null space: −1e-17 by rounding
    if name == "sign":
        K = (2 / np.pi) * np.arcsin(_unit_correlations(C, v))
        return K, np.sqrt(2 * v / np.pi)
    if name == "relu":     # arc-cosine kernel of degree one
        rho = _unit_correlations(C, v)
        K = np.sqrt(np.outer(v, v)) / (2 * np.pi) * (
            np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
        return K, v / 2
    return C.copy(), v    # linear


def _erf_factors(C: np.ndarray, log_a: np.ndarray):
    """Kernels of ``erf(a_k λ_k/√2)/u_k`` for ``λ ~ N(0, C)``, rows scaled by ``a = e^{log_a}``
    (any representable or not), ``u = a/√(1 + a² v)``: ``K̃ = (2/π) C arcsin(z)/z`` with
    ``z_kl = u_k u_l C_kl``, and ``u``.  The diagonal's ``1 − z_kk = 1/(1 + a² v)`` is
    formed exactly: arcsin is ill-conditioned at 1 (the sign limit, large a), where
    ``z_kk`` itself would lose half the digits.  (Derived here: E[erf(x/√2) erf(y/√2)] =
    (2/π) arcsin(c/√((1+q1)(1+q2))) at covariance [[q1, c], [c, q2]].)"""
    v = np.maximum(np.diag(C), 0.0)
    # in powers of a below 1 only (a itself, or 1/a, may be beyond floating point); a
    # row with v = 0 and 1/a² = 0 (Σ's null space, a beyond 1e154) is the zero feature
    large = log_a > 0
    small_a2, inverse_a2 = np.exp(2.0 * np.minimum(log_a, 0)), np.exp(-2.0 * np.maximum(log_a, 0))
    below = np.where(large, inverse_a2 + v, 1.0 + small_a2 * v)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(below > 0, np.where(large, 1.0, np.exp(np.minimum(log_a, 0)))
                     / np.sqrt(below), 0.0)
        delta = np.where(below > 0, np.where(large, inverse_a2, 1.0) / below, 1.0)
    z = np.clip(np.outer(u, u) * C, -1.0, 1.0)
    np.fill_diagonal(z, 1.0 - delta)
    arcsin = np.arcsin(z)
    np.fill_diagonal(arcsin, np.arctan2(1.0 - delta, np.sqrt(delta * (2.0 - delta))))
    small = np.abs(z) < 1e-8
    asinc = np.where(small, 1.0 + z**2 / 6, arcsin / np.where(small, 1.0, z))
    return (2 / np.pi) * C * asinc, u


def _kernel_factors(B, activation, cov):
    """The kernels of a named activation with the scales of ``B`` and ``Σ`` factored out.

    ``K = κ diag(f) K̃ diag(f)`` and ``H = η H̃ diag(f)``, where ``K̃``, ``H̃`` are those of
    the problem at unit scale (each row of B divided by its largest entry, Σ by its own),
    and ``η²/κ = s`` (the scale of Σ) for every named activation, so that ``H K⁺ Hᵀ =
    s H̃ K̃⁺ H̃ᵀ``: the optimal decoder's risk needs no kernel at the true scale, which
    under- or overflows for rows or covariances of size 1e±150.

    Parameters
    ----------
    B : ndarray, shape (n, d)
        Encoder (checked).
    activation : {"sign", "erf", "relu", "linear"}
    cov : ndarray, shape (d, d), or None
        Covariance (checked), identity if None.

    Returns
    -------
    K̃ : ndarray, shape (n, n)
    H̃ : ndarray, shape (d, n)
    f : ndarray, shape (n,)
        Feature scales: 1 (sign), the row scales (relu, linear), ``u`` (erf).
    kappa, eta : float
    scale : float
        ``s``, the largest entry of Σ in size (1 for the identity or Σ = 0).
    unit_cov : ndarray or None
        ``Σ/s``.
    """
    largest = 1.0 if cov is None else float(np.max(np.abs(cov)))
    scale = largest if largest > 0 else 1.0
    unit_cov = cov if cov is None else cov / scale
    norms = np.max(np.abs(B), axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    unit_rows = B / norms[:, None]
    BS = _RightProduct(unit_cov)(unit_rows)                       # rows Σ' b'_i
    C = BS @ unit_rows.T
    C = 0.5 * (C + C.T)
    v = np.diag(C)
    if activation == "erf":
        with np.errstate(divide="ignore"):
            K, f = _erf_factors(C, 0.5 * np.log(scale) + np.log(norms))
        return K, np.sqrt(2 / np.pi) * BS.T, f, 1.0, np.sqrt(scale), scale, unit_cov
    if activation == "sign":
        bound = (np.sum(unit_rows**2, axis=1) if unit_cov is None else
                 np.sum((np.abs(unit_rows) @ np.abs(unit_cov)) * np.abs(unit_rows), axis=1))
        _check_sign_variances(unit_rows, v, bound)
    K, e = _named_moments(C, activation)
    H = BS.T * np.divide(e, v, out=np.zeros_like(v), where=v > 0)[None, :]
    if activation == "sign":
        return K, H, np.ones_like(norms), 1.0, np.sqrt(scale), scale, unit_cov
    return K, H, norms, scale, scale, scale, unit_cov


def _as_callable(activation) -> Callable[[np.ndarray], np.ndarray]:
    """A vectorised numpy function from a callable or a sympy expression in one symbol."""
    if type(activation).__module__.split(".")[0] == "sympy":
        symbols = sorted(activation.free_symbols, key=str)
        if len(symbols) > 1:
            raise ValueError(f"a sympy activation must depend on one symbol, got {symbols}")
        function = sympy.lambdify(symbols or [sympy.Symbol("x")], activation, "numpy")
    elif callable(activation):
        function = activation
    else:
        raise ValueError(f"unknown activation {activation!r}: expected one of "
                         f"{NAMED_ACTIVATIONS}, a callable or a sympy expression")

    def vectorised(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(function(x), dtype=float), x.shape)

    return vectorised


def _quadrature_moments(C: np.ndarray, g: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite version of :func:`_named_moments` for any activation ``g``.

    ``(λ_i, λ_j) = (a z₁, b(ρ z₁ + √(1−ρ²) z₂))`` with ``z ~ N(0, I₂)``; the product
    rule with ``_QUADRATURE_ORDER`` nodes per axis is exact for polynomials of degree
    below ``2·_QUADRATURE_ORDER``: about 1e-8 for smooth ``g`` at pre-activation
    variances of order one, but the error of a kink off the axes decays only like
    1/order (3e-3 for ReLU), and functions steep on the scale of the node spacing
    (erf at variance 10) also converge slowly: use the named closed forms there.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_ORDER)
    weights = weights / weights.sum()
    scale = np.sqrt(np.diag(C))
    values = g(scale[:, None] * nodes[None, :])                   # (n, q)
    e = (values * (scale[:, None] * nodes[None, :])) @ weights
    K = np.diag((values**2) @ weights)
    rho = _unit_correlations(C, np.diag(C))
    rows, cols = np.triu_indices(C.shape[0], k=1)
    w2 = np.outer(weights, weights)
    chunk = max(1, _QUADRATURE_CHUNK // len(nodes) ** 2)
    for start in range(0, len(rows), chunk):
        i, j = rows[start:start + chunk], cols[start:start + chunk]
        p = rho[i, j][:, None, None]
        second = scale[j][:, None, None] * (p * nodes[None, :, None]
                                            + np.sqrt(1 - p**2) * nodes[None, None, :])
        K[i, j] = np.einsum("pa,pab,ab->p", values[i], g(second), w2)
    K = np.triu(K) + np.triu(K, 1).T
    return K, e


def activation_kernels(B, activation="sign", covariance=None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian second moments ``K = E[σ(Bx)σ(Bx)ᵀ]`` and ``H = E[x σ(Bx)ᵀ]``.

    Parameters
    ----------
    B : array_like, shape (n, d)
        Encoder.
    activation : {"sign", "erf", "relu", "linear"}, callable or sympy expression
        ``"erf"`` is ``erf(x/√2)``.  The named ones use closed forms (arcsine kernel,
        arc-cosine kernel); a vectorised callable or a sympy expression in one symbol
        is integrated by Gauss–Hermite quadrature.
    covariance : array_like, shape (d, d), optional
        Input covariance ``Σ`` (positive semi-definite); identity by default.

    Returns
    -------
    K : ndarray, shape (n, n)
    H : ndarray, shape (d, n)

    Raises
    ------
    ValueError
        Bad shapes, a non-PSD covariance, (for ``sign``) a unit whose pre-activation has
        zero variance (a zero row, or a row in the null space of Σ), or kernels that
        over- or underflow (rows times √Σ beyond ~1e±154; :func:`optimal_risk`,
        :func:`optimal_decoder` and :func:`population_risk` take any scale).

    Examples
    --------
    >>> K, H = activation_kernels(np.eye(2), "relu")
    >>> K
    array([[0.5       , 0.15915494],
           [0.15915494, 0.5       ]])
    >>> H
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    B = _check_encoder(B)
    d = B.shape[1]
    cov = _check_covariance(covariance, d)
    if isinstance(activation, str):
        if activation not in NAMED_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: expected one of "
                             f"{NAMED_ACTIVATIONS}, a callable or a sympy expression")
        K_unit, H_unit, f, kappa, eta, _, _ = _kernel_factors(B, activation, cov)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            K, H = kappa * (f[:, None] * K_unit * f[None, :]), eta * (H_unit * f[None, :])
        _check_representable(K, H, activation)
        if np.any((K == 0) & (K_unit != 0)) or np.any((H == 0) & (H_unit != 0)):
            raise ValueError(f"the kernels of {activation} underflow at the scale of this "
                             "encoder and covariance (rows times √Σ below ~1e-154); "
                             "optimal_risk, optimal_decoder and population_risk take any scale")
        return K, H
    BS = _RightProduct(cov)(B)                                    # rows Σ b_i
    C = BS @ B.T
    C = 0.5 * (C + C.T)
    v = np.diag(C)
    K, e = _quadrature_moments(C, _as_callable(activation))
    coefficient = np.divide(e, v, out=np.zeros_like(v), where=v > 0)
    K, H = K, BS.T * coefficient[None, :]
    _check_representable(K, H, "this activation")
    return K, H


def _check_representable(K, H, name):
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(H))):
        raise ValueError(f"the kernels of {name} overflow at the scale of this encoder and "
                         "covariance (rows times √Σ beyond ~1e154); optimal_risk, "
                         "optimal_decoder and population_risk take any scale")


def _check_sign_variances(B: np.ndarray, unit_variances: np.ndarray, bound: np.ndarray) -> None:
    """``B``: the rows at unit scale, ``unit_variances`` their variances under Σ/s, and
    ``bound`` = |b|ᵀ|Σ/s||b|, which bounds the rounding of a variance (a variance of that
    order times 1e-14 is a row in Σ's null space, not a small but informative one)."""
    zero_rows = np.flatnonzero(~np.any(B != 0, axis=1))
    if zero_rows.size:
        raise ValueError(f"encoder rows {zero_rows[:10].tolist()} have zero norm: the sign "
                         f"activation needs nonzero rows")
    flat = np.flatnonzero(unit_variances <= 1e-14 * bound)
    if flat.size:
        raise ValueError(f"encoder rows {flat[:10].tolist()} have zero variance under the "
                         f"covariance (sign(0) carries no information)")


def sign_kernel(B, covariance=None) -> tuple[np.ndarray, np.ndarray]:
    """Arcsine kernel ``E[sign(Bx)sign(Bx)ᵀ]`` and ``E[x sign(Bx)ᵀ]`` for ``x ~ N(0, Σ)``.

    Parameters
    ----------
    B : array_like, shape (n, d)
        Encoder; row norms are irrelevant (rows must be nonzero).
    covariance : array_like, shape (d, d), optional
        ``Σ``; identity by default.

    Returns
    -------
    K : ndarray, shape (n, n)
        ``(2/π) arcsin(B̃ Σ B̃ᵀ)`` with ``B̃`` the rows scaled to unit variance.
    H : ndarray, shape (d, n)
        ``√(2/π) Σ B̃ᵀ``.

    Examples
    --------
    >>> K, H = sign_kernel([[1.0, 0.0], [1.0, 1.0]])
    >>> K.round(4)
    array([[1. , 0.5],
           [0.5, 1. ]])
    >>> (H / np.sqrt(2 / np.pi)).round(4)
    array([[1.    , 0.7071],
           [0.    , 0.7071]])
    """
    return activation_kernels(B, "sign", covariance)
