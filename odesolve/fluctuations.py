"""Fluctuations of the tracked overlaps: the O(1/D) correction they give the mean error.

At finite D one SGD step moves the state vector ``y`` (tracked overlaps, bulk Gram
matrix, biases) by ``h F(y) + (η/D) (ξ − E ξ)`` with ``h = B/D`` the time of one step,
``F`` the compiled drift and ``ξ`` a random vector of O(1) (one sample's increment in
units of ``η/D``).  A system-size expansion around the D → ∞ flow ``ȳ(t)`` writes the
state as ``ȳ + δ + O(D^{-3/2})`` fluctuations with covariance ``Σ`` (both O(1/D)); with
``Σ̃ = DΣ`` and ``δ̃ = Dδ`` (O(1), D-free in form)::

    dΣ̃/dt = JΣ̃ + Σ̃Jᵀ + (η(t)/B)² Cov ξ
    dδ̃/dt = Jδ̃ + ½ F''[Σ̃] − (B/2) J F        (the last term: SGD is Euler with step h)
    E ε   = ε(ȳ) + (∇ε·δ̃ + ½ ε''[Σ̃]) / D

with ``J = ∂F/∂y``.  Everything is numerical around the compiled equations, so it holds
for every activation the engine compiles: ``J``, ``F''[Σ̃]``, ``∇ε`` and ``ε''[Σ̃]`` are
central finite differences of the compiled drift and error (second derivatives along the
eigenvectors of ``Σ̃``), and ``Cov ξ`` is a Gaussian average of products of up to four
fields, computed by randomised quasi-Monte Carlo (scrambled Sobol points, fixed seed)
over the exact joint Gaussian of the tracked input components and the bulk parts of the
pre-activations (:func:`increment_covariance`).  The bulk Gram block is carried with its
own (smaller) fluctuations; its self-averaging O(η²/D) drift is the noise floor of
:func:`odesolve.protocols.noise_floor`, which is part of ``F`` and not counted again.

References
----------
Derived here, see docs/theory.md §9 (the linear-noise / system-size expansion of the SGD
Markov chain around the ODE of Refinetti & Goldt, ICML 2022, arXiv 2201.02115).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.special import ndtri

__all__ = ["Fluctuations", "increment_covariance", "fluctuation_correction", "QMC_POINTS"]

#: Sobol points of the Gaussian average ``Cov ξ`` (2^13: every entry within 1 % of the
#: largest, 0.1-0.7 % measured, tested against a 32× larger point set).
QMC_POINTS = 2**13
#: Time grid of :func:`fluctuation_correction`: steps of ``NODE_SPACING·(1 + t − t0)``,
#: following the slowing dynamics, at most ``MAX_STEP`` (the frozen-midpoint rule is not
#: accurate over steps on which the slow directions of the flow turn: at t = 200 on the
#: erf example, steps of 8 are wrong by 20×).  The correction moves by < 0.3 % when both
#: are halved (linear and erf examples, measured).
NODE_SPACING = 0.02
MAX_STEP = 1.0
#: Relative step of the central differences (first and second derivatives), in units of
#: the coordinate scales of :func:`_scales`.
FD_STEP = 1e-4


@dataclass
class Fluctuations:
    """The O(1/D) fluctuation correction along a trajectory (``Trajectory.fluctuations``).

    Attributes
    ----------
    t : ndarray, shape (n,)
        Times.
    sigma : ndarray, shape (n, r, r)
        ``Σ̃ = D × Cov`` of the reduced state (``Y`` row-major, upper triangle of ``G``
        row-major, then the biases when they are trained).
    shift : ndarray, shape (n, r)
        ``δ̃ = D × (E y − ȳ)`` of the reduced state.
    error : ndarray, shape (n,)
        ``D × (E ε − ε(ȳ))``: divide by D to get the correction of the mean error.
    """

    t: np.ndarray
    sigma: np.ndarray
    shift: np.ndarray
    error: np.ndarray


class _Reduced:
    """The state vector without the duplicated half of the symmetric Gram matrix ``G``
    (its two copies of an off-diagonal entry are one random variable) and without biases
    that never move."""

    def __init__(self, state):
        P, n = state.Y.shape
        self.P, self.n, self.K = P, n, state.model.K
        self.nY = P * n
        self.iu = np.triu_indices(P)
        self.trained = state.model.bias == "trained"
        self.template = state.to_vector()
        nG = len(self.iu[0])
        bias = np.arange(self.nY + P * P, self.template.size) if self.trained else []
        # reduced index r[i] -> full positions: both copies of an off-diagonal G entry
        upper = self.nY + self.iu[0] * P + self.iu[1]
        lower = self.nY + self.iu[1] * P + self.iu[0]
        self.pick = np.concatenate([np.arange(self.nY), upper, bias]).astype(np.int64)
        self.dst = np.concatenate([self.pick, lower]).astype(np.int64)
        self.src = np.concatenate([np.arange(self.pick.size),
                                   self.nY + np.arange(nG)]).astype(np.int64)
        self.size = self.pick.size

    def full(self, r):
        y = self.template.copy()
        y[self.dst] = r[self.src]
        return y

    def reduce(self, y):
        return y[self.pick]


def increment_covariance(state, points: int = QMC_POINTS, seed: int = 0,
                         rates=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``Cov ξ``: covariance of one sample's increment of the reduced state, in units of
    ``(η/D)²`` (untied vanilla SGD, any activation, at the state's finite D).

    One sample ``x = √ρ ⊙ z`` moves the tracked overlaps by ``(η/D) ξ`` with

    * ``ξ_a[k, τ] = c_w σ_k √s_τ z_τ``, ``σ_k = (u_k − Σ_l T0_kl g_l) g'(λ_k)``,
    * ``ξ_b[k, τ] = c_v g_k (√s_τ z_τ − Σ_l B_lτ g_l)``,
    * ``ξ_m[k] = c_m σ_k`` (trained bias),

    and the bulk Gram matrix by ``ξ_G = X + Xᵀ``, ``X = Σ_bulk ξ_τ y_τᵀ``: rows a
    ``c_w σ_k f_j``, rows b ``c_v g_k (f_j − Σ_l g_l G_{b_l j})``, where
    ``f = Σ_bulk √s_b z_τ y_τ = (λ^B, u^B)`` are the bulk parts of the fields
    (``f ~ N(0, s_b G)``, independent of the tracked ``z``).  The decay terms are not
    random and drop out.  The average over ``(z_tracked, f)`` is a scrambled-Sobol
    quasi-Monte Carlo one (``points`` points, ``seed``).

    Parameters
    ----------
    state : odesolve.State
        The state (untied weights, any bias mode).
    points : int
        Number of quasi-Monte Carlo points (a power of 2).
    seed : int
        Scrambling seed.
    rates : (c_w, c_v, c_m)
        Rate multiples of :class:`odesolve.protocols.Protocol`.

    Returns
    -------
    ndarray, shape (r, r)
        In the reduced layout of :class:`Fluctuations`.

    References
    ----------
    Derived here, see docs/theory.md §9.
    """
    return _CovarianceRule(state, points, seed, rates)(state.to_vector())


