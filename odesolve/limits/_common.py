"""Constants, argument checks and covariance helpers shared by the limits modules."""
from __future__ import annotations

import numbers

import numpy as np
from .._checks import as_real_array, psd_tolerance
from .._checks import check_matrix as _check_matrix

#: ``c = π/2 − 1``: diagonal of ``arcsin(M) − M`` for a unit-diagonal ``M``, the variance
#: of the part of ``sign(λ)`` that is not linear in ``λ`` (in units of ``2/π``).
ARCSINE_EXCESS = np.pi / 2 - 1

#: Activations with closed-form Gaussian kernels (``"erf"`` means ``erf(x/√2)``).
NAMED_ACTIVATIONS = ("sign", "erf", "relu", "linear")

#: Sample-based encoder gradients offered by :func:`train_sgd`.
SGD_METHODS = ("kernel", "tanh", "straight_through")

#: Gauss–Hermite nodes per dimension for smooth user-supplied activations and callables.
_QUADRATURE_ORDER = 48
#: Largest number of (pair, node, node) evaluations held in memory at once.
_QUADRATURE_CHUNK = 2_000_000
#: Off-diagonal overlaps are clipped to ±(1 − this) where arcsin' is evaluated.
_OVERLAP_CLIP = 1e-12

# --------------------------------------------------------------------------- validation
def _check_rate(r) -> np.ndarray:
    try:
        rate = as_real_array("the rate r = n/d", r)
    except TypeError:
        raise ValueError(f"the rate r = n/d must be positive and finite, got {r!r}") from None
    if not np.all(np.isfinite(rate)) or np.any(rate <= 0):
        raise ValueError(f"the rate r = n/d must be positive and finite, got {r!r}")
    return rate


def _check_dimension(d) -> int:
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"the input dimension d must be a positive integer, got {d!r}")
    return int(d)


def _whole_units(rate: np.ndarray, d: int) -> np.ndarray:
    """The numbers of hidden units ``n = r·d`` of checked rates (any shape): integers up to
    rounding, else a ValueError (a fractional count is no network; rounding it would
    answer for another rate than the one asked)."""
    units = rate * d
    n = np.rint(units)
    bad = (n < 1) | (np.abs(units - n) > 1e-9 * np.maximum(1.0, units))
    if np.any(bad):
        r_bad = float(np.ravel(rate)[np.flatnonzero(np.ravel(bad))[0]])
        raise ValueError(f"r·d must be a positive integer number of hidden units, got "
                         f"r = {r_bad:g}, d = {d} (r·d = {r_bad * d:g})")
    return n.astype(int)


def _hidden_units(d, r) -> tuple[int, int]:
    """Validate ``(d, r)`` and return ``(d, n)`` with ``n = r·d`` an integer."""
    d = _check_dimension(d)
    return d, int(_whole_units(float(_check_rate(r)), d))


def _check_encoder(B) -> np.ndarray:
    """A finite encoder with at least one row and one column."""
    B = _check_matrix("encoder B", B)
    if B.size == 0:
        raise ValueError(f"encoder B must have at least one row and one column, got shape "
                         f"{B.shape}")
    return B


def _check_covariance(covariance, d: int) -> np.ndarray | None:
    """``None`` (identity) or a symmetric positive semi-definite ``d×d`` array, up to the
    round-off of its dtype and norm (:func:`odesolve._checks.psd_tolerance`)."""
    if covariance is None:
        return None
    cov = _check_matrix("covariance", covariance, (d, d))
    scale = max(float(np.max(np.abs(cov))), np.finfo(float).tiny)
    tol = max(1e-10 * scale, psd_tolerance(cov, getattr(covariance, "dtype", None)))
    if not np.allclose(cov, cov.T, rtol=0, atol=tol):
        raise ValueError("covariance must be symmetric")
    symmetric = 0.5 * cov + 0.5 * cov.T          # not 0.5·(Σ + Σᵀ): entries of 1e308
    smallest = float(np.linalg.eigvalsh(symmetric / scale)[0]) * scale
    if smallest < -tol:
        raise ValueError(f"covariance is not positive semi-definite "
                         f"(smallest eigenvalue {smallest:.3g})")
    return symmetric


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator "
                         f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _check_positive(name: str, value, integer: bool = False):
    bad_type = isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral if integer else numbers.Real)
    if bad_type or not np.isfinite(value) or value <= 0:
        kind = "positive integer" if integer else "positive number"
        raise ValueError(f"{name} must be a {kind}, got {value!r}")
    return int(value) if integer else float(value)


#: Seconds per floating-point operation of the small dense products in the training loops
#: (one BLAS thread), for the cost estimates made before a run.
SECONDS_PER_FLOP = 2e-10


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
