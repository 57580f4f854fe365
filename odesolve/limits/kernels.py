"""Activation kernels ``K = E[σ(Bx)σ(Bx)ᵀ]`` and ``H = E[xσ(Bx)ᵀ]`` of Gaussian inputs."""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy

from ._common import (NAMED_ACTIVATIONS, _QUADRATURE_CHUNK, _QUADRATURE_ORDER, _RightProduct,
                      _check_covariance, _check_matrix)

# --------------------------------------------------------------------------- kernels
def _unit_correlations(C: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``C_ij / (scale_i scale_j)`` with the diagonal set to exactly one (zero scale → 0)."""
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
    rho = np.clip(C * inv[:, None] * inv[None, :], -1.0, 1.0)
    np.fill_diagonal(rho, np.where(scale > 0, 1.0, 0.0))
    return rho


def _named_moments(C: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``K = E[g(λ)g(λ)ᵀ]`` and ``e_i = E[λ_i g(λ_i)]`` for ``λ ~ N(0, C)``."""
    v = np.diag(C).copy()
    if name == "sign":
        K = (2 / np.pi) * np.arcsin(_unit_correlations(C, np.sqrt(v)))
        return K, np.sqrt(2 * v / np.pi)
    if name == "erf":      # g(x) = erf(x/√2):  E[g g] = (2/π) arcsin(C_ij / √((1+C_ii)(1+C_jj)))
        K = (2 / np.pi) * np.arcsin(np.clip(C / np.sqrt(np.outer(1 + v, 1 + v)), -1, 1))
        return K, v * np.sqrt(2 / (np.pi * (1 + v)))
    if name == "relu":     # arc-cosine kernel of degree one
        rho = _unit_correlations(C, np.sqrt(v))
        K = np.sqrt(np.outer(v, v)) / (2 * np.pi) * (
            np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
        return K, v / 2
    return C.copy(), v    # linear


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
    rho = _unit_correlations(C, scale)
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
        Bad shapes, a non-PSD covariance, or (for ``sign``) a unit whose
        pre-activation has zero variance (a zero row, or a row in the null space of Σ).

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
    B = _check_matrix("encoder B", B)
    d = B.shape[1]
    cov = _check_covariance(covariance, d)
    BS = _RightProduct(cov)(B)                                    # rows Σ b_i
    C = BS @ B.T
    C = 0.5 * (C + C.T)
    v = np.diag(C)
    if isinstance(activation, str):
        if activation not in NAMED_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: expected one of "
                             f"{NAMED_ACTIVATIONS}, a callable or a sympy expression")
        if activation == "sign":
            _check_sign_variances(B, v, 1.0 if cov is None else float(np.max(np.abs(cov))))
        K, e = _named_moments(C, activation)
    else:
        K, e = _quadrature_moments(C, _as_callable(activation))
    coefficient = np.divide(e, v, out=np.zeros_like(v), where=v > 0)
    return K, BS.T * coefficient[None, :]


def _check_sign_variances(B: np.ndarray, variances: np.ndarray, cov_scale: float) -> None:
    zero_rows = np.flatnonzero(~np.any(B != 0, axis=1))
    if zero_rows.size:
        raise ValueError(f"encoder rows {zero_rows[:10].tolist()} have zero norm: the sign "
                         f"activation needs nonzero rows")
    flat = np.flatnonzero(variances <= 1e-14 * cov_scale * np.sum(B**2, axis=1))
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
