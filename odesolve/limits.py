"""Fundamental limits of two-layer autoencoders in the proportional regime.

A two-layer autoencoder reconstructs ``x ∈ R^d`` as ``x̂ = A σ(B x)`` with an encoder
``B ∈ R^{n×d}`` and a decoder ``A ∈ R^{d×n}``; the rate is ``r = n/d``.  For Gaussian
inputs ``x ~ N(0, Σ)`` the population risk per input coordinate

    R(A, B) = E‖x − A σ(Bx)‖² / d = (tr Σ − 2 tr(A Hᵀ) + tr(A K Aᵀ)) / d,

with ``K = E[σ(Bx) σ(Bx)ᵀ]`` and ``H = E[x σ(Bx)ᵀ]``, is a closed-form function of
``(A, B)``: the pre-activations ``λ = Bx`` are Gaussian with covariance ``C = B Σ Bᵀ``
and Stein's lemma gives ``H = Σ Bᵀ diag(E[λ_i σ(λ_i)] / C_ii)``.  For ``σ = sign``

    K = (2/π) arcsin(B̃ Σ B̃ᵀ),   H = √(2/π) Σ B̃ᵀ,

where ``B̃`` has rows scaled to unit variance ``b̃_iᵀ Σ b̃_i = 1`` (entrywise arcsine).
The best decoder is ``A* = H K⁺`` and the sign autoencoder can never beat

    R ≥ 1 − 2r/π  (r ≤ 1),      R ≥ (π/2 − 1) / (r + π/2 − 1)  (r > 1)

for isotropic data (:func:`sign_risk_lower_bound`), reached by orthonormal rows
(``r ≤ 1``) and, as ``d → ∞``, by incoherent unit-norm tight frames (``r > 1``,
:func:`tight_frame_encoder`).  See ``docs/limits.md`` for the derivations and the
measured numbers.

>>> rng = np.random.default_rng(0)
>>> B = tight_frame_encoder(d=200, r=0.5, rng=rng)
>>> round(optimal_risk(B), 6), round(float(sign_risk_lower_bound(0.5)), 6)
(0.68169, 0.68169)
"""
from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg
from tqdm import tqdm

__all__ = [
    "ARCSINE_EXCESS",
    "NAMED_ACTIVATIONS",
    "activation_kernels",
    "sign_kernel",
    "population_risk",
    "optimal_decoder",
    "optimal_risk",
    "sign_risk_lower_bound",
    "pca_risk",
    "rate_distortion",
    "tight_frame_encoder",
    "FrameStructure",
    "frame_structure",
    "waterfilling_allocation",
    "waterfilling_risk",
    "TrainingResult",
    "train_population_gd",
    "SGD_METHODS",
    "train_sgd",
    "RateComparison",
    "compare_isotropic",
    "IMAGE_DATASETS",
    "compare_image_data",
]

#: ``c = π/2 − 1``: diagonal of ``arcsin(M) − M`` for a unit-diagonal ``M``, the variance
#: of the part of ``sign(λ)`` that is not linear in ``λ`` (in units of ``2/π``).
ARCSINE_EXCESS = np.pi / 2 - 1

#: Activations with closed-form Gaussian kernels (``"erf"`` means ``erf(x/√2)``).
NAMED_ACTIVATIONS = ("sign", "erf", "relu", "linear")

#: Sample-based encoder gradients offered by :func:`train_sgd`.
SGD_METHODS = ("kernel", "tanh", "straight_through")

#: Gauss–Hermite nodes per dimension for user-supplied activations.
_QUADRATURE_ORDER = 48
#: Largest number of (pair, node, node) evaluations held in memory at once.
_QUADRATURE_CHUNK = 2_000_000
#: Off-diagonal overlaps are clipped to ±(1 − this) where arcsin' is evaluated.
_OVERLAP_CLIP = 1e-12


# --------------------------------------------------------------------------- validation
def _check_rate(r) -> np.ndarray:
    rate = np.asarray(r, dtype=float)
    if not np.all(np.isfinite(rate)) or np.any(rate <= 0):
        raise ValueError(f"the rate r = n/d must be positive and finite, got {r!r}")
    return rate