class _CovarianceRule:
    """``Cov ξ`` at any state vector of one problem, on one fixed point set."""

    def __init__(self, state, points, seed, rates):
        self.red = _Reduced(state)
        self.K, self.n = state.model.K, self.red.n
        spec = state.spectrum
        self.root_s = np.sqrt(spec.s)
        self.s_bulk = spec.bulk / spec.D
        self.rates = rates
        act = state.model.activation
        self.g, self.gp = act.numpy, act.numpy_derivative(1)
        # imported here: scipy.stats adds ~0.4 s to every `import odesolve`, and only
        # finite-size runs need it
        from scipy.stats import qmc
        sobol = qmc.Sobol(self.n + 2 * self.K, scramble=True, seed=seed)
        self.normals = ndtri(sobol.random(points))   # the standard normal quantile

    def __call__(self, y):
        red, K, n = self.red, self.K, self.n
        c_w, c_v, c_m = self.rates
        Y = y[:red.nY].reshape(red.P, n)
        A, B = Y[:K], Y[K:]
        G = y[red.nY:red.nY + red.P**2].reshape(red.P, red.P)
        m = y[red.nY + red.P**2:]
        # bulk fields f = (λ^B, u^B) ~ N(0, s_b G); G is PSD up to rounding
        w, U = np.linalg.eigh(0.5 * (G + G.T) * self.s_bulk)
        root = U * np.sqrt(np.clip(w, 0.0, None))
        zs = self.normals[:, :n] * self.root_s           # √s_τ z_τ
        f = self.normals[:, n:] @ root.T
        lam = zs @ A.T + f[:, :K] + m
        u = zs @ B.T + f[:, K:]
        T0 = B @ B.T + G[K:, K:]
        g = np.asarray(self.g(lam), dtype=float) * np.ones_like(lam)
        gp = np.asarray(self.gp(lam), dtype=float) * np.ones_like(lam)
        sigma = (u - g @ T0) * gp
        xa = c_w * sigma[:, :, None] * zs[:, None, :]
        xb = c_v * g[:, :, None] * (zs - g @ B)[:, None, :]
        # ξ_G[i, j] = X[i, j] + X[j, i] on the upper triangle, X[i, j] = coef_i base_i[j]
        # with base f (rows a) or f − g·G_b (rows b)
        coef = np.concatenate([c_w * sigma, c_v * g], axis=1)
        base_b = f - g @ G[K:, :]
        i, j = red.iu

        def X(i, j):
            return coef[:, i] * np.where(i < K, f[:, j], base_b[:, j])
        parts = [xa.reshape(len(g), -1), xb.reshape(len(g), -1), X(i, j) + X(j, i)]
        if red.trained:
            parts.append(c_m * sigma)
        xi = np.concatenate(parts, axis=1)
        xi -= xi.mean(0)
        return xi.T @ xi / len(xi)


