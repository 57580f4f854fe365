"""Gradient methods that reach the minimisers: population gradient descent and sample-based SGD."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .._checks import check_cost
from .._threads import small_matrices
from ..errors import DivergenceError
from ._common import (SECONDS_PER_FLOP, SGD_METHODS, _OVERLAP_CLIP, _RightProduct,
                      _check_covariance, _check_matrix, _check_positive, _check_rng,
                      _hidden_units, _trace)
from .frames import _unit_rows, waterfilling_risk
from .risks import _solve_psd, optimal_risk, population_risk, sign_risk_lower_bound

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


@small_matrices
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
    d, n = _hidden_units(d, r)
    steps = _check_positive("steps", steps, integer=True)
    lr = _check_positive("lr", lr)
    rng = _check_rng(rng)
    if decoder not in ("optimal", "joint"):
        raise ValueError(f"decoder must be 'optimal' or 'joint', got {decoder!r}")
    check_cost(f"population gradient descent: {steps} steps at n = {n}, d = {d}",
               seconds=SECONDS_PER_FLOP * 10.0 * steps * (n * d * (n + d) + n**3),
               nbytes=8.0 * 8 * (n * d + n * n + d * d))
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
            B_raw = B - lr * grad_B
            A_next = None if A is None else A - lr * second
        # before the rows are normalised: an overflowing row would become a zero row
        if not (np.isfinite(total) and np.all(np.isfinite(B_raw))
                and (A is None or np.all(np.isfinite(A_next)))):
            raise DivergenceError("population gradient descent", time=step, lr=lr,
                                  detail=f"the risk or the weights are not finite at "
                                         f"step {step}")
        history[step] = total / d
        if step == steps:
            break
        B, A = _unit_rows(B_raw), A_next
    final_decoder = second if A is None else A
    return TrainingResult(
        encoder=B, decoder=final_decoder,
        risk=population_risk(final_decoder, B, "sign", cov_matrix),
        optimal_decoder_risk=optimal_risk(B, "sign", cov_matrix),
        limit=_limit(d, n, cov_matrix), history_steps=np.arange(steps + 1),
        risk_history=history, method=f"population gradient descent, decoder={decoder}")


#: A decoder whose error on a minibatch is this many times that of the zero decoder
#: (where SGD starts) has run away: a step size beyond the decoder's stability limit
#: grows it geometrically, through finite but meaningless risks (1e131 at d = 100,
#: r = 0.5, lr = 0.5).
DECODER_RUNAWAY = 1e4


def _check_decoder(A, B, X, what, step, time_per_step, lr):
    """Raise DivergenceError when the decoder's minibatch error on ``X`` exceeds
    :data:`DECODER_RUNAWAY` times the zero decoder's."""
    with np.errstate(all="ignore"):
        error = np.sum((np.sign(X @ B.T) @ A.T - X) ** 2)
        zero = np.sum(X**2)
    if not error <= DECODER_RUNAWAY * zero:          # also NaN
        raise DivergenceError(what, time=step * time_per_step, lr=lr, step=step,
                              detail=f"the decoder ran away: its minibatch error is "
                                     f"{error / zero:.3g}× that of a zero decoder")


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


@small_matrices
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
    d, n = _hidden_units(d, r)
    steps = _check_positive("steps", steps, integer=True)
    lr = _check_positive("lr", lr)
    batch_size = _check_positive("batch_size", batch_size, integer=True)
    rng = _check_rng(rng)
    if method not in SGD_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {SGD_METHODS}")
    check_cost(f"SGD/{method}: {steps} steps of {batch_size} samples at n = {n}, d = {d}",
               seconds=SECONDS_PER_FLOP * 10.0 * steps * (batch_size * n * d + n * n * d),
               nbytes=8.0 * 8 * (n * d + batch_size * (n + d) + d * d))
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
        X = minibatch()
        if step % record_every == 0:
            _check_decoder(A, B, X, f"SGD ({method})", step, batch_size / d, lr)
            recorded_steps.append(step)
            recorded.append(optimal_risk(B, "sign", cov_matrix))
        with np.errstate(all="ignore"):         # a blow-up is detected just below
            grad_B, grad_A = _minibatch_gradients(B, A, X, method, betas[step])
            B_raw, A_next = B - lr * grad_B, A - lr * grad_A
        if not (np.all(np.isfinite(B_raw)) and np.all(np.isfinite(A_next))):
            raise DivergenceError(f"SGD ({method})", time=(step + 1) * batch_size / d, lr=lr,
                                  step=step + 1, detail="non-finite weights")
        B, A = _unit_rows(B_raw), A_next
    _check_decoder(A, B, X, f"SGD ({method})", steps, batch_size / d, lr)
    recorded_steps.append(steps)
    recorded.append(optimal_risk(B, "sign", cov_matrix))
    return TrainingResult(
        encoder=B, decoder=A, risk=population_risk(A, B, "sign", cov_matrix),
        optimal_decoder_risk=recorded[-1], limit=_limit(d, n, cov_matrix),
        history_steps=np.array(recorded_steps), risk_history=np.array(recorded),
        method=f"SGD on samples, encoder gradient: {method}")
