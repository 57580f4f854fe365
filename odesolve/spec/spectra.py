"""Stage 1 of the pipeline: the data model (spectrum of the input covariance).

Inputs are Gaussian, ``x ~ N(0, Ω)`` with ``Ω = Σ_τ ρ_τ e_τ e_τᵀ``.  The theory only
needs the eigenvalues ``ρ_τ`` (and the eigenvectors when an initial state is given by
weights in another basis), so every data model is reduced to a :class:`Spectrum`:
a list of *tracked* modes, each with its own equation, plus an optional *bulk* of
``n_bulk`` untracked modes sharing one small eigenvalue, carried by K×K aggregates.

>>> spec = spiked_covariance(D=300, spikes=[2.0, 1.0], bulk=0.05)
>>> spec.n_tracked, spec.n_bulk
(2, 298)
>>> round(spec.initial_error, 4)          # tr Ω / (2D)
1.5248
>>> round(spec.pca_error(2), 4)
0.0248
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import (check_integer, check_matrix, check_non_negative, check_vector,
                       psd_tolerance)

__all__ = [
    "Spectrum",
    "spiked_covariance",
    "sinusoidal_spiked_covariance",
    "sinusoidal_inputs",
    "given_spectrum",
    "covariance_spectrum",
]


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Eigen-decomposition of the input covariance in the scaling of the spec.

    Parameters
    ----------
    D : int
        Input dimension.
    eigenvalues : ndarray, shape (n_tracked,)
        Eigenvalues ``ρ_τ`` of the tracked modes (spikes grow like D: ``ρ = s·D``).
    bulk : float
        Eigenvalue ``σ²`` shared by the ``n_bulk`` untracked modes.
    n_bulk : int
        Number of untracked bulk modes (``n_tracked + n_bulk == D``).
    eigenvectors : ndarray, shape (D, D), optional
        Orthonormal eigenvectors as columns, tracked modes first, then the bulk.
        ``None`` means the data are already written in their eigenbasis.
    name : str
        Short label used in results files.
    """

    D: int
    eigenvalues: np.ndarray
    bulk: float = 0.0
    n_bulk: int = 0
    eigenvectors: np.ndarray | None = field(default=None, repr=False)
    name: str = "spectrum"

    def __post_init__(self):
        object.__setattr__(self, "D", check_integer("D", self.D, minimum=2))
        ev = check_vector("eigenvalues", self.eigenvalues)
        tol = psd_tolerance(ev[:, None], getattr(self.eigenvalues, "dtype", None))
        if np.any(ev < -tol):
            raise ValueError(
                f"covariance is not positive semi-definite: smallest eigenvalue {ev.min():.3g} < 0"
            )
        ev = np.clip(ev, 0.0, None)  # round-off of the input's precision, not a negative mode
        check_non_negative("bulk eigenvalue", self.bulk)
        if self.n_bulk < 0 or len(ev) + self.n_bulk != self.D:
            raise ValueError(
                f"{len(ev)} tracked + {self.n_bulk} bulk modes do not add up to D = {self.D}"
            )
        if self.eigenvectors is not None:
            vec = np.asarray(self.eigenvectors, dtype=float)
            if vec.shape != (self.D, self.D):
                raise ValueError(f"eigenvectors must have shape ({self.D}, {self.D}), got {vec.shape}")
            object.__setattr__(self, "eigenvectors", vec)
        object.__setattr__(self, "eigenvalues", ev)

    @property
    def n_tracked(self) -> int:
        """Number of modes with their own equations."""
        return len(self.eigenvalues)

    @property
    def s(self) -> np.ndarray:
        """Rescaled eigenvalues ``s_τ = ρ_τ / D`` of the tracked modes."""
        return self.eigenvalues / self.D

    @property
    def all_eigenvalues(self) -> np.ndarray:
        """All D eigenvalues, tracked modes first, then the bulk."""
        return np.concatenate([self.eigenvalues, np.full(self.n_bulk, self.bulk)])

    @property
    def trace(self) -> float:
        """``tr Ω``."""
        return float(self.eigenvalues.sum() + self.n_bulk * self.bulk)

    @property
    def initial_error(self) -> float:
        """Error of the zero reconstruction, ``tr Ω / (2D)``."""
        return self.trace / (2 * self.D)

    def pca_error(self, k: int) -> float:
        """Error of the best rank-k reconstruction, ``(tr Ω − Σ_{m≤k} ρ_m) / (2D)``."""
        if k < 0:
            raise ValueError(f"rank must be >= 0, got {k}")
        return float(self.pca_errors(k)[k])

    def pca_errors(self, k_max: int) -> np.ndarray:
        """:meth:`pca_error` of every rank 0…k_max (one sort of the eigenvalues), shape
        (k_max + 1,); ranks beyond D keep the error of rank D (zero)."""
        top = np.sort(self.all_eigenvalues)[::-1][:k_max]
        kept = np.concatenate([[0.0], np.cumsum(top)])
        kept = np.concatenate([kept, np.full(k_max + 1 - kept.size, kept[-1])])
        return (self.trace - kept) / (2 * self.D)

    def all_modes(self) -> "Spectrum":
        """The same covariance with every bulk mode tracked (the finite-D, all-modes ODE)."""
        return Spectrum(self.D, self.all_eigenvalues, 0.0, 0, self.eigenvectors, self.name)

    def covariance(self) -> np.ndarray:
        """The D×D covariance matrix Ω (in the eigenbasis if no eigenvectors are stored)."""
        lam = self.all_eigenvalues
        if self.eigenvectors is None:
            return np.diag(lam)
        return (self.eigenvectors * lam) @ self.eigenvectors.T

    def sample(self, n: int, rng: np.random.Generator, eigenbasis: bool = True) -> np.ndarray:
        """Draw ``n`` inputs, shape (n, D); in the eigenbasis unless ``eigenbasis=False``."""
        z = rng.standard_normal((n, self.D)) * np.sqrt(self.all_eigenvalues)
        if eigenbasis or self.eigenvectors is None:
            return z
        return z @ self.eigenvectors.T


