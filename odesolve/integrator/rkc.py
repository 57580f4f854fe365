"""RKC: a stabilised explicit Runge–Kutta–Chebyshev method for the stiff late-time flow.

Late in learning the Jacobian of the order-parameter flow has real eigenvalues spread
from about −10 to −10⁻⁴ (docs/theory.md §10): classical explicit methods are held to steps
h ≲ 3/|λ_max| by stability long after the dynamics has slowed down, and implicit methods
need Jacobians that are dense in the order parameters.  RKC takes s stages per step,
chosen each step so that its stability interval, about 0.65 s² along the negative real
axis, covers h ρ (ρ the spectral radius, estimated by a nonlinear power method from
right-hand-side calls): a step costs s ~ √(hρ) calls instead of hρ/3.

The scheme is second order, damped (ε = 2/13), with the error estimate and step-size
rule of the reference code, and a cubic Hermite interpolant for dense output and events.
It is a :class:`scipy.integrate.OdeSolver`, so :func:`scipy.integrate.solve_ivp` runs it
(``method=RKC``) with its output grid and events.

References
----------
B. P. Sommeijer, L. F. Shampine and J. G. Verwer, "RKC: an explicit solver for parabolic
PDEs", J. Comput. Appl. Math. 88, 315–326 (1998).  J. G. Verwer, W. H. Hundsdorfer and
B. P. Sommeijer, "Convergence properties of the Runge-Kutta-Chebyshev method", Numer.
Math. 57, 157–178 (1990).
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import DenseOutput, OdeSolver

#: damping of the Chebyshev polynomial (the reference code's 2/13): the stability region
#: keeps a margin from the real axis, at a cost of ~2 % of the interval
DAMPING = 2.0 / 13.0
#: the most stages of one step (the reference code's limit: round-off grows as s²)
MAX_STAGES = 250
#: the spectral radius is re-estimated after this many accepted steps, and after a rejection
RADIUS_EVERY = 25
#: the estimate is multiplied by this (the power method approaches ρ from below)
RADIUS_SAFETY = 1.2
#: power iterations per estimate, and their relative convergence threshold
RADIUS_ITERATIONS, RADIUS_CONVERGED = 20, 0.01


def chebyshev_coefficients(s: int):
    """The recurrence coefficients of the s-stage damped RKC scheme.

    Parameters
    ----------
    s : int
        Number of stages, at least 2.

    Returns
    -------
    mu, nu, mu_t, gamma_t, c : ndarray, shape (s + 1,)
        ``Y_j = (1 − μ_j − ν_j) Y_0 + μ_j Y_{j−1} + ν_j Y_{j−2} + μ̃_j h F_{j−1}
        + γ̃_j h F_0``
        for j ≥ 2, ``Y_1 = Y_0 + μ̃_1 h F_0``; stage j is at time ``t + c_j h``
        (``c_s = 1``).  Entries with no meaning (j = 0, and μ, ν, γ̃ at j = 1) are 0.
    beta : float
        The length of the stability interval on the negative real axis, ~0.65 s² for large s.

    Examples
    --------
    >>> mu, nu, mu_t, gamma_t, c, beta = chebyshev_coefficients(10)
    >>> round(float(c[-1]), 12), round(float(beta) / 10**2, 3)
    (1.0, 0.647)
    """
    w0 = 1.0 + DAMPING / s**2
    T, dT, ddT = np.zeros(s + 1), np.zeros(s + 1), np.zeros(s + 1)
    T[0], T[1], dT[1] = 1.0, w0, 1.0
    for j in range(2, s + 1):
        T[j] = 2 * w0 * T[j - 1] - T[j - 2]
        dT[j] = 2 * T[j - 1] + 2 * w0 * dT[j - 1] - dT[j - 2]
        ddT[j] = 4 * dT[j - 1] + 2 * w0 * ddT[j - 1] - ddT[j - 2]
    w1 = dT[s] / ddT[s]
    b = np.empty(s + 1)
    b[2:] = ddT[2:] / dT[2:] ** 2
    b[0] = b[1] = b[2]
    a = 1.0 - b * T
    mu, nu, mu_t, gamma_t, c = (np.zeros(s + 1) for _ in range(5))
    mu_t[1] = b[1] * w1
    j = np.arange(2, s + 1)
    mu[j] = 2 * w0 * b[j] / b[j - 1]
    nu[j] = -b[j] / b[j - 2]
    mu_t[j] = 2 * w1 * b[j] / b[j - 1]
    gamma_t[j] = -a[j - 1] * mu_t[j]
    c[j] = w1 * ddT[j] / dT[j]
    c[1] = c[2] / dT[2]
    beta = (w0 + 1.0) * ddT[s] / dT[s]
    return mu, nu, mu_t, gamma_t, c, beta


def stages_for(h_rho: float) -> int:
    """The fewest stages whose stability interval covers ``h ρ`` (reference code's rule,
    at least 2, at most :data:`MAX_STAGES`)."""
    return int(min(MAX_STAGES, max(2, 1 + np.floor(np.sqrt(1.0 + 1.54 * h_rho)))))


class RKC(OdeSolver):
    """Second-order Runge–Kutta–Chebyshev method, for :func:`scipy.integrate.solve_ivp`.

    For flows whose Jacobian has eigenvalues near the negative real axis (the
    order-parameter flow of these models: real eigenvalues); elsewhere it can be unstable
    and should not be used.

    Parameters
    ----------
    fun, t0, y0, t_bound, vectorized
        As for :class:`scipy.integrate.OdeSolver`.
    rtol, atol : float or array_like
        Relative and absolute tolerance of the local error estimate (RMS norm of the error
        over ``atol + rtol·|y|``).  The error of each step is controlled, not the global
        one: being second order, RKC takes many steps at tight tolerances, and its global
        error is then well above ``rtol`` (README § Performance); once ``atol`` dominates,
        tightening ``rtol`` alone no longer helps.
    first_step, max_step : float, optional
        Initial step (default: chosen from the right-hand side and the spectral radius)
        and largest step (default: unbounded).

    References
    ----------
    Sommeijer, Shampine & Verwer, J. Comput. Appl. Math. 88, 315 (1998): the scheme,
    the error estimate (their eq. for Est) and the choice of the number of stages.
    """

    def __init__(self, fun, t0, y0, t_bound, rtol=1e-6, atol=1e-9, first_step=None,
                 max_step=np.inf, vectorized=False, **extraneous):
        super().__init__(fun, t0, y0, t_bound, vectorized)
        self.rtol, self.atol, self.max_step = rtol, atol, max_step
        self.f = self.fun(self.t, self.y)
        self._radius, self._vector, self._since_radius = None, None, 0
        self._coefficients = {}
        self._longest_stable = 0.95 * chebyshev_coefficients(MAX_STAGES)[-1]
        self.h_abs = self._first_step() if first_step is None else first_step
        self._previous = None          # (t, y, f) before the latest step, for dense output
        self._err_old, self._h_old = None, None

    def _scale(self, y_a, y_b):
        return self.atol + self.rtol * np.maximum(np.abs(y_a), np.abs(y_b))

    def _spectral_radius(self):
        """Nonlinear power method on ``F(y + v) − F(y)``, with the previous eigenvector
        (or F itself) to start; returns the estimate times :data:`RADIUS_SAFETY`."""
        y, f = self.y, self.f
        ynorm = np.linalg.norm(y)
        v = self._vector if self._vector is not None else f.copy()
        vnorm = np.linalg.norm(v)
        if vnorm == 0.0:
            v, vnorm = np.ones_like(y), np.sqrt(y.size)
        size = np.sqrt(np.finfo(float).eps) * max(ynorm, 1.0)
        v *= size / vnorm
        radius = 0.0
        for _ in range(RADIUS_ITERATIONS):
            dv = self.fun(self.t, y + v) - f
            norm = np.linalg.norm(dv)
            previous, radius = radius, norm / size
            if norm == 0.0:
                break
            v = dv * (size / norm)
            if abs(radius - previous) <= RADIUS_CONVERGED * radius:
                break
        self._vector = v
        self._since_radius = 0
        return max(RADIUS_SAFETY * radius, 1e-300)

    def _first_step(self):
        radius = self._radius = self._spectral_radius()
        h = min(self.max_step, abs(self.t_bound - self.t))
        if h * radius > 1.0:
            h = 1.0 / radius
        # the second derivative along a trial Euler step sets the first step (accuracy)
        h_try = max(h, 1e-12)
        f1 = self.fun(self.t + self.direction * h_try, self.y + self.direction * h_try * self.f)
        curvature = np.sqrt(np.mean(((f1 - self.f) / self._scale(self.y, self.y)) ** 2)) / h_try
        if curvature > 0 and 0.1 * np.sqrt(1.0 / curvature) < h:
            h = 0.1 * np.sqrt(1.0 / curvature)
        return max(h, 10 * np.abs(np.nextafter(self.t, self.direction * np.inf) - self.t))

    def _step_impl(self):
        t, y, f = self.t, self.y, self.f
        min_step = 10 * np.abs(np.nextafter(t, self.direction * np.inf) - t)
        h_abs = min(self.h_abs, self.max_step)
        while True:
            if self._radius is None or self._since_radius >= RADIUS_EVERY:
                self._radius = self._spectral_radius()
            # beyond the most stages' stability interval only a shorter step is stable; below
            # the spacing of floats at t no step is possible, and the shortest is tried
            # (as scipy's Runge–Kutta methods do: t = 1e13 needs steps of 1e-2)
            h_abs = max(min(h_abs, self._longest_stable / self._radius), min_step)
            h = h_abs * self.direction
            t_new = t + h
            if self.direction * (t_new - self.t_bound) > 0:
                t_new = self.t_bound
            h = t_new - t
            h_abs = abs(h)
            y_new = self._stages(t, y, f, h, stages_for(h_abs * self._radius))
            f_new = self.fun(t_new, y_new)
            estimate = (12.0 * (y - y_new) + 6.0 * h * (f + f_new)) / 15.0
            err = np.sqrt(np.mean((estimate / self._scale(y, y_new)) ** 2))
            if err <= 1.0 and np.isfinite(err):
                break
            if h_abs <= min_step:
                return False, self.TOO_SMALL_STEP
            # a rejected step: its spectral radius may be out of date
            h_abs *= 0.8 / max(err, 1e-10) ** (1 / 3) if np.isfinite(err) else 0.1
            h_abs = max(h_abs, 0.1 * abs(h))
            self._radius = None
            self._err_old = None
        # the reference code's predictor with the previous step's error (PI control)
        fac = 0.8 / max(err, 1e-10) ** (1 / 3)
        if self._err_old is not None and self._h_old:
            fac = min(fac, 0.8 * (h_abs / self._h_old)
                      * self._err_old ** (1 / 3) / max(err, 1e-10) ** (2 / 3))
        self._err_old, self._h_old = max(err, 1e-10), h_abs
        self.h_abs = h_abs * min(10.0, max(0.1, fac))
        self._previous = (t, y, f)
        self.t, self.y, self.f = t_new, y_new, f_new
        self._since_radius += 1
        return True, None

    def _stages(self, t, y0, f0, h, s):
        coefficients = self._coefficients.get(s)
        if coefficients is None:
            coefficients = self._coefficients[s] = chebyshev_coefficients(s)
        mu, nu, mu_t, gamma_t, c, _ = coefficients
        y_prev2 = y0
        y_prev = y0 + mu_t[1] * h * f0
        for j in range(2, s + 1):
            f_j = self.fun(t + c[j - 1] * h, y_prev)
            y_j = ((1.0 - mu[j] - nu[j]) * y0 + mu[j] * y_prev + nu[j] * y_prev2
                   + (mu_t[j] * h) * f_j + (gamma_t[j] * h) * f0)
            y_prev2, y_prev = y_prev, y_j
        return y_prev

    def _dense_output_impl(self):
        t_old, y_old, f_old = self._previous
        return _Hermite(t_old, self.t, y_old, self.y, f_old, self.f)


class _Hermite(DenseOutput):
    """Cubic Hermite interpolant of one step (values and derivatives at both ends)."""

    def __init__(self, t_old, t, y_old, y, f_old, f):
        super().__init__(t_old, t)
        h = t - t_old
        self.y_old, self.h = y_old, h
        dy = y - y_old
        self.c1, self.c2 = h * f_old, 3 * dy - h * (2 * f_old + f)
        self.c3 = -2 * dy + h * (f_old + f)

    def _call_impl(self, t):
        x = (np.asarray(t) - self.t_old) / self.h
        if x.ndim == 0:
            return self.y_old + x * (self.c1 + x * (self.c2 + x * self.c3))
        return (self.y_old[:, None] + x * (self.c1[:, None] + x * (self.c2[:, None]
                                                                  + x * self.c3[:, None])))