def _scales(red, r):
    """Coordinate scales of the finite differences: each entry's size, floored at 1e-3 of
    its block's largest (overlaps and Gram entries differ by orders of magnitude)."""
    out = np.abs(r).astype(float)
    blocks = [slice(0, red.nY), slice(red.nY, red.nY + len(red.iu[0])),
              slice(red.nY + len(red.iu[0]), red.size)]
    for b in blocks:
        if out[b].size:
            top = max(float(np.max(out[b])), 1e-12)
            out[b] = np.maximum(out[b], 1e-3 * top)
    return out


def _jacobian(fun, r, scale):
    """Central-difference Jacobian of ``fun`` (reduced → vector) at ``r``, shape
    (len(fun(r)), r.size)."""
    columns = []
    for i in range(r.size):
        h = FD_STEP * scale[i]
        e = np.zeros(r.size)
        e[i] = h
        columns.append((fun(r + e) - fun(r - e)) / (2 * h))
    return np.array(columns).T


def _gradient(fun, r, scale):
    """Central-difference gradient of a one-element ``fun`` at ``r``."""
    return _jacobian(fun, r, scale)[0]


def _second(fun, r, sigma, scale):
    """``½ Σ_ij Σ_ij ∂_i∂_j fun`` at ``r``: central second differences along the
    eigenvectors of ``Σ`` written in scaled coordinates (``fun`` vector- or scalar-valued)."""
    w, U = np.linalg.eigh(sigma / np.outer(scale, scale))
    f0 = fun(r)
    out = np.zeros_like(f0, dtype=float)
    keep = np.abs(w) > 1e-12 * max(np.max(np.abs(w)), 1e-300)
    for lam, u in zip(w[keep], U.T[keep]):
        d = FD_STEP * scale * u
        out = out + 0.5 * lam * (fun(r + d) - 2 * f0 + fun(r - d)) / FD_STEP**2
    return out


def _grid(t0, t1, spacing):
    """``t0``, steps ``spacing·(1 + t − t0)`` up to :data:`MAX_STEP`, then steps of
    ``MAX_STEP``, ending at ``t1``."""
    knee = MAX_STEP / spacing - 1                     # where the step reaches MAX_STEP
    geometric = np.expm1(np.arange(int(np.ceil(np.log1p(min(t1 - t0, knee)) / spacing)) + 1)
                         * spacing)
    start = geometric[-1]
    uniform = start + MAX_STEP * np.arange(1, int(np.ceil((t1 - t0 - start) / MAX_STEP)) + 1)
    grid = t0 + np.concatenate([geometric, uniform])
    return np.concatenate([grid[grid < t1], [t1]])