def spiked_covariance(D: int, spikes, bulk: float = 1.0) -> Spectrum:
    """Spiked covariance: eigenvalues ``s_m·D`` for the spikes, ``bulk`` for the other D − M.

    Parameters
    ----------
    D : int
        Input dimension.
    spikes : sequence of float
        Rescaled spike eigenvalues ``s_1 > s_2 > … > 0`` (the eigenvalue is ``s_m·D``).
    bulk : float
        Bulk eigenvalue σ².
    """
    D = _check_dimension(D)
    s = check_vector("spikes", spikes)
    bulk = check_non_negative("bulk eigenvalue", bulk)
    if len(s) == 0:
        raise ValueError("spikes must be a non-empty list of numbers")
    if np.any(s <= 0):
        raise ValueError(f"spikes must be finite and > 0, got {list(s)}")
    if len(s) >= D:
        raise ValueError(f"need fewer spikes ({len(s)}) than dimensions (D = {D})")
    return Spectrum(D, s * D, float(bulk), D - len(s), None, "spiked")


def sinusoidal_inputs(n: int, D: int, M: int, rng: np.random.Generator) -> np.ndarray:
    """Raw samples of the paper's sinusoidal spiked model (before centring/rescaling).

    ``x = Σ_m c_m a_m + ξ`` with rows ``a_m ∝ sin((m+1) i / 100)`` of norm √D,
    ``c_m ~ N(0, λ_m²)``, ``λ_m = 2^m + 1`` and white noise ``ξ ~ N(0, I)``.
    """
    i = np.arange(D)
    rows = np.sin(np.outer(np.arange(1, M + 1), i) / 100.0)
    rows *= np.sqrt(D) / np.linalg.norm(rows, axis=1, keepdims=True)
    lam = 2.0 ** np.arange(M) + 1.0
    c = rng.standard_normal((n, M)) * lam
    return c @ rows + rng.standard_normal((n, D))