def _check_dimension(d) -> int:
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"the input dimension d must be a positive integer, got {d!r}")
    return int(d)


def _hidden_units(d, r) -> tuple[int, int]:
    """Validate ``(d, r)`` and return ``(d, n)`` with ``n = r·d`` an integer."""
    d = _check_dimension(d)
    rate = float(_check_rate(r))
    n = int(round(rate * d))
    if n < 1 or abs(rate * d - n) > 1e-9 * max(1.0, rate * d):
        raise ValueError(f"r·d must be a positive integer number of hidden units, got "
                         f"r = {rate:g}, d = {d} (r·d = {rate * d:g})")
    return d, n


def _check_matrix(name: str, X, shape: tuple | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {X.shape}")
    if shape is not None and X.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return X


def _check_covariance(covariance, d: int) -> np.ndarray | None:
    """``None`` (identity) or a symmetric positive semi-definite ``d×d`` array."""
    if covariance is None:
        return None
    cov = _check_matrix("covariance", covariance, (d, d))
    scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
    if not np.allclose(cov, cov.T, rtol=0, atol=1e-10 * scale):
        raise ValueError("covariance must be symmetric")
    smallest = float(np.linalg.eigvalsh(cov)[0])
    if smallest < -1e-10 * scale:
        raise ValueError(f"covariance is not positive semi-definite "
                         f"(smallest eigenvalue {smallest:.3g})")
    return 0.5 * (cov + cov.T)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator "
                         f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _check_positive(name: str, value, integer: bool = False):
    bad_type = isinstance(value, bool) or (integer and not isinstance(value, numbers.Integral))
    if bad_type or not np.isfinite(value) or value <= 0:
        kind = "positive integer" if integer else "positive number"
        raise ValueError(f"{name} must be a {kind}, got {value!r}")
    return int(value) if integer else float(value)


# --------------------------------------------------------------------------- covariance
class _RightProduct:
    """``Y ↦ Y G`` for a symmetric ``G``, without forming ``G`` when it is a sample moment.

    ``G`` is the identity (``matrix is None``), an explicit matrix, or the second-moment
    matrix ``XᵀX/m`` of samples ``X`` (then ``Y G = (Y Xᵀ) X / m``).
    """

    def __init__(self, matrix: np.ndarray | None = None, samples: np.ndarray | None = None):
        self.matrix, self.samples = matrix, samples

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        if self.samples is not None:
            return (Y @ self.samples.T) @ self.samples / self.samples.shape[0]
        return Y if self.matrix is None else Y @ self.matrix


def _trace(cov: np.ndarray | None, d: int) -> float:
    return float(d) if cov is None else float(np.trace(cov))


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
        import sympy

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

    Examples
    --------
    >>> round(population_risk(np.sqrt(2 / np.pi) * np.eye(2), np.eye(2)), 6)   # 1 − 2/π
    0.36338
    >>> population_risk(np.zeros((3, 1)), np.ones((1, 3)))
    1.0
    """
    B = _check_matrix("encoder B", B)
    n, d = B.shape
    A = _check_matrix("decoder A", A, (d, n))
    cov = _check_covariance(covariance, d)
    K, H = activation_kernels(B, activation, cov)
    total = (_trace(cov, d) - 2 * np.sum(A * H) + np.sum((A @ K) * A))
    return float(total / d)


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
    """
    K, H = activation_kernels(B, activation, covariance)
    return _solve_psd(K, H.T).T


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

    Examples
    --------
    >>> round(optimal_risk(np.eye(4)[:2]), 6)      # orthonormal rows, r = 1/2: 1 − 1/π
    0.68169
    >>> round(optimal_risk(np.eye(4)[:2], "linear"), 6)   # PCA: 1 − r
    0.5
    """
    B = _check_matrix("encoder B", B)
    d = B.shape[1]
    cov = _check_covariance(covariance, d)
    K, H = activation_kernels(B, activation, cov)
    explained = np.sum(H.T * _solve_psd(K, H.T))
    return float((_trace(cov, d) - explained) / d)


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
        Rate(s) ``n/d``; ``n`` is rounded to the nearest integer when ``eigenvalues``
        is given.
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
    """
    rate = _check_rate(r)
    if eigenvalues is None:
        risk = np.clip(1 - rate, 0, None)
    else:
        lam = np.sort(_check_spectrum(eigenvalues))[::-1]
        tail = np.concatenate([np.cumsum(lam[::-1])[::-1], [0.0]])
        n = np.clip(np.rint(rate * lam.size).astype(int), 0, lam.size)
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
    B_unit = _unit_rows(_check_matrix("encoder B", B))
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
    >>> round(waterfilling_risk(np.ones(100), 200), 6), round(float(sign_risk_lower_bound(2)), 6)
    (0.222031, 0.222031)
    """
    lam = _check_spectrum(eigenvalues)
    mu = waterfilling_allocation(lam, n)
    return float(np.sum(ARCSINE_EXCESS * lam / (ARCSINE_EXCESS + mu)) / lam.size)


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainingResult:
    """Outcome of :func:`train_population_gd` or :func:`train_sgd`.

    Attributes
    ----------
    encoder : ndarray, shape (n, d)
        Learnt encoder, unit-norm rows.
    decoder : ndarray, shape (d, n)
        Learnt (or optimal) decoder.
    risk : float
        Closed-form sign risk of ``(decoder, encoder)``.
    optimal_decoder_risk : float
        Closed-form risk of the encoder with its optimal decoder.
    limit : float
        Theoretical limit for the setting: :func:`sign_risk_lower_bound` for isotropic
        data, the water-filling prediction :func:`waterfilling_risk` otherwise.
    history_steps : ndarray
        Steps at which ``risk_history`` was recorded.
    risk_history : ndarray
        At ``history_steps``: for :func:`train_population_gd` the risk it descends
        (optimal decoder, or the current decoder with ``decoder="joint"``); for
        :func:`train_sgd` the optimal-decoder risk of the current encoder.
    method : str
        What was run.
    """

    encoder: np.ndarray
    decoder: np.ndarray
    risk: float
    optimal_decoder_risk: float
    limit: float
    history_steps: np.ndarray
    risk_history: np.ndarray
    method: str

    @property
    def gap(self) -> float:
        """``optimal_decoder_risk − limit``."""
        return self.optimal_decoder_risk - self.limit


def _sign_risk_and_gradients(B_unit: np.ndarray, covariance: _RightProduct, trace: float,
                             decoder: np.ndarray | None):
    """Total risk ``d·R`` of unit-norm encoder rows and its gradients.

    With ``B̃`` the rows scaled to unit variance ``b̃ᵀΣb̃ = 1``, ``M = B̃ΣB̃ᵀ``,
    ``S = arcsin(M)`` and ``P = B̃Σ``, the risk of the optimal decoder is
    ``tr Σ − tr(S⁻¹PPᵀ)`` and that of a decoder ``A`` is
    ``tr Σ − 2√(2/π) tr(AP) + (2/π) tr(AᵀA S)``.

    Returns ``(total_risk, encoder_gradient, second)``: the encoder gradient is
    projected on the tangent space of the unit spheres; ``second`` is the optimal
    decoder (``decoder=None``) or the gradient with respect to ``decoder``.
    """
    P = covariance(B_unit)                                  # rows Σ b̂_i
    scale = 1 / np.sqrt(np.sum(P * B_unit, axis=1))
    B_var, P_var = B_unit * scale[:, None], P * scale[:, None]
    M = P_var @ B_var.T
    M = np.clip(0.5 * (M + M.T), -1, 1)
    np.fill_diagonal(M, 1.0)
    S = np.arcsin(M)
    slope = 1 / np.sqrt(1 - np.minimum(M**2, 1 - _OVERLAP_CLIP))   # arcsin' off-diagonal
    np.fill_diagonal(slope, 0.0)
    if decoder is None:
        X = _solve_psd(S, P_var)                            # S⁻¹ P
        total = trace - np.sum(P_var * X)
        grad = -2 * covariance(X) + 2 * (slope * (X @ X.T)) @ P_var
        second = np.sqrt(np.pi / 2) * X.T                   # A* = H K⁻¹
    else:
        H = np.sqrt(2 / np.pi) * P_var.T
        AK = decoder @ ((2 / np.pi) * S)
        total = trace - 2 * np.sum(decoder * H) + np.sum(AK * decoder)
        grad = (-2 * np.sqrt(2 / np.pi) * covariance(decoder.T)
                + (4 / np.pi) * (slope * (decoder.T @ decoder)) @ P_var)
        second = 2 * (AK - H)
    # chain rule through b̃ = b/√(bᵀΣb), then projection on the sphere's tangent space
    grad = (grad - P_var * np.sum(grad * B_var, axis=1)[:, None]) * scale[:, None]
    grad -= B_unit * np.sum(grad * B_unit, axis=1)[:, None]
    return total, grad, second


def _limit(d: int, n: int, cov: np.ndarray | None) -> float:
    if cov is None:
        return float(sign_risk_lower_bound(n / d))
    return waterfilling_risk(np.linalg.eigvalsh(cov), n)


def _initial_encoder(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return _unit_rows(rng.standard_normal((n, d)))


def _progress(iterable, description: str):
    return tqdm(iterable, desc=description, disable=not sys.stderr.isatty(), leave=False)


def train_population_gd(d, r, steps, lr, rng, covariance=None, decoder="optimal",
                        initial_encoder=None) -> TrainingResult:
    """Projected gradient descent on the closed-form population risk (sign activation).

    Each step moves the unit-norm encoder rows along minus the gradient of the total
    risk ``d·R`` (projected on the tangent space of the spheres) and renormalises
    them.  ``decoder="optimal"`` eliminates the decoder (``A = A*(B)`` at every step,
    i.e. gradient descent on ``min_A R(A, B)``); ``decoder="joint"`` also runs gradient
    descent on ``A`` from ``A = 0`` with the same step size.

    Parameters
    ----------
    d : int
        Input dimension.
    r : float
        Rate; ``n = r·d`` must be an integer.
    steps : int
        Number of gradient steps.
    lr : float
        Step size.  Isotropic data, optimal decoder: 0.1–2 are stable at r = 2 (4
        oscillates); joint decoder: 0.1 (0.5 diverges at r = 2).  The curvature
        grows like the largest eigenvalue of Σ: scale ``lr`` down accordingly.
    rng : numpy.random.Generator
        Draws the initial encoder (i.i.d. Gaussian rows, normalised).
    covariance : array_like, shape (d, d), optional
        Input covariance ``Σ``; identity by default.
    decoder : {"optimal", "joint"}
    initial_encoder : array_like, shape (n, d), optional
        Starting encoder instead of a random one.

    Returns
    -------
    TrainingResult
        ``risk_history`` holds the risk before each step and after the last one.

    Raises
    ------
    odesolve.errors.DivergenceError
        If the weights become NaN or infinite.

    Examples
    --------
    >>> res = train_population_gd(40, 0.5, steps=200, lr=0.2, rng=np.random.default_rng(0))
    >>> bool(res.risk_history[0] - res.limit > 0.02), bool(abs(res.gap) < 1e-6)
    (True, True)
    """
    from .errors import DivergenceError

    d, n = _hidden_units(d, r)
    steps = _check_positive("steps", steps, integer=True)
    lr = _check_positive("lr", lr)
    rng = _check_rng(rng)
    if decoder not in ("optimal", "joint"):
        raise ValueError(f"decoder must be 'optimal' or 'joint', got {decoder!r}")
    cov_matrix = _check_covariance(covariance, d)
    covariance_product = _RightProduct(cov_matrix)
    if initial_encoder is None:
        B = _initial_encoder(n, d, rng)
    else:
        B = _unit_rows(_check_matrix("initial_encoder", initial_encoder, (n, d)))
    A = None if decoder == "optimal" else np.zeros((d, n))
    trace = _trace(cov_matrix, d)
    history = np.empty(steps + 1)
    for step in _progress(range(steps + 1), f"population GD (d={d}, r={r:g})"):
        with np.errstate(all="ignore"):         # a blow-up is detected just below
            total, grad_B, second = _sign_risk_and_gradients(B, covariance_product, trace, A)
            B_next = _unit_rows(B - lr * grad_B)
            A_next = None if A is None else A - lr * second
        if not (np.isfinite(total) and np.all(np.isfinite(B_next))
                and (A is None or np.all(np.isfinite(A_next)))):
            raise DivergenceError("population gradient descent", time=step, lr=lr,
                                  detail=f"the risk or the weights are not finite at "
                                         f"step {step}")
        history[step] = total / d
        if step == steps:
            break
        B, A = B_next, A_next
    final_decoder = second if A is None else A
    return TrainingResult(
        encoder=B, decoder=final_decoder,
        risk=population_risk(final_decoder, B, "sign", cov_matrix),
        optimal_decoder_risk=optimal_risk(B, "sign", cov_matrix),
        limit=_limit(d, n, cov_matrix), history_steps=np.arange(steps + 1),
        risk_history=history, method=f"population gradient descent, decoder={decoder}")


def _covariance_root(cov: np.ndarray | None) -> np.ndarray | None:
    """Symmetric square root of a PSD covariance (``None`` for the identity)."""
    if cov is None:
        return None
    eigenvalues, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def _minibatch_gradients(B: np.ndarray, A: np.ndarray, X: np.ndarray, method: str,
                         beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Encoder (tangent to the spheres) and decoder gradients of the mean loss on ``X``."""
    scale = 2 / X.shape[0]
    if method == "kernel":
        _, grad_B, _ = _sign_risk_and_gradients(B, _RightProduct(samples=X), 0.0, A)
        codes = np.sign(X @ B.T)
        return grad_B, scale * (codes @ A.T - X).T @ codes
    pre = X @ B.T
    if method == "tanh":
        codes = np.tanh(beta * pre)
        slope = beta * (1 - codes**2)
    else:                                                   # straight-through
        codes, slope = np.sign(pre), (np.abs(pre) <= 1).astype(float)
    residual = codes @ A.T - X
    grad_B = (scale * (residual @ A) * slope).T @ X
    grad_B -= B * np.sum(grad_B * B, axis=1)[:, None]
    return grad_B, scale * residual.T @ codes


def train_sgd(d, r, steps, lr, rng, method="kernel", batch_size=256, covariance=None,
              data=None, beta_range=(1.0, 30.0), record_every=None) -> TrainingResult:
    """Minibatch SGD for the sign autoencoder from samples, with an explicit encoder gradient.

    ``sign`` has zero derivative almost everywhere, so the per-sample gradient of
    ``‖x − A sign(Bx)‖²`` never moves the encoder.  The decoder always gets its exact
    minibatch gradient ``(2/b) Σ (A σ − x) σᵀ``; the encoder (unit-norm rows, projected
    steps and renormalisation as in :func:`train_population_gd`) gets, by ``method``:

    ``"kernel"``
        the gradient of the closed-form Gaussian risk (arcsine kernel) in which the
        input covariance is replaced by the minibatch second moment ``XᵀX/b`` — a
        sample estimate of the population gradient;
    ``"tanh"``
        the exact gradient of the surrogate ``tanh(β λ)``, forward and backward, with
        ``β`` annealed geometrically over ``beta_range``;
    ``"straight_through"``
        forward ``sign(λ)``, backward ``d sign/dλ := 1{|λ| ≤ 1}`` (hard-tanh
        straight-through estimator).

    Parameters
    ----------
    d : int
        Input dimension.
    r : float
        Rate; ``n = r·d`` must be an integer.
    steps : int
        Number of SGD steps.
    lr : float
        Step size, shared by encoder and decoder (gradients of the total loss
        ``‖x − x̂‖²``, not divided by ``d``).
    rng : numpy.random.Generator
        Initial encoder (normalised Gaussian rows; decoder starts at zero) and samples.
    method : {"kernel", "tanh", "straight_through"}
    batch_size : int
    covariance : array_like, shape (d, d), optional
        Gaussian inputs ``N(0, Σ)``; identity by default.
    data : array_like, shape (N, d), optional
        Train on these (centred) samples instead, drawn with replacement; the risks
        reported are then the closed-form Gaussian risks for ``Σ = XᵀX/N``.
    beta_range : tuple of float
        First and last ``β`` of the ``tanh`` surrogate.
    record_every : int, optional
        Record the optimal-decoder risk of the current encoder every so many steps
        (default: 50 records in all).

    Returns
    -------
    TrainingResult
        ``risk_history`` is the optimal-decoder risk of the encoder (what the encoder
        has learnt); ``risk`` uses the decoder trained by SGD (with ``sign``).

    Examples
    --------
    >>> res = train_sgd(20, 0.5, steps=300, lr=0.05, rng=np.random.default_rng(0))
    >>> bool(res.risk_history[0] - res.limit > 0.03 > res.gap)
    True
    """
    from .errors import DivergenceError

    d, n = _hidden_units(d, r)
    steps = _check_positive("steps", steps, integer=True)
    lr = _check_positive("lr", lr)
    batch_size = _check_positive("batch_size", batch_size, integer=True)
    rng = _check_rng(rng)
    if method not in SGD_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {SGD_METHODS}")
    beta_first, beta_last = (_check_positive("beta_range", b) for b in beta_range)
    record_every = (max(1, steps // 50) if record_every is None
                    else _check_positive("record_every", record_every, integer=True))
    if data is not None:
        if covariance is not None:
            raise ValueError("give either covariance (Gaussian inputs) or data, not both")
        samples = _check_matrix("data", data)
        if samples.shape[1] != d:
            raise ValueError(f"data must have d = {d} columns, got {samples.shape[1]}")
        cov_matrix, root = samples.T @ samples / samples.shape[0], None
    else:
        cov_matrix = _check_covariance(covariance, d)
        root = _covariance_root(cov_matrix)

    def minibatch() -> np.ndarray:
        if data is not None:
            return samples[rng.integers(0, samples.shape[0], batch_size)]
        z = rng.standard_normal((batch_size, d))
        return z if root is None else z @ root

    B, A = _initial_encoder(n, d, rng), np.zeros((d, n))
    betas = beta_first * (beta_last / beta_first) ** (np.arange(steps) / max(steps - 1, 1))
    recorded_steps, recorded = [], []
    for step in _progress(range(steps), f"SGD/{method} (d={d}, r={r:g})"):
        if step % record_every == 0:
            recorded_steps.append(step)
            recorded.append(optimal_risk(B, "sign", cov_matrix))
        with np.errstate(all="ignore"):         # a blow-up is detected just below
            grad_B, grad_A = _minibatch_gradients(B, A, minibatch(), method, betas[step])
            B_next, A_next = _unit_rows(B - lr * grad_B), A - lr * grad_A
        if not (np.all(np.isfinite(B_next)) and np.all(np.isfinite(A_next))):
            raise DivergenceError(f"SGD ({method})", time=(step + 1) * batch_size / d, lr=lr,
                                  step=step + 1, detail="non-finite weights")
        B, A = B_next, A_next
    recorded_steps.append(steps)
    recorded.append(optimal_risk(B, "sign", cov_matrix))
    return TrainingResult(
        encoder=B, decoder=A, risk=population_risk(A, B, "sign", cov_matrix),
        optimal_decoder_risk=recorded[-1], limit=_limit(d, n, cov_matrix),
        history_steps=np.array(recorded_steps), risk_history=np.array(recorded),
        method=f"SGD on samples, encoder gradient: {method}")


# --------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class RateComparison:
    """MSE against rate for the sign autoencoder and its references.

    Attributes
    ----------
    rates : ndarray
        Rates ``n/d`` of the theory curves.
    curves : dict of str to ndarray
        Theory curves on ``rates``, keyed by a plot label.
    trained_rates : ndarray
        Rates at which autoencoders were trained.
    trained : dict of str to ndarray
        Measured risks at ``trained_rates``, keyed by a plot label.
    title : str
        What the data are.
    """

    rates: np.ndarray
    curves: dict
    trained_rates: np.ndarray
    trained: dict
    title: str


#: Labels of the reference curves shared by both comparisons.
_PCA_LABEL = "PCA / linear AE, n real-valued units (not the same bit budget)"
_SHANNON_LABEL = "Shannon D(R), R = r bits per coordinate"


def _unit_counts(d: int, rates) -> np.ndarray:
    """Distinct hidden-unit counts ``n = round(r·d) ≥ 1`` for the given rates."""
    rate = _check_rate(np.atleast_1d(rates))
    return np.unique(np.maximum(1, np.rint(rate * d).astype(int)))


def compare_isotropic(rates, d, rng, trained_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
                      steps=300, lr=0.5) -> RateComparison:
    """Sign-autoencoder limit, trained sign autoencoders, PCA and Shannon for ``N(0, I_d)``.

    Parameters
    ----------
    rates : array_like
        Rates of the theory curves.
    d : int
        Input dimension of the trained autoencoders (``n = round(r·d)``).
    rng : numpy.random.Generator
    trained_rates : array_like
        Rates at which :func:`train_population_gd` (optimal decoder) is run.
    steps, lr
        Passed to :func:`train_population_gd`.

    Returns
    -------
    RateComparison

    Examples
    --------
    >>> cmp = compare_isotropic([0.5, 2.0], d=20, rng=np.random.default_rng(0),
    ...                         trained_rates=[0.5], steps=50)
    >>> list(cmp.curves)[0], cmp.curves["sign AE lower bound"].round(4)
    ('sign AE lower bound', array([0.6817, 0.222 ]))
    >>> bool(abs(cmp.trained["sign AE, population GD (d = 20)"][0] - 0.6817) < 1e-4)
    True
    """
    rate = _check_rate(np.atleast_1d(rates).astype(float))
    d = _check_dimension(d)
    counts = _unit_counts(d, trained_rates)
    risks = [train_population_gd(d, n / d, steps, lr, rng).optimal_decoder_risk
             for n in counts]
    return RateComparison(
        rates=rate,
        curves={"sign AE lower bound": sign_risk_lower_bound(rate),
                _PCA_LABEL: pca_risk(rate),
                _SHANNON_LABEL: rate_distortion(rate)},
        trained_rates=counts / d,
        trained={f"sign AE, population GD (d = {d})": np.array(risks)},
        title="isotropic Gaussian source N(0, I)")


#: Offline image data sets for :func:`compare_image_data`.
IMAGE_DATASETS = ("digits", "camera")


def _load_images(dataset: str) -> np.ndarray:
    """Raw samples, one image (or 8×8 patch) per row; bundled with the libraries."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data.astype(float)               # 1797 × 64
    if dataset == "camera":
        from skimage.data import camera

        image = camera().astype(float)                          # 512 × 512
        patches = image.reshape(64, 8, 64, 8).transpose(0, 2, 1, 3)
        return patches.reshape(-1, 64)                          # 4096 × 64
    raise ValueError(f"unknown dataset {dataset!r}: expected one of {IMAGE_DATASETS}")


def compare_image_data(rates, rng, dataset="digits",
                       trained_rates=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0), steps=600, lr=0.5,
                       sgd_steps=2000, test_fraction=0.3) -> RateComparison:
    """The comparison of :func:`compare_isotropic` on real images (universality check).

    The images are split at random into a training and a held-out set, centred with
    the training mean and scaled so that the training covariance ``Σ̂`` has
    ``tr Σ̂ / d = 1`` (not whitened).  Encoders are trained (i) by
    :func:`train_population_gd` on the Gaussian risk with covariance ``Σ̂`` and (ii) by
    :func:`train_sgd` (``method="kernel"``) on the training images themselves; for
    both, the decoder is then fitted by least squares on the training images and the
    MSE is *measured on the held-out images*.  Universality: the measured MSE matches
    the Gaussian closed form and the predicted limit.

    Parameters
    ----------
    rates : array_like
        Rates of the theory curves (``n = round(r·d)``).
    rng : numpy.random.Generator
    dataset : {"digits", "camera"}
        scikit-learn's 8×8 handwritten digits, or 8×8 patches of scikit-image's
        ``camera`` photograph (a dominant mean-brightness direction: outside the
        validity of the water-filling prediction).
    trained_rates : array_like
    steps : int
        Gradient-descent steps.
    lr : float
        Step size in units of ``1/λ_max(Σ̂)`` (for both GD and SGD).
    sgd_steps : int
        SGD steps on the images (batch 256); 0 skips SGD.
    test_fraction : float
        Share of the images held out.

    Returns
    -------
    RateComparison
        Curves: predicted sign-AE limit (:func:`waterfilling_risk`), PCA and
        Gaussian Shannon ``D(R)`` for the spectrum of ``Σ̂``; trained: the Gaussian
        closed form of the GD encoder and the held-out MSEs.
    """
    rng = _check_rng(rng)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if isinstance(sgd_steps, bool) or not isinstance(sgd_steps, numbers.Integral) \
            or sgd_steps < 0:
        raise ValueError(f"sgd_steps must be a non-negative integer, got {sgd_steps!r}")
    images = _load_images(dataset)
    order = rng.permutation(images.shape[0])
    n_test = int(round(test_fraction * images.shape[0]))
    train, test = images[order[n_test:]], images[order[:n_test]]
    mean = train.mean(axis=0)
    cov = (train - mean).T @ (train - mean) / train.shape[0]
    scale = np.sqrt(np.trace(cov) / cov.shape[0])
    train, test, cov = (train - mean) / scale, (test - mean) / scale, cov / scale**2
    spectrum = np.clip(np.linalg.eigvalsh(cov), 0, None)
    d = cov.shape[0]
    step_size = lr / spectrum.max()

    def held_out_mse(B: np.ndarray) -> float:
        decoder = np.linalg.lstsq(np.sign(train @ B.T), train, rcond=None)[0]
        residual = test - np.sign(test @ B.T) @ decoder
        return float(np.mean(np.sum(residual**2, axis=1)) / d)

    theory_rates = _unit_counts(d, rates) / d
    counts = _unit_counts(d, trained_rates)
    trained = {"sign AE, GD on the Gaussian risk: closed form": [],
               "sign AE, GD on the Gaussian risk: held-out images": []}
    if sgd_steps:
        trained["sign AE, SGD on the images: closed form"] = []
        trained["sign AE, SGD on the images: held-out images"] = []
    for n in counts:
        B = train_population_gd(d, n / d, steps, step_size, rng, covariance=cov).encoder
        trained["sign AE, GD on the Gaussian risk: closed form"].append(
            optimal_risk(B, "sign", cov))
        trained["sign AE, GD on the Gaussian risk: held-out images"].append(held_out_mse(B))
        if sgd_steps:
            result = train_sgd(d, n / d, sgd_steps, step_size, rng, data=train)
            trained["sign AE, SGD on the images: closed form"].append(
                result.optimal_decoder_risk)
            trained["sign AE, SGD on the images: held-out images"].append(
                held_out_mse(result.encoder))
    name = {"digits": "scikit-learn digits (8×8 images)",
            "camera": "8×8 patches of the 'camera' photograph"}[dataset]
    return RateComparison(
        rates=theory_rates,
        curves={"sign AE limit, water-filling (Gaussian, same covariance)":
                    np.array([waterfilling_risk(spectrum, int(round(q * d)))
                              for q in theory_rates]),
                _PCA_LABEL: pca_risk(theory_rates, spectrum),
                _SHANNON_LABEL + " (Gaussian, same covariance)":
                    rate_distortion(theory_rates, spectrum)},
        trained_rates=counts / d,
        trained={label: np.array(values) for label, values in trained.items()},
        title=f"{name}, centred, d = {d}")
