"""Population risks, optimal decoders, and the bounds they are compared with (sign lower bound, PCA, Shannon)."""
from __future__ import annotations


import numpy as np
import scipy.linalg

from ._common import (ARCSINE_EXCESS, _check_covariance, _check_encoder,
                      _check_matrix, _check_rate, _trace, _whole_units)
from .kernels import _kernel_factors

# --------------------------------------------------------------------------- risks
def _solve_psd(K: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``K⁺ rhs`` for a symmetric PSD ``K``: Cholesky, or an eigen pseudo-inverse if singular."""
    try:
        factor = scipy.linalg.cho_factor(K, lower=True, check_finite=False)
        pivots = np.diag(factor[0]) ** 2
        if pivots.min() > 1e-10 * pivots.max():
            return scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    eigenvalues, vectors = np.linalg.eigh(K)
    cutoff = eigenvalues.max() * K.shape[0] * np.finfo(float).eps * 10
    inverse = np.divide(1.0, eigenvalues, out=np.zeros_like(eigenvalues),
                        where=eigenvalues > cutoff)
    return vectors @ (inverse[:, None] * (vectors.T @ rhs))


def population_risk(A, B, activation="sign", covariance=None) -> float:
    """Population risk ``E‖x − A σ(Bx)‖² / d`` for ``x ~ N(0, Σ)``, in closed form.

    Parameters
    ----------
    A : array_like, shape (d, n)
        Decoder.
    B : array_like, shape (n, d)
        Encoder.
    activation, covariance
        As in :func:`activation_kernels`.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        As :func:`optimal_risk`, or where the risk itself overflows.

    Examples
    --------
    >>> round(population_risk(np.sqrt(2 / np.pi) * np.eye(2), np.eye(2)), 6)   # 1 − 2/π
    0.36338
    >>> population_risk(np.zeros((3, 1)), np.ones((1, 3)))
    1.0
    """
    B = _check_encoder(B)
    n, d = B.shape
    A = _check_matrix("decoder A", A, (d, n))
    cov = _check_covariance(covariance, d)
    # K = κ f fᵀ ∘ K̃, H = η H̃ diag(f): the decoder meets the features' scale f first
    # (an optimal decoder of rows 1e-200 is 1e200, its features 1e-200)
    K, H, f, kappa, eta, scale, unit_cov = _kernel_factors(B, activation, cov)
    with np.errstate(over="ignore", invalid="ignore"):
        Af = A * f[None, :]
        risk = scale * ((_trace(unit_cov, d) - 2 * (eta / scale) * np.sum(Af * H)
                         + (kappa / scale) * np.sum((Af @ K) * Af)) / d)
    if not np.isfinite(risk):
        raise ValueError("the risk overflows at the scale of this decoder, encoder and "
                         "covariance")
    return float(risk)


def optimal_decoder(B, activation="sign", covariance=None) -> np.ndarray:
    """Best decoder ``A* = H K⁺`` for a given encoder (pseudo-inverse if ``K`` is singular).

    Parameters
    ----------
    B : array_like, shape (n, d)
    activation, covariance
        As in :func:`activation_kernels`.

    Returns
    -------
    ndarray, shape (d, n)

    Examples
    --------
    >>> optimal_decoder(np.eye(2)).round(4)          # √(2/π) I for orthonormal rows
    array([[0.7979, 0.    ],
           [0.    , 0.7979]])
    >>> float(optimal_decoder(1e-200 * np.eye(2), "linear")[0, 0])   # the kernels underflow
    1e+200

    Raises
    ------
    ValueError
        As :func:`optimal_risk`, or where the decoder itself is beyond the range of
        floating point (rows or covariance at scales of 1e±300).
    """
    B = _check_encoder(B)
    cov = _check_covariance(covariance, B.shape[1])
    # A* = H K⁺ = (η/κ) H̃ K̃⁺ diag(1/f) (kernels.py: _kernel_factors)
    K, H, f, kappa, eta, _, _ = _kernel_factors(B, activation, cov)
    unit = _solve_psd(K, H.T).T
    # a feature that is identically zero (a zero row, a row in Σ's null space, a dead unit
    # of a user-supplied activation) gets a zero column, as from the pseudo-inverse; one
    # whose scale f underflowed is not representable
    null = np.diag(K) == 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        decoder = (eta / kappa) * unit / np.where(null, 1.0, f)[None, :]
    if not np.all(np.isfinite(decoder)):
        raise ValueError("the optimal decoder is beyond the range of floating point at the "
                         "scale of this encoder and covariance")
    return decoder


def optimal_risk(B, activation="sign", covariance=None) -> float:
    """Risk of ``(A*, B)`` with the optimal decoder: ``(tr Σ − tr(H K⁺ Hᵀ)) / d``.

    Parameters
    ----------
    B : array_like, shape (n, d)
    activation, covariance
        As in :func:`activation_kernels`.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Bad shapes, a non-PSD covariance, an unknown activation, (sign) a unit of zero
        variance; for a user-supplied activation (kernels.py, ``_quadrature_factors``):
        pre-activations whose standard deviation is not a normal floating-point number
        (below ~1e-308, or above ~1e307), an activation that overflows or returns
        non-finite values at them (x³ at 1e120), one whose values there are lost to
        underflow (x³ at 1e-200; a unit that is exactly zero without underflow, relu(x − 1)
        at 1e-200, is a dead unit instead), a quadrature kernel that is not positive
        semi-definite (many units on few inputs: the product rules' errors exceed its
        small eigenvalues), and a callable that raises or returns a wrong shape, complex
        or non-numeric values.

    Notes
    -----
    The scales of ``B``'s rows and of ``Σ`` are factored out first, so that any
    representable scale, and rows of very different scales, give the right number (the
    kernels themselves under- or overflow at 1e±154, and rows of scales 1e-5 and 1e5 made
    K too ill-conditioned for the pseudo-inverse; kernels.py, ``_kernel_factors``):
    ``risk(B, sΣ') = s·risk(√s B, Σ')`` for every activation (x = √s x'), and the optimal
    decoder absorbs any rescaling of a feature, so for the positively homogeneous
    ``sign``, ``relu`` and ``linear`` the rows of B can be normalised; for ``erf`` the
    feature ``erf(a λ'/√2)`` is divided by ``u = a/√(1 + a² v')``, which leaves
    ``K̃ = (2/π) C' arcsin(z)/z`` with ``z = u_k u_l C'_kl`` (derived here).  A
    user-supplied activation ``g`` must be evaluated at the true pre-activations
    ``σ_i t`` (quadrature nodes ``t``), so it takes any scale at which those are
    representable: each feature is divided by its largest value at the nodes before
    anything is squared (tanh at rows of 1e-200 is the linear risk, at 1e200 the
    quadrature of sign).

    Examples
    --------
    >>> round(optimal_risk(np.eye(4)[:2]), 6)      # orthonormal rows, r = 1/2: 1 − 1/π
    0.68169
    >>> round(optimal_risk(np.eye(4)[:2], "linear"), 6)   # PCA: 1 − r
    0.5
    >>> round(optimal_risk(1e-200 * np.eye(4)[:2], "erf"), 6)   # erf's linear regime
    0.5
    >>> round(optimal_risk(1e-200 * np.eye(4)[:2], np.tanh), 6)   # so is tanh's
    0.5
    """
    B = _check_encoder(B)
    d = B.shape[1]
    cov = _check_covariance(covariance, d)
    K, H, _, _, _, scale, unit_cov = _kernel_factors(B, activation, cov)
    explained = np.sum(H.T * _solve_psd(K, H.T))
    # ≥ 0 (it is a mean square); −1e-16 relative is the rounding of the difference
    return float(scale * max(_trace(unit_cov, d) - explained, 0.0) / d)

# --------------------------------------------------------------------------- limits
def sign_risk_lower_bound(r):
    """Smallest risk of a sign autoencoder on ``N(0, I_d)`` at rate ``r = n/d``.

    ``1 − 2r/π`` for ``r ≤ 1`` and ``c/(r + c)`` with ``c = π/2 − 1`` for ``r > 1``.

    Parameters
    ----------
    r : float or array_like
        Rate(s), positive.

    Returns
    -------
    float or ndarray
        Same shape as ``r``.

    Examples
    --------
    >>> sign_risk_lower_bound([0.25, 0.5, 1.0, 2.0]).round(6)
    array([0.840845, 0.68169 , 0.36338 , 0.222031])
    """
    rate = _check_rate(r)
    bound = np.where(rate <= 1, 1 - 2 * rate / np.pi,
                     ARCSINE_EXCESS / (rate + ARCSINE_EXCESS))
    return bound[()] if bound.ndim == 0 else bound


def _check_spectrum(eigenvalues) -> np.ndarray:
    """Non-negative covariance eigenvalues (round-off negatives clipped), order kept."""
    lam = np.asarray(eigenvalues, dtype=float)
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) \
            or np.any(lam < -1e-12 * max(1.0, float(np.max(np.abs(lam))))) \
            or not np.any(lam > 0):
        raise ValueError("eigenvalues must be a 1-D array of non-negative numbers, "
                         "not all zero")
    return np.clip(lam, 0, None)


def pca_risk(r, eigenvalues=None):
    """Risk of PCA (best linear autoencoder) with ``n = r·d`` real-valued hidden units.

    Not the same bit budget as a sign autoencoder: each unit is a real number.

    Parameters
    ----------
    r : float or array_like
        Rate(s) ``n/d``; with ``eigenvalues``, ``n = r·d`` must be a whole number of units
        (as in :func:`tight_frame_encoder`).
    eigenvalues : array_like, optional
        Covariance spectrum (``d`` values); isotropic by default, where the risk is
        ``max(1 − r, 0)``.

    Returns
    -------
    float or ndarray
        ``(1/d) Σ_{j > n} λ_j`` (eigenvalues in decreasing order).

    Examples
    --------
    >>> pca_risk([0.5, 2.0])
    array([0.5, 0. ])
    >>> float(pca_risk(0.5, eigenvalues=[4.0, 2.0, 1.0, 1.0]))
    0.5

    Raises
    ------
    ValueError
        For rates that are not positive and finite, a bad spectrum, or (with
        ``eigenvalues``) a rate whose ``r·d`` is not a positive whole number of units.
    """
    rate = _check_rate(r)
    if eigenvalues is None:
        risk = np.clip(1 - rate, 0, None)
    else:
        lam = np.sort(_check_spectrum(eigenvalues))[::-1]
        tail = np.concatenate([np.cumsum(lam[::-1])[::-1], [0.0]])
        n = np.minimum(_whole_units(rate, lam.size), lam.size)
        risk = tail[n] / lam.size
    return risk[()] if risk.ndim == 0 else risk


def rate_distortion(r, eigenvalues=None):
    """Shannon distortion–rate function of a Gaussian source at ``r`` bits per coordinate.

    Isotropic unit-variance source: ``D(r) = 2^(−2r)``.  With a spectrum, reverse
    water-filling at ``r·d`` bits in total: ``D = (1/d) Σ_j min(θ, λ_j)`` with
    ``Σ_j max(0, ½ log₂(λ_j/θ)) = r·d``.  One sign unit carries at most one bit, so
    a sign autoencoder at rate ``r`` can never go below this curve.

    Parameters
    ----------
    r : float or array_like
        Bits per input coordinate.
    eigenvalues : array_like, optional
        Covariance spectrum; isotropic unit variance by default.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> rate_distortion([0.5, 1.0])
    array([0.5 , 0.25])
    >>> round(float(rate_distortion(1.0, eigenvalues=[1.0, 1.0])), 12)
    0.25
    """
    rate = _check_rate(r)
    if eigenvalues is None:
        distortion = 2.0 ** (-2 * rate)
    else:
        lam = np.sort(_check_spectrum(eigenvalues))[::-1]
        positive = lam[lam > 0]
        distortion = np.array([_reverse_waterfilling(positive, bits * lam.size)
                               for bits in rate.ravel()]).reshape(rate.shape) / lam.size
    return distortion[()] if distortion.ndim == 0 else distortion


def _reverse_waterfilling(lam: np.ndarray, total_bits: float) -> float:
    """``Σ_j min(θ, λ_j)`` for positive ``λ`` (decreasing) at ``total_bits`` bits."""
    log_lam = np.log2(lam)
    k = np.arange(1, lam.size + 1)
    # with the top k modes described: k·log₂θ = Σ_{j<k} log₂λ_j − 2·bits
    log_theta = (np.cumsum(log_lam) - 2 * total_bits) / k
    consistent = log_theta >= np.append(log_lam[1:], -np.inf)   # θ ≥ λ_k (next mode)
    active = int(np.argmax(consistent)) + 1
    return float(active * 2.0 ** log_theta[active - 1] + np.sum(lam[active:]))