def sinusoidal_spiked_covariance(D: int, M: int = 3) -> Spectrum:
    """Covariance of the paper's sinusoidal spiked model, diagonalised numerically.

    The population covariance of :func:`sinusoidal_inputs` is ``Aᵀ diag(λ²) A + I``;
    the data are then divided by their overall standard deviation, which divides Ω by
    ``tr Ω / D``. The ``M`` largest eigenvalues are tracked, the rest form the bulk
    only if they are all equal (they are: the noise is white).
    """
    D = _check_dimension(D)
    if not (1 <= M < D):
        raise ValueError(f"need 1 <= M < D, got M = {M}, D = {D}")
    i = np.arange(D)
    rows = np.sin(np.outer(np.arange(1, M + 1), i) / 100.0)
    rows *= np.sqrt(D) / np.linalg.norm(rows, axis=1, keepdims=True)
    lam2 = (2.0 ** np.arange(M) + 1.0) ** 2
    omega = (rows.T * lam2) @ rows + np.eye(D)
    omega /= np.trace(omega) / D
    rho, vec = np.linalg.eigh(omega)
    order = np.argsort(rho)[::-1]
    rho, vec = np.clip(rho[order], 0.0, None), vec[:, order]
    return Spectrum(D, rho[:M], float(np.mean(rho[M:])), D - M, vec, "sinusoidal")


def given_spectrum(eigenvalues, eigenvectors=None, name: str = "spectrum") -> Spectrum:
    """A covariance given by all D eigenvalues (every mode tracked).

    Parameters
    ----------
    eigenvalues : array_like, shape (D,)
        Eigenvalues ρ_τ, in the order the data lists them (no sorting is done).
    eigenvectors : array_like, shape (D, D), optional
        Matching orthonormal eigenvectors as columns.
    """
    ev = check_vector("eigenvalues", eigenvalues)
    D = _check_dimension(len(ev))
    if eigenvectors is not None:
        vec = np.asarray(eigenvectors, dtype=float)
        if vec.shape != (D, D):
            raise ValueError(f"eigenvectors must have shape ({D}, {D}), got {vec.shape}")
        if not np.allclose(vec.T @ vec, np.eye(D), atol=1e-6):
            raise ValueError("eigenvectors must be orthonormal columns")
    return Spectrum(D, eigenvalues if isinstance(eigenvalues, np.ndarray) else ev, 0.0, 0,
                    eigenvectors, name)


def covariance_spectrum(cov, name: str = "covariance", tol: float = 1e-8) -> Spectrum:
    """Diagonalise a symmetric PSD covariance; eigenvalues in decreasing order.

    Raises ``ValueError`` for a non-square, non-symmetric or non-PSD matrix: eigenvalues
    below ``-max(tol·max|ρ|, r)`` with ``r`` the round-off of the input's dtype and norm
    (:func:`odesolve._checks.psd_tolerance`: a float32 covariance has eigenvalue noise
    ~1e-7·‖Ω‖); negative round-off within that is clipped to zero.
    """
    c = check_matrix("covariance", cov)
    if c.shape[0] != c.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {c.shape}")
    roundoff = psd_tolerance(c, getattr(cov, "dtype", None))
    if not np.allclose(c, c.T, rtol=0, atol=max(1e-10 * np.abs(c).max(), roundoff)):
        raise ValueError("covariance must be symmetric")
    rho, vec = np.linalg.eigh(0.5 * (c + c.T))
    scale = max(np.abs(rho).max(), 1e-300)
    if rho.min() < -max(tol * scale, roundoff):
        raise ValueError(
            f"covariance is not positive semi-definite: smallest eigenvalue {rho.min():.3g}"
        )
    order = np.argsort(rho)[::-1]
    return given_spectrum(np.clip(rho[order], 0.0, None), vec[:, order], name)


def _check_dimension(D) -> int:
    return check_integer("D", D, minimum=2)
