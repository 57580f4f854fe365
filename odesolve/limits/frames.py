"""Minimisers: incoherent tight frames, their structure, and water-filling over a spectrum."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_cost
from ._common import (ARCSINE_EXCESS, SECONDS_PER_FLOP, _check_encoder, _check_positive,
                      _check_rng, _hidden_units)
from .risks import _check_spectrum

# --------------------------------------------------------------------------- minimisers
def _unit_rows(B: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(B, axis=1)
    zero_rows = np.flatnonzero(norms == 0)
    if zero_rows.size:
        raise ValueError(f"encoder rows {zero_rows[:10].tolist()} have zero norm: the sign "
                         f"activation needs nonzero rows")
    return B / norms[:, None]


def tight_frame_encoder(d, r, rng) -> np.ndarray:
    """Explicit (near-)minimiser of the sign risk at rate ``r`` in dimension ``d``.

    ``r ≤ 1``: ``n`` Haar-random orthonormal rows (exact minimiser at every ``d``).
    ``r > 1``: the first ``d`` columns of an ``n×n`` Haar-random orthogonal matrix, rows
    renormalised — a unit-norm, nearly tight frame whose overlaps are ``O(1/√d)``, so
    its risk approaches the bound as ``d`` grows (gap ≈ 0.14/d at r = 2).

    Parameters
    ----------
    d : int
        Input dimension.
    r : float
        Rate; ``r·d`` must be an integer.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n, d)
        Encoder with unit-norm rows.

    Examples
    --------
    >>> B = tight_frame_encoder(6, 0.5, np.random.default_rng(1))
    >>> np.allclose(B @ B.T, np.eye(3))
    True
    >>> tight_frame_encoder(6, 0.4, np.random.default_rng(1))
    Traceback (most recent call last):
    ...
    ValueError: r·d must be a positive integer number of hidden units, got r = 0.4, ...
    """
    d, n = _hidden_units(d, r)
    rng = _check_rng(rng)
    tall = max(n, d), min(n, d)
    check_cost(f"tight frame of n = {n} rows in d = {d}", nbytes=8.0 * 3 * n * d,
               seconds=SECONDS_PER_FLOP * 4.0 * tall[0] * tall[1] ** 2)
    Q, R = np.linalg.qr(rng.standard_normal(tall))
    Q = Q * np.sign(np.diag(R))[None, :]          # Haar measure on the Stiefel manifold
    return Q.T if n <= d else _unit_rows(Q)


@dataclass(frozen=True)
class FrameStructure:
    """Geometry of the encoder rows ``b̂_i`` (unit-normalised).

    Attributes
    ----------
    frame_eigenvalues : ndarray, shape (d,)
        Eigenvalues of the frame operator ``B̂ᵀB̂`` in decreasing order (they sum to n;
        the nonzero ones are those of the Gram matrix ``M = B̂B̂ᵀ``).
    tightness_error : float
        ``max_j |μ_j − n/d| / (n/d)``; zero for a tight frame.
    coherence : float
        ``max_{i≠j} |M_ij|``.
    rms_overlap : float
        Root mean square of the off-diagonal ``M_ij``.
    welch_bound : float
        ``√((n − d)₊ / (d (n − 1)))``: the smallest possible rms overlap, reached by
        tight frames only.
    """

    frame_eigenvalues: np.ndarray
    tightness_error: float
    coherence: float
    rms_overlap: float
    welch_bound: float


def frame_structure(B) -> FrameStructure:
    """Spectrum, tightness and coherence of an encoder's normalised rows.

    Parameters
    ----------
    B : array_like, shape (n, d)

    Returns
    -------
    FrameStructure

    Examples
    --------
    >>> stacked = np.vstack([np.eye(3), np.eye(3)])       # tight, but coherent
    >>> s = frame_structure(stacked)
    >>> s.frame_eigenvalues, s.tightness_error, s.coherence
    (array([2., 2., 2.]), 0.0, 1.0)
    """
    B_unit = _unit_rows(_check_encoder(B))
    n, d = B_unit.shape
    M = B_unit @ B_unit.T
    if n <= d:
        spectrum = np.concatenate([np.linalg.eigvalsh(M), np.zeros(d - n)])
    else:
        spectrum = np.linalg.eigvalsh(B_unit.T @ B_unit)
    spectrum = np.sort(np.clip(spectrum, 0, None))[::-1]
    off = M[~np.eye(n, dtype=bool)]
    return FrameStructure(
        frame_eigenvalues=spectrum,
        tightness_error=float(np.max(np.abs(spectrum - n / d)) / (n / d)),
        coherence=float(np.max(np.abs(off))) if n > 1 else 0.0,
        rms_overlap=float(np.sqrt(np.mean(off**2))) if n > 1 else 0.0,
        welch_bound=float(np.sqrt(max(n - d, 0) / (d * (n - 1)))) if n > 1 else 0.0,
    )


def waterfilling_allocation(eigenvalues, n) -> np.ndarray:
    """Spectrum of the optimal frame operator for anisotropic data (project's derivation).

    Heuristic limit, not taken from the paper: if the normalised rows form an
    incoherent frame (``arcsin(M) ≈ M + cI``, ``c = π/2 − 1``) whose frame operator
    shares the eigenvectors of ``Σ`` with eigenvalues ``μ_j``, the risk is
    ``(1/d) Σ_j c λ_j / (c + μ_j)``.  Minimising it under ``Σ_j μ_j = n`` and
    ``rank ≤ n`` (at most ``n`` nonzero ``μ_j``, on the top eigen-directions) gives
    ``μ_j = (s √λ_j − c)₊`` with ``s`` fixed by the budget.  The incoherence it
    assumes needs ``max_j μ_j ≪ n`` (rows share a component of mean square ``μ_j/n``
    along eigen-direction ``j``); gradient descent matches it to ~0.002 at d = 120
    for smooth or mildly spiked spectra, but not for a dominant direction (8×8
    photograph patches: ``max μ_j/n ≈ 0.5–0.8``).

    Parameters
    ----------
    eigenvalues : array_like, shape (d,)
        Covariance spectrum (any order; non-negative).
    n : int
        Number of hidden units.

    Returns
    -------
    ndarray, shape (d,)
        ``μ_j`` in the order of ``eigenvalues``; sums to ``n``.

    Examples
    --------
    >>> waterfilling_allocation([1.0, 1.0, 1.0, 1.0], 2)     # r ≤ 1: n orthonormal units
    array([1., 1., 0., 0.])
    >>> waterfilling_allocation([4.0, 1.0], 4).round(4)
    array([2.8569, 1.1431])
    """
    n = _check_positive("n", n, integer=True)
    lam = _check_spectrum(eigenvalues)
    order = np.argsort(-lam, kind="stable")
    root = np.sqrt(lam[order][:min(n, lam.size)])
    root = root[root > 0]
    k = np.arange(1, root.size + 1)
    level = (n + k * ARCSINE_EXCESS) / np.cumsum(root)          # s for the top k active
    next_root = np.append(root[1:], 0.0)
    active = np.flatnonzero((level * root > ARCSINE_EXCESS)
                            & (level * next_root <= ARCSINE_EXCESS))[0] + 1
    mu_sorted = np.zeros(lam.size)
    mu_sorted[:active] = level[active - 1] * root[:active] - ARCSINE_EXCESS
    mu = np.empty(lam.size)
    mu[order] = mu_sorted
    return mu


def waterfilling_risk(eigenvalues, n) -> float:
    """Predicted smallest sign-autoencoder risk for ``N(0, Σ)`` (project's derivation).

    ``(1/d) Σ_j c λ_j / (c + μ_j)`` with ``μ`` from :func:`waterfilling_allocation`;
    equals :func:`sign_risk_lower_bound` for an isotropic spectrum.

    Parameters
    ----------
    eigenvalues : array_like, shape (d,)
    n : int

    Returns
    -------
    float

    Examples
    --------
    >>> from odesolve.limits import sign_risk_lower_bound
    >>> round(waterfilling_risk(np.ones(100), 200), 6), round(float(sign_risk_lower_bound(2)), 6)
    (0.222031, 0.222031)
    """
    lam = _check_spectrum(eigenvalues)
    mu = waterfilling_allocation(lam, n)
    return float(np.sum(ARCSINE_EXCESS * lam / (ARCSINE_EXCESS + mu)) / lam.size)