def fluctuation_correction(f, error, state, t0, t_eval, *, lr, protocol,
                           points: int = QMC_POINTS, seed: int = 0,
                           spacing: float = NODE_SPACING, mean_step: float = 0.0) -> Fluctuations:
    """Integrate ``Σ̃``, ``δ̃`` along the mean flow and the error correction at ``t_eval``.

    The linear equations for ``Σ̃`` and ``δ̃`` are stepped on the grid
    ``t0 + e^{k·spacing} − 1`` (merged with ``t_eval``) by the exponential midpoint rule:
    on each interval ``J``, ``Cov ξ`` and the sources are frozen at the midpoint of the
    mean trajectory and the frozen equations are solved exactly (Van Loan's block
    exponential for ``Σ̃``, the φ₁ block exponential for ``δ̃``), which stays stable on the
    fast relaxing directions that make explicit Runge-Kutta take ~10⁴ stages.  Second
    order in the spacing.

    Parameters
    ----------
    f : callable
        ``f(t, y) -> dy/dt``, the drift of :func:`odesolve.integrator.rhs_function` (with
        the bulk noise floor when ``finite_size``).
    error : callable
        ``ε(y)`` of a full state vector.
    state : odesolve.State
        Initial state at ``t0`` (deterministic: ``Σ̃ = δ̃ = 0`` there).
    t0 : float
        Initial time.
    t_eval : ndarray, shape (n,)
        Increasing output times in ``[t0, ∞)``.
    lr : float
        Base learning rate η.
    protocol : odesolve.protocols.Protocol
        Schedule, rates and batch size B (its ``∂F/∂t`` Euler term is not included).
    points, seed : int
        Quasi-Monte Carlo points and seed of :func:`increment_covariance`.
    spacing : float
        Relative spacing of the time grid (its steps are at most :data:`MAX_STEP`).
    mean_step : float
        Step of the Euler scheme that produced the mean being corrected (0: the exact
        flow).  Such a mean already lags the flow by ``(mean_step/2) J F``: only SGD's
        lag in excess of it, ``(B/D − mean_step)/2 · J F``, is added.

    Returns
    -------
    Fluctuations

    References
    ----------
    Derived here, see docs/theory.md §9.
    """
    red = _Reduced(state)
    cov = _CovarianceRule(state, points, seed, (protocol.encoder_rate, protocol.decoder_rate,
                                                protocol.bias_rate))
    n = red.size
    # Euler lag of SGD's mean (step B/D) beyond that of the mean being corrected, × D
    lag = protocol.batch_size - mean_step * state.spectrum.D
    t_eval = np.asarray(t_eval, dtype=float)
    t1 = float(t_eval[-1])
    grid = np.unique(np.concatenate([_grid(t0, t1, spacing), t_eval]))
    mean = solve_ivp(f, (t0, max(t1, t0 + 1e-12)), state.to_vector(), method="DOP853",
                     rtol=1e-10, atol=1e-13, dense_output=True)
    S, shift = np.zeros((n, n)), np.zeros(n)
    saved = {}
    for a, b in zip(grid[:-1], grid[1:]):
        if a in t_eval:
            saved[a] = (S, shift)
        dt, mid = b - a, 0.5 * (a + b)
        y = mean.sol(mid)
        r = red.reduce(y)

        def F(x, mid=mid):
            return red.reduce(f(mid, red.full(x)))
        scale = _scales(red, r)
        J = _jacobian(F, r, scale)
        noise = protocol.lr_at(lr, mid)**2 * cov(y)
        block = expm(np.block([[-J, noise], [np.zeros((n, n)), J.T]]) * dt)
        flow_T = block[n:, n:]                       # e^{Jᵀ dt}
        S_new = flow_T.T @ S @ flow_T + flow_T.T @ block[:n, n:]
        S_mid = 0.5 * (S + S_new)
        source = _second(F, r, S_mid, scale) - 0.5 * lag * J @ F(r)
        phi = expm(np.block([[J, source[:, None]], [np.zeros((1, n + 1))]]) * dt)
        S, shift = 0.5 * (S_new + S_new.T), phi[:n, :n] @ shift + phi[:n, n]
    saved[grid[-1]] = (S, shift)
    sigma = np.array([saved[t][0] for t in t_eval])
    shift = np.array([saved[t][1] for t in t_eval])
    corr = np.empty(len(t_eval))
    for i, t in enumerate(t_eval):
        r = red.reduce(mean.sol(t))
        scale = _scales(red, r)

        def eps(x):
            return np.array([error(red.full(x))])
        corr[i] = _gradient(eps, r, scale) @ shift[i] + _second(eps, r, sigma[i], scale)[0]
    return Fluctuations(t=t_eval, sigma=sigma, shift=shift, error=corr)
